"""What every benchmark shares: the settings (full and quick), the result row, number formats,
and the artifacts (data set, TFRecords, exported model) they all measure."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from pmlv_utils import workspace


@dataclass
class Settings:
    images_per_class: int
    seed: int
    img_size: int
    epochs: int
    difficulty: str
    repeats: int
    ingest_img_size: int
    grayscale_images: int
    predict_images: int
    load_requests: int
    batch_sizes: tuple[int, ...]  # P5's in-memory batch-size curve
    curve_images: int  # images per pass of that curve
    rss_requests: int  # P9: requests per client for each of the largest request shapes
    rss_clients: int
    ig_images: int
    ig_steps: tuple[int, ...]


# Each setting as (full, quick). The full model is the learner's (the workspace defaults, one set
# of defaults in one place); the quick one is the notebook harness's, so a test run reuses its
# trained model.
_FULL_AND_QUICK = dict(
    images_per_class=(workspace.DEFAULT_IMAGES_PER_CLASS, 60),
    seed=(workspace.DEFAULT_SEED, 42),
    img_size=(workspace.DEFAULT_IMG_SIZE, 64),
    epochs=(workspace.DEFAULT_EPOCHS, 8),
    difficulty=(workspace.DEFAULT_DIFFICULTY, workspace.DEFAULT_DIFFICULTY),
    repeats=(3, 1),
    ingest_img_size=(224, 64),
    grayscale_images=(20, 3),
    predict_images=(200, 24),
    load_requests=(200, 24),
    batch_sizes=((1, 2, 4, 8, 16, 32, 64), (1, 8, 32)),
    curve_images=(128, 32),
    rss_requests=(2, 1),
    rss_clients=(3, 2),
    ig_images=(5, 2),
    ig_steps=((8, 16, 32, 64, 128, 256), (8, 32)),
)
FULL = Settings(**{name: full for name, (full, _) in _FULL_AND_QUICK.items()})
QUICK = Settings(**{name: quick for name, (_, quick) in _FULL_AND_QUICK.items()})


@dataclass
class Result:
    key: str
    title: str
    figure: float  # the headline ratio (or number)
    unit: str  # how to read it, e.g. "x plain"
    goal: str  # the goal as text
    met: bool | None  # None: no goal to meet
    details: list[str] = field(default_factory=list)  # the absolute figures behind the ratio

    def row(self) -> str:
        verdict = {True: "met", False: "NOT met", None: "—"}[self.met]
        return (
            f"| {self.key} | {self.title} | {plain_number(self.figure)} {self.unit} "
            f"| {self.goal} | {verdict} |"
        )


def plain_number(x: float) -> str:
    """Three significant digits as a plain decimal, never in exponent form (1070 -> "1070")."""
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}" if x == 0 or abs(x) >= 1e-3 else f"{x:.6f}"


def rate_line(label: str, images: int, seconds: float, note: str = "") -> tuple[float, str]:
    """``(images/s, "<label>: N images in S s = R images/s (P s per image)<note>")``, three
    significant digits, so that a slow rate reads 0.0412 images/s, not 0.0. ValueError when
    nothing was measured (no image, or no time)."""
    if images <= 0 or not seconds > 0:
        raise ValueError(f"{label}: nothing measured ({images} images in {seconds} s)")
    rate = images / seconds
    return rate, (
        f"{label}: {images} images in {plain_number(seconds)} s = {plain_number(rate)} images/s "
        f"({plain_number(seconds / images)} s per image){note}"
    )


def median(values):
    return statistics.median(values)


class Artifacts:
    """The data set, its TFRecords and (built on first use) the exported model of settings ``s``."""

    def __init__(self, s: Settings):
        self.s, self.ws = s, workspace
        data = dict(images_per_class=s.images_per_class, seed=s.seed, difficulty=s.difficulty)
        self.data_dir = workspace.ensure_dataset(**data)
        self.all_data, self.labels_file = workspace.dataset_files(self.data_dir)
        self.tfrecord_dir = workspace.ensure_tfrecords(**data)
        self._export = None

    @property
    def export_dir(self) -> Path:
        if self._export is None:
            self._export = self.ws.ensure_exported_model(
                images_per_class=self.s.images_per_class,
                seed=self.s.seed,
                img_size=self.s.img_size,
                epochs=self.s.epochs,
                difficulty=self.s.difficulty,
            )
        return self._export

    def test_files(self, n: int) -> list[str]:
        from pmlv_utils import predict

        files = [p for p, _ in predict.split_files(self.all_data, "test")]
        files += [p for p, _ in predict.split_files(self.all_data, "train")]
        return files[:n]
