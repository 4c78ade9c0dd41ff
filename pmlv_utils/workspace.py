"""Where the course's artifacts live, and how a notebook gets an upstream artifact.

Every notebook can run on its own in an empty workspace: it asks this module for the
dataset, the TFRecords or a trained/exported model, and gets the existing one when it was
already built with the same settings, or a freshly built one otherwise.

The workspace root is, in order: the ``workspace`` argument, the ``PMLV_WORKSPACE``
environment variable, or ``<repo>/workspace`` (git-ignored). Each artifact lives in a
folder whose name includes a short hash of the settings that made it, and is only
reused when its ``_COMPLETE.json`` marker exists (a build that was interrupted is redone).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER = "_COMPLETE.json"
# An absolute path of a build machine, as it must never appear in a committed output.
MACHINE_PATH = re.compile(r"/(?:work|root|tmp|home/[a-z]+)/")

# Defaults shared by the notebooks, `make run` and the tests (learner-sized).
DEFAULT_IMAGES_PER_CLASS = 200
DEFAULT_SEED = 42
DEFAULT_IMG_SIZE = 64
DEFAULT_EPOCHS = 15
# The synthetic data's difficulty (pmlv_utils.synthetic): "hard" (photo-like: the default) or
# "easy" (large centred flowers: quick tests). Part of every artifact's settings, so data of
# the two are never mixed.
DEFAULT_DIFFICULTY = "hard"


def workspace_dir(workspace: str | os.PathLike | None = None) -> Path:
    """The workspace root folder (created if missing)."""
    root = Path(workspace or os.environ.get("PMLV_WORKSPACE") or REPO_ROOT / "workspace")
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def settings_key(settings: dict[str, Any]) -> str:
    """A short, stable hash of a settings dict (order-independent)."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def artifact_dir(kind: str, settings: dict[str, Any], workspace=None) -> Path:
    """The folder for one artifact: ``<workspace>/<kind>-<hash of settings>``."""
    return workspace_dir(workspace) / f"{kind}-{settings_key(settings)}"


def is_complete(folder: Path) -> bool:
    return (Path(folder) / MARKER).exists()


def build_or_reuse(
    kind: str,
    settings: dict[str, Any],
    build: Callable[[Path], Any],
    workspace=None,
    rebuild: bool = False,
    verbose: bool = True,
) -> Path:
    """Return the artifact folder for ``settings``, calling ``build(folder)`` if needed.

    ``build`` writes into the (empty) folder; the marker is written only after it
    returns, so a crash leaves an incomplete folder that the next call rebuilds.
    """
    folder = artifact_dir(kind, settings, workspace)
    if is_complete(folder) and not rebuild:
        if verbose:
            print(f"[workspace] reusing {kind}: {display_path(folder)}")
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if verbose:
        print(f"[workspace] building {kind}: {display_path(folder)}")
    build(folder)
    (folder / MARKER).write_text(json.dumps(settings, sort_keys=True, indent=1, default=str))
    return folder


def display_path(path: str | os.PathLike) -> str:
    """A path as shown to a learner: relative to the repo or workspace when inside them.

    Keeps absolute paths of the build machine out of committed notebook outputs.
    """
    if "://" in str(path):  # gs://, http://: not a path of this machine
        return str(path)
    p = Path(path).resolve()
    for base, label in ((workspace_dir(), "$PMLV_WORKSPACE"), (REPO_ROOT, ".")):
        try:
            return f"{label}/{p.relative_to(base)}"
        except ValueError:
            continue
    return str(path)


# --------------------------------------------------------------------------------------
# The artifact chain: dataset -> TFRecords -> exported model.
# --------------------------------------------------------------------------------------


def ensure_dataset(
    images_per_class: int = DEFAULT_IMAGES_PER_CLASS,
    seed: int = DEFAULT_SEED,
    background_bias: float = 0.0,
    workspace=None,
    rebuild: bool = False,
    difficulty: str = DEFAULT_DIFFICULTY,
) -> Path:
    """The synthetic 5-flowers data set; returns the folder holding ``flower_photos/``.

    ``<returned>/flower_photos/all_data.csv`` and ``<returned>/flower_photos/dict.txt``
    are in the book's formats. ``difficulty``: "hard" or "easy" (:mod:`pmlv_utils.synthetic`).
    """
    from . import synthetic

    if difficulty not in synthetic.DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {synthetic.DIFFICULTIES}, got {difficulty!r}")
    settings = dict(
        images_per_class=images_per_class,
        seed=seed,
        background_bias=background_bias,
        generator=synthetic.GENERATOR_VERSION,
        difficulty=difficulty,
    )

    def build(folder: Path) -> None:
        synthetic.generate_dataset(
            folder,
            images_per_class=images_per_class,
            seed=seed,
            background_bias=background_bias,
            difficulty=difficulty,
        )

    return build_or_reuse("flowers", settings, build, workspace, rebuild)


def dataset_files(data_dir: Path) -> tuple[Path, Path]:
    """(all_data.csv, dict.txt) of a data folder made by :func:`ensure_dataset`."""
    return Path(data_dir) / "flower_photos" / "all_data.csv", Path(
        data_dir
    ) / "flower_photos" / "dict.txt"


def ensure_tfrecords(
    images_per_class: int = DEFAULT_IMAGES_PER_CLASS,
    seed: int = DEFAULT_SEED,
    background_bias: float = 0.0,
    workspace=None,
    rebuild: bool = False,
    difficulty: str = DEFAULT_DIFFICULTY,
) -> Path:
    """TFRecords (train/valid/test shards) of :func:`ensure_dataset`'s data; returns the folder."""
    from . import tfrecords

    data_dir = ensure_dataset(
        images_per_class, seed, background_bias, workspace, difficulty=difficulty
    )
    all_data, labels = dataset_files(data_dir)
    settings = dict(data=data_dir.name, schema=tfrecords.SCHEMA_VERSION)

    def build(folder: Path) -> None:
        tfrecords.run_pipeline(
            tfrecords.DatasetJobConfig(
                all_data=str(all_data), labels_file=str(labels), output_dir=str(folder)
            )
        )

    return build_or_reuse("tfrecords", settings, build, workspace, rebuild)


def ensure_trained_model(
    images_per_class: int = DEFAULT_IMAGES_PER_CLASS,
    seed: int = DEFAULT_SEED,
    img_size: int = DEFAULT_IMG_SIZE,
    epochs: int = DEFAULT_EPOCHS,
    model_kind: str = "small_cnn",
    background_bias: float = 0.0,
    workspace=None,
    rebuild: bool = False,
    difficulty: str = DEFAULT_DIFFICULTY,
) -> Path:
    """A trainer job directory (checkpoints, exported model, plot, metrics).

    The exported SavedModel is ``<returned>/export`` (see :func:`ensure_exported_model`).
    """
    from . import training

    data = dict(background_bias=background_bias, workspace=workspace, difficulty=difficulty)
    tfrecord_dir = ensure_tfrecords(images_per_class, seed, **data)
    _, labels = dataset_files(ensure_dataset(images_per_class, seed, **data))
    settings = dict(
        tfrecords=tfrecord_dir.name,
        img_size=img_size,
        epochs=epochs,
        model_kind=model_kind,
        seed=seed,
        trainer=training.TRAINER_VERSION,
    )

    def build(folder: Path) -> None:
        config = training.TrainConfig(
            model_kind=model_kind, img_size=img_size, num_epochs=epochs, seed=seed
        )
        training.train_and_export(str(folder), str(tfrecord_dir), str(labels), config)

    return build_or_reuse("trained", settings, build, workspace, rebuild)


def ensure_exported_model(**kwargs) -> Path:
    """The exported SavedModel folder of :func:`ensure_trained_model` (same arguments)."""
    return ensure_trained_model(**kwargs) / "export"
