"""Where the course's artifacts live, and how a notebook gets an upstream artifact.

Every notebook can run on its own in an empty workspace: it asks this module for the
dataset, the TFRecords or a trained/exported model, and gets the existing one when it was
already built with the same settings, or a freshly built one otherwise.

The workspace root is, in order: the ``workspace`` argument, the ``PMLV_WORKSPACE``
environment variable, or ``<repo>/workspace`` (git-ignored). Each artifact lives in a
folder whose name includes a short hash of the settings that made it, and is only
reused when its ``_COMPLETE.json`` marker exists (a build that was interrupted is redone).

Crash and race safety (local workspaces):

- one lock per artifact: ``fcntl.flock`` on ``.<artifact>.lock`` beside its folder, held while
  it is checked, built and published (:func:`artifact_lock`). A second process asking for
  the same artifact waits, then reuses what the first one built;
- a build writes into a temporary folder ``.<artifact>.build-<pid>-<id>`` beside it, marker
  included, published under the artifact's name by one rename (:func:`publish_folder`:
  ``rename(2)``, or ``renameat2(RENAME_EXCHANGE)`` over an existing folder), so a reader sees
  no artifact or a complete one (a reader that opened the folder keeps the version it opened;
  a rebuild deletes the old version once the new one is in place). A build that fails is kept
  under the artifact's name without its marker (to look at; the next call rebuilds it);
  temporary folders of killed processes are removed by the next build of that artifact;
- a deploy is one atomic switch (:func:`swap_in`): the deploy folder is a symlink to a release
  folder, replaced by ``os.replace``; the last :data:`KEEP_RELEASES` releases are kept;
- logs are capped: :func:`prune` keeps the newest :data:`KEEP_LOGS` of a kind.

``gs://`` folders (TensorFlow's gfile, e.g. on Vertex AI Workbench) have no ``flock``: there
the lock is a no-op (as before: two kernels may race), and a "rename" of a folder on GCS is a
copy then a delete, object by object, so a reader can see a partly published folder.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

try:
    import fcntl
except ImportError:  # Windows: no flock; the workspace then works without locks
    fcntl = None

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER = "_COMPLETE.json"
# An absolute path of a build machine, as it must never appear in a committed output.
MACHINE_PATH = re.compile(r"/(?:work|root|tmp|home/[a-z]+)/")

# Defaults shared by the notebooks, `make run` and the tests (learner-sized).
DEFAULT_IMAGES_PER_CLASS = 200
DEFAULT_SEED = 42
DEFAULT_IMG_SIZE = 128  # the model sees all of it (random crops only in training)
DEFAULT_EPOCHS = 25  # at most: the trainer stops early after 5 epochs without improvement
KEEP_LOGS = 10  # log files of one kind kept (mlflow serve logs, pipeline run logs, ...)
KEEP_RELEASES = 2  # deployed releases kept by swap_in: the current one and the one before
DEFAULT_DIFFICULTY = "hard"  # like photos (docs/DIFFICULTY.md); part of every artifact key
# "1": display_path shows $PMLV_WORKSPACE/… and ./… (committed notebook outputs); else real paths
NOTEBOOK_PATHS_ENV = "PMLV_NOTEBOOK_PATHS"


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


def _is_url(path) -> bool:
    return "://" in str(path)


def lock_path(folder: str | os.PathLike) -> Path:
    """The lock file of an artifact folder: ``.<name>.lock`` beside it."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


@contextlib.contextmanager
def artifact_lock(folder: str | os.PathLike, on_wait: Callable[[], None] | None = None):
    """Hold the exclusive lock of one artifact (``fcntl.flock``); ``on_wait()`` is called
    once when another process holds it. The lock goes with the process: a killed build never
    leaves a stale lock behind. gs:// and systems without ``fcntl``: no lock."""
    if _is_url(folder) or fcntl is None:
        # gfile object stores have no flock: keep the old behaviour there (no lock)
        yield None
        return
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def publish_folder(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move the complete folder ``tmp`` to ``final`` in one rename (same file system).

    An existing ``final`` is exchanged with ``tmp`` in one step where Linux allows it (then
    deleted), else renamed aside first (a moment with no folder, never a half one). gs://:
    gfile's rename of a folder is a copy then a delete per object (not atomic)."""
    if _is_url(final):
        import tensorflow as tf  # gs:// only

        if tf.io.gfile.exists(str(final)):
            tf.io.gfile.rmtree(str(final))
        tf.io.gfile.rename(str(tmp), str(final))
        return
    tmp, final = Path(tmp), Path(final)
    try:
        os.rename(tmp, final)  # atomic; fails when final is a non-empty folder
        return
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            raise
    if _exchange(tmp, final):
        shutil.rmtree(tmp)  # now the previous contents
        return
    old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _remove_leftovers(folder: Path) -> None:
    """Temporary folders of earlier builds of this artifact (called with its lock held)."""
    for pattern in (f".{folder.name}.build-*", f".{folder.name}.old-*"):
        for left in folder.parent.glob(pattern):
            shutil.rmtree(left, ignore_errors=True)


def build_or_reuse(
    kind: str,
    settings: dict[str, Any],
    build: Callable[[Path], Any],
    workspace=None,
    rebuild: bool = False,
    verbose: bool = True,
) -> Path:
    """Return the artifact folder for ``settings``, calling ``build(folder)`` if needed.

    ``build`` writes into the (empty) temporary folder it is given, beside the artifact's;
    the marker is added when it returns, and the folder renamed to the artifact's name in one
    step. What ``build`` writes must not depend on its folder's name (or be fixed up by it:
    see :func:`ensure_dataset`). Holds the artifact's lock throughout: a second process
    waits, then reuses the artifact. A failed build is left, without its marker, under the
    artifact's name when nothing else is there; the next call rebuilds it.
    """
    folder = artifact_dir(kind, settings, workspace)
    if is_complete(folder) and not rebuild:
        if verbose:
            print(f"[workspace] reusing {kind}: {display_path(folder)}")
        return folder

    def waiting():
        if verbose:
            print(f"[workspace] waiting for another process building {kind}")

    with artifact_lock(folder, on_wait=waiting):
        if is_complete(folder) and not rebuild:
            if verbose:
                print(f"[workspace] reusing {kind} (built meanwhile): {display_path(folder)}")
            return folder
        _remove_leftovers(folder)
        tmp = folder.parent / f".{folder.name}.build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        if verbose:
            print(f"[workspace] building {kind}: {display_path(folder)}")
        try:
            build(tmp)
            marker = json.dumps(settings, sort_keys=True, indent=1, default=str)
            (tmp / MARKER).write_text(marker)
        except BaseException:
            if folder.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.rename(tmp, folder)  # kept to look at; no marker, so it is rebuilt
            raise
        publish_folder(tmp, folder)
    return folder


def prune(folder: str | os.PathLike, pattern: str, keep: int = KEEP_LOGS) -> list[Path]:
    """Delete all but the newest ``keep`` entries of ``folder`` matching ``pattern`` (files or
    folders, by modification time); returns what was deleted. Missing folder: nothing."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    entries = []
    for p in folder.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            entries.append((p.lstat().st_mtime, p))
    entries.sort(reverse=True)
    removed = []
    for _, p in entries[max(keep, 0) :]:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def releases_dir(target: str | os.PathLike) -> Path:
    """Where :func:`swap_in` keeps the releases of ``target``: ``<target>.releases``."""
    target = Path(target)
    return target.parent / f"{target.name}.releases"


def swap_in(source: str | os.PathLike, target: str | os.PathLike, keep: int = KEEP_RELEASES) -> str:
    """Make ``target`` show a copy of the folder ``source``, switched in one atomic step.

    The copy is made in ``<target>.releases/r<number>-<time>``; ``target`` is a symlink to it,
    replaced by ``os.replace`` (a reader opening ``target/...`` sees the old release or the new
    one, never a mix, never nothing). A ``target`` that is still a real folder (an older
    layout) is first moved into the releases. The newest ``keep`` releases stay (the one
    before the current: readers still on it, and a rollback). Under the target's lock.
    Returns the release folder. gs://: no symlinks there, so ``target`` is replaced by a copy
    (deleted, then copied object by object: not atomic).
    """
    if _is_url(target):
        import tensorflow as tf  # gs:// only

        if tf.io.gfile.exists(str(target)):
            tf.io.gfile.rmtree(str(target))
        copy_folder(source, target)
        return str(target)
    target, releases = Path(target), releases_dir(target)
    with artifact_lock(target):
        releases.mkdir(parents=True, exist_ok=True)
        number = max((_release_number(p) for p in releases.iterdir()), default=0) + 1
        migrating = target.is_dir() and not target.is_symlink()  # a real folder: older deploy
        stamp = time.strftime("%Y%m%d-%H%M%S")
        release = releases / f"r{number + migrating:05d}-{stamp}"
        tmp = releases / f".{release.name}.tmp"
        shutil.copytree(source, tmp, symlinks=True)
        os.rename(tmp, release)
        link = target.parent / f".{target.name}.link-{uuid.uuid4().hex[:8]}"
        os.symlink(os.path.relpath(release, target.parent), link)
        if migrating:
            if not _exchange(link, target):
                os.rename(target, link.with_name(link.name + ".old"))
                os.rename(link, target)
                link = link.with_name(link.name + ".old")
            os.rename(link, releases / f"r{number:05d}-{stamp}-before-releases")  # the old folder
        else:
            os.replace(link, target)
        kept = sorted((p for p in releases.iterdir() if _release_number(p)), key=_release_number)
        for old in kept[: -max(keep, 1)]:
            if old != release:
                shutil.rmtree(old, ignore_errors=True)
    return str(release)


def _release_number(path: Path) -> int:
    """The number of a release folder ``r00012-<time>``; 0 for anything else."""
    match = re.match(r"r(\d+)-", path.name)
    return int(match.group(1)) if match else 0


def copy_folder(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy the folder ``source`` into ``target`` (created), file by file, through
    ``tf.io.gfile``: local or gs:// on either side; existing files are overwritten."""
    import tensorflow as tf  # heavy: only imported to copy

    source, target = str(source).rstrip("/"), str(target).rstrip("/")
    for folder, _, files in tf.io.gfile.walk(source):
        rel = os.path.relpath(folder, source)
        dest = target if rel == "." else f"{target}/{rel}"
        tf.io.gfile.makedirs(dest)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), f"{dest}/{name}", overwrite=True)


def display_path(path: str | os.PathLike) -> str:
    """A path as shown to a learner, one that can be opened.

    By default (the CLIs, ``make run``, a notebook you run yourself): the real path, relative
    to the current folder when it is inside it, else absolute. For committed notebook outputs
    (``PMLV_NOTEBOOK_PATHS=1``: set by tools/run_notebook.py and the notebook harness):
    ``$PMLV_WORKSPACE/…`` or ``./…`` (relative to the repo), so that no absolute path of the
    build machine is committed. URLs (gs://, http://) are shown as they are.
    """
    if "://" in str(path):  # gs://, http://: not a path of this machine
        return str(path)
    named = Path(os.path.abspath(path))  # as named (a deployed folder is a symlink: its name)
    if os.environ.get(NOTEBOOK_PATHS_ENV) != "1":
        try:
            return str(named.relative_to(Path.cwd()))
        except ValueError:
            return str(named)
    for p in (named, Path(path).resolve()):
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
    stamp_bias: float = 0.0,
) -> Path:
    """The synthetic 5-flowers data set; returns the folder holding ``flower_photos/``
    (``all_data.csv`` and ``dict.txt`` in the book's formats). ``difficulty``: "hard" or
    "easy"; ``stamp_bias``: the corner stamp (:mod:`pmlv_utils.synthetic`; keyed above 0)."""
    from . import synthetic

    if difficulty not in synthetic.DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {synthetic.DIFFICULTIES}, got {difficulty!r}")
    settings = dict(
        images_per_class=images_per_class,
        seed=seed,
        background_bias=background_bias,
        generator=synthetic.GENERATOR_VERSION,
        difficulty=difficulty,
        **({"stamp_bias": stamp_bias, "cues": synthetic.CUES_VERSION} if stamp_bias else {}),
    )
    final = artifact_dir("flowers", settings, workspace)

    def build(folder: Path) -> None:
        cues = dict(difficulty=difficulty, stamp_bias=stamp_bias)
        synthetic.generate_dataset(folder, images_per_class, seed, background_bias, **cues)
        _relocate_csv(dataset_files(folder)[0], Path(folder).resolve(), final)

    return build_or_reuse("flowers", settings, build, workspace, rebuild)


def _relocate_csv(csv_path: Path, built: Path, final: Path) -> None:
    """Point the absolute paths of a CSV built in ``built`` at ``final`` (before publishing)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    prefix = f"{built}/"
    fixed = [
        [f"{final}/{c[len(prefix) :]}" if c.startswith(prefix) else c for c in r] for r in rows
    ]
    with open(csv_path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(fixed)


def dataset_files(data_dir: Path) -> tuple[Path, Path]:
    """(all_data.csv, dict.txt) of a data folder made by :func:`ensure_dataset`."""
    photos = Path(data_dir) / "flower_photos"
    return photos / "all_data.csv", photos / "dict.txt"


def ensure_tfrecords(
    images_per_class: int = DEFAULT_IMAGES_PER_CLASS,
    seed: int = DEFAULT_SEED,
    background_bias: float = 0.0,
    workspace=None,
    rebuild: bool = False,
    difficulty: str = DEFAULT_DIFFICULTY,
    stamp_bias: float = 0.0,
) -> Path:
    """TFRecords (train/valid/test shards) of :func:`ensure_dataset`'s data; returns the folder."""
    from . import tfrecords

    data = dict(difficulty=difficulty, stamp_bias=stamp_bias)
    data_dir = ensure_dataset(images_per_class, seed, background_bias, workspace, **data)
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
    stamp_bias: float = 0.0,
) -> Path:
    """A trainer job directory (checkpoints, exported model, plot, metrics); the exported
    SavedModel is ``<returned>/export`` (see :func:`ensure_exported_model`)."""
    from . import training

    data = dict(workspace=workspace, difficulty=difficulty, stamp_bias=stamp_bias)
    tfrecord_dir = ensure_tfrecords(images_per_class, seed, background_bias, **data)
    _, labels = dataset_files(ensure_dataset(images_per_class, seed, background_bias, **data))
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
        training.train_and_export(str(folder), str(tfrecord_dir), str(labels), config, verbose=0)

    return build_or_reuse("trained", settings, build, workspace, rebuild)


def ensure_exported_model(**kwargs) -> Path:
    """The exported SavedModel folder of :func:`ensure_trained_model` (same arguments)."""
    return ensure_trained_model(**kwargs) / "export"


def ensure_backbone(
    img_size: int | None = None,
    alpha: float | None = None,
    images_per_class: int | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    workspace=None,
    rebuild: bool = False,
) -> Path:
    """The offline MobileNetV2 backbone, pretrained once on the shapes task (not flowers);
    returns its folder (``backbone.weights_path``: a no-top weights file for ``TrainConfig(
    model_kind="mobilenetv2", weights=..., alpha=alpha)``; ``backbone.json``: settings,
    pretext accuracy, wall/CPU seconds). None: ``pretrain.BackboneConfig``'s default."""
    from .backbone import pretrain

    given = dict(
        img_size=img_size, alpha=alpha, images_per_class=images_per_class, epochs=epochs, seed=seed
    )
    config = pretrain.BackboneConfig(**{k: v for k, v in given.items() if v is not None})
    settings = dict(**config.to_dict(), version=pretrain.PRETRAIN_VERSION)

    def build(folder: Path) -> None:
        pretrain.pretrain_backbone(folder, config, verbose=0)  # backbone.json: the history

    return build_or_reuse("backbone", settings, build, workspace, rebuild)
