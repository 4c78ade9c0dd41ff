"""The data set on disk: ``generate_dataset``, the stored masks, ``image_info.csv``, the CLI.

Layout written under ``DIR`` (see the package docstring). Each image's randomness comes only
from ``(seed, class, index)``: the same seed gives byte-identical files, and adding images
does not change the earlier ones.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .backgrounds import BACKGROUND_KINDS, BIAS_BACKGROUND, BIASED_CLASS, background_for
from .camera import jpeg_quality
from .flowers import CLASSES
from .scene import DIFFICULTIES, render_flower
from .varieties import CONFUSABLE

GENERATOR_VERSION = "5"  # bump whenever an image of a given seed changes
LABEL_NOISE_RATE = 0.02  # hard: the share of images listed under a wrong label

# Today's columns first (version 3), then those added with the difficulty setting.
INFO_COLUMNS = (
    "image",
    "label",
    "background",
    "width",
    "height",
    "jpeg_quality",
    "flower_fraction",
    "other_flower",
    "n_flowers",
    "occluded",
    "true_label",
    "label_noise",
    "variety",
    "flower_scale",
    "centre_offset",
    "cut_by_frame",
    "blur",
    "blur_sigma",
    "exposure",
    "colour_cast",
    "hard_tail",
)


def image_seed(seed: int, label: str, index: int) -> tuple[int, int, int, int]:
    """The random seed of one image: it depends only on (seed, class, index)."""
    return (seed, CLASSES.index(label), index, 1)


def true_label(seed: int, label: str, index: int, difficulty: str = "hard") -> str:
    """The class actually drawn for the image listed as ``label`` number ``index``.

    Easy: always ``label``. Hard: another class with probability LABEL_NOISE_RATE (a
    confusable one half of those times), as when a photo is filed in the wrong folder."""
    if difficulty == "easy":
        return label
    rng = np.random.default_rng((seed, CLASSES.index(label), index, 4))
    if rng.random() >= LABEL_NOISE_RATE:
        return label
    options = CONFUSABLE[label] if rng.random() < 0.5 else [c for c in CLASSES if c != label]
    return options[int(rng.integers(len(options)))]


def _check_arguments(
    images_per_class: int, seed: int, background_bias: float, difficulty: str = "hard"
) -> None:
    if int(images_per_class) != images_per_class or images_per_class < 1:
        raise ValueError(f"images_per_class must be a positive integer, got {images_per_class!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0.0 <= float(background_bias) <= 1.0:
        raise ValueError(f"background_bias must be in [0, 1], got {background_bias!r}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")


def _write_image(
    root: Path, label: str, index: int, seed: int, background_bias: float, difficulty: str
) -> dict:
    """Draw and save one image and its mask under ``root``; returns its ``image_info.csv``
    row (a dict of :data:`INFO_COLUMNS`). The file is listed as ``label``; what it shows is
    :func:`true_label` (the mask marks that class's flowers)."""
    name = f"{label}_{index:04d}"
    ci = CLASSES.index(label)
    background = background_for(label, (seed, ci, index, 2), background_bias)
    drawn = true_label(seed, label, index, difficulty)
    rgb, mask, scene = render_flower(
        drawn,
        image_seed(seed, label, index),
        background=background,
        return_info=True,
        difficulty=difficulty,
    )
    quality = jpeg_quality(np.random.default_rng((seed, ci, index, 3)), difficulty)
    Image.fromarray(rgb).save(
        root / "flower_photos" / label / f"{name}.jpg", "JPEG", quality=quality
    )
    # mode "1": one bit a pixel
    Image.fromarray(mask).save(root / "flower_masks" / label / f"{name}.png")
    return {
        "image": f"flower_photos/{label}/{name}.jpg",
        "label": label,
        "background": background,
        "width": rgb.shape[1],
        "height": rgb.shape[0],
        "jpeg_quality": quality,
        "flower_fraction": round(float(mask.mean()), 4),
        "other_flower": scene["other_flower"] or "",
        "n_flowers": scene["n_flowers"],
        "occluded": int(scene["occluded"]),
        "true_label": drawn,
        "label_noise": drawn != label,
        **{k: scene[k] for k in INFO_COLUMNS[12:]},
    }


def generate_dataset(
    output_dir: str | os.PathLike,
    images_per_class: int = 200,
    seed: int = 42,
    background_bias: float = 0.0,
    progress: bool = True,
    difficulty: str = "hard",
) -> dict:
    """Write the synthetic 5-flowers data set under ``output_dir`` (layout: package docstring).

    ``difficulty``: "hard" (the default: photos as hard as the book's) or "easy" (generator
    version 3's large, centred flowers, byte for byte: quick tests).
    Returns a dict with the paths written (``flower_photos``, ``all_data_csv``, ``dict_txt``,
    ``masks_dir``, ``image_info_csv``), ``counts`` (images per class), ``background_counts``
    (per class, per background kind), ``label_noise`` (how many images are listed under a
    wrong label) and the settings.
    """
    from tqdm import tqdm  # light, but only needed here: importing the package stays numpy + PIL

    _check_arguments(images_per_class, seed, background_bias, difficulty)
    root = Path(output_dir).resolve()
    photos, masks = root / "flower_photos", root / "flower_masks"
    for label in CLASSES:
        (photos / label).mkdir(parents=True, exist_ok=True)
        (masks / label).mkdir(parents=True, exist_ok=True)

    info = []
    background_counts = {label: dict.fromkeys(BACKGROUND_KINDS, 0) for label in CLASSES}
    jobs = [(label, i) for label in CLASSES for i in range(images_per_class)]
    # disable=None: a bar only on a terminal, never in a notebook's saved outputs (issue 16)
    bar = dict(
        desc="drawing flowers", unit="img", mininterval=2, disable=None if progress else True
    )
    for label, index in tqdm(jobs, **bar):
        info.append(_write_image(root, label, index, seed, background_bias, difficulty))
        background_counts[label][info[-1]["background"]] += 1

    all_data = photos / "all_data.csv"
    _write_csv(all_data, [(str(root / row["image"]), row["label"]) for row in info])
    dict_txt = photos / "dict.txt"
    dict_txt.write_text("".join(f"{label}\n" for label in CLASSES))
    info_csv = root / "image_info.csv"
    _write_csv(info_csv, [INFO_COLUMNS, *([row[k] for k in INFO_COLUMNS] for row in info)])
    return {
        "output_dir": root,
        "flower_photos": photos,
        "all_data_csv": all_data,
        "dict_txt": dict_txt,
        "masks_dir": masks,
        "image_info_csv": info_csv,
        "counts": {label: images_per_class for label in CLASSES},
        "n_images": len(info),
        "background_counts": background_counts,
        "seed": seed,
        "background_bias": background_bias,
        "difficulty": difficulty,
        "label_noise": sum(row["label_noise"] for row in info),
        "biased_class": BIASED_CLASS if background_bias > 0 else None,
        "generator_version": GENERATOR_VERSION,
    }


def _write_csv(path: Path, rows) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def mask_path(image_path: str | os.PathLike) -> Path:
    """``.../flower_photos/<class>/<name>.jpg`` -> ``.../flower_masks/<class>/<name>.png``."""
    p = Path(image_path)
    if p.parent.parent.name != "flower_photos":
        raise ValueError(
            f"{image_path}: not an image of a generated data set "
            "(expected .../flower_photos/<class>/<name>.jpg)"
        )
    return p.parent.parent.parent / "flower_masks" / p.parent.name / f"{p.stem}.png"


def load_mask(image_path: str | os.PathLike) -> np.ndarray:
    """The stored flower mask (bool [H, W]) of an image of a generated data set."""
    path = mask_path(image_path)
    if not path.exists():
        raise FileNotFoundError(
            f"no flower mask for {image_path}: {path} does not exist "
            "(masks exist only for images made by generate_dataset)"
        )
    with Image.open(path) as m:
        return np.asarray(m.convert("L")) > 127


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pmlv_utils.synthetic --output_dir DIR [--images_per_class N] [--seed S]
    [--background_bias P] [--difficulty {easy,hard}]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pmlv_utils.synthetic", description="Write the synthetic 5-flowers data set."
    )
    parser.add_argument("--output_dir", required=True, help="folder to write flower_photos/ into")
    parser.add_argument("--images_per_class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--background_bias",
        type=float,
        default=0.0,
        help=f"0..1: how often {BIASED_CLASS} get the '{BIAS_BACKGROUND}' background "
        "and the other classes never do",
    )
    parser.add_argument(
        "--difficulty",
        choices=DIFFICULTIES,
        default="hard",
        help="hard: small, off-centre, blurred... flowers and 2%% label noise; "
        "easy: large centred flowers (quick tests)",
    )
    args = parser.parse_args(argv)
    try:
        result = generate_dataset(
            args.output_dir,
            args.images_per_class,
            args.seed,
            args.background_bias,
            difficulty=args.difficulty,
        )
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {result['n_images']} images: {result['all_data_csv']}")
    print(f"labels: {result['dict_txt']}")
    return 0
