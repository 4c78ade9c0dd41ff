"""The trainer's command line, with the book's flags (``flowers.classifier.train``).

    python -m pmlv_utils.train --job-dir JOB_DIR --input_topdir TFRECORD_DIR \\
        [--labels_file dict.txt] [--pattern "-*"] [--num_epochs 15] [--batch_size 32] \\
        [--lrate 0.002] [--num_hidden 16] [--crop_ratio 0.75] [--with_color_distort True] \\
        [--l2 0] [--distribute cpu] [--resume] [--img_size 128] [--model_kind small_cnn] \\
        [--flip True] [--weights FILE --alpha 0.35 --freeze_backbone False] [--no_tensorboard]

Runs :func:`pmlv_utils.training.train_and_export` and prints the metrics as JSON on the
last line. ``pmlv_utils.train`` (the book's module name) is this command, and the
``pythonModule`` of the Vertex job specs in ``07_training/vertex/``, which
:func:`render_vertex_config` fills in and :func:`vertex_submit_command` submits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

import tensorflow as tf  # tf.io.gfile: local or gs://

from ..distribute import MODES, create_strategy
from ..model import MODEL_KINDS
from ..workspace import copy_folder
from .config import TrainConfig
from .run import train_and_export

TRUE_WORDS, FALSE_WORDS = ("true", "t", "yes", "y", "1"), ("false", "f", "no", "n", "0")
# What the last line of the output holds (the metrics.json keys).
SUMMARY_KEYS = (
    "train_accuracy",
    "val_accuracy",
    "test_accuracy",
    "best_epoch",
    "epochs_run",
    "seconds",
)
# The flags that are TrainConfig fields (the others say where and how to run).
CONFIG_FLAGS = (
    "model_kind",
    "img_size",
    "num_hidden",
    "crop_ratio",
    "with_color_distort",
    "flip",
    "augment",
    "l2",
    "seed",
    "weights",
    "alpha",
    "freeze_backbone",
    "lrate",
    "batch_size",
    "num_epochs",
    "patience",
    "distribute",
)
VERTEX_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "07_training",
    "vertex",
)
VERTEX_CONFIGS = ("cpu", "gpus_one_machine", "gpus_multiple_machines", "tpu", "hparam")


def str_to_bool(text: str) -> bool:
    """'True'/'False' (and yes/no/1/0) as the book's ``--with_color_distort`` takes them."""
    value = str(text).strip().strip("\"'").lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def default_labels_file(input_topdir: str) -> str:
    """``dict.txt`` in the TFRecord folder, or else in its parent's ``flower_photos/``."""
    candidates = [
        os.path.join(input_topdir, "dict.txt"),
        os.path.join(os.path.dirname(input_topdir.rstrip("/")), "flower_photos", "dict.txt"),
        os.path.join(os.path.dirname(input_topdir.rstrip("/")), "dict.txt"),
    ]
    for path in candidates:
        if tf.io.gfile.exists(path):
            return path
    raise FileNotFoundError(
        f"no dict.txt next to {input_topdir} (looked at {candidates}); pass --labels_file"
    )


# Flags whose value may start with "-" (the book writes ``--pattern "-*"``).
DASH_VALUE_FLAGS = ("--pattern",)


def join_dash_values(argv: list[str]) -> list[str]:
    """``["--pattern", "-*"]`` -> ``["--pattern=-*"]``: argparse takes a value that starts
    with "-" for an option, and refuses the book's ``--pattern "-*"`` (the shell removes
    the quotes) unless it is written ``--pattern=-*``."""
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if token in DASH_VALUE_FLAGS and nxt is not None and nxt.startswith("-"):
            if not nxt.startswith("--") or nxt.strip("-*") == "":  # "-*", "--*": a pattern
                out.append(f"{token}={nxt}")
                i += 2
                continue
        out.append(token)
        i += 1
    return out


class TrainerParser(argparse.ArgumentParser):
    """An ArgumentParser that also takes ``--pattern "-*"`` (see :func:`join_dash_values`)."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(join_dash_values(args), namespace)


def build_parser() -> argparse.ArgumentParser:
    """The book's flags (and a few more: --augment, --weights, --patience, --seed, ...)."""
    p = TrainerParser(prog="python -m pmlv_utils.train", description=__doc__.split("\n")[0])
    _add_run_flags(p)
    _add_config_flags(p)
    return p


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--job-dir",
        "--job_dir",
        dest="job_dir",
        default=os.environ.get("AIP_MODEL_DIR"),
        help="output folder (checkpoints, export, metrics); default on Vertex: $AIP_MODEL_DIR",
    )
    p.add_argument("--input_topdir", required=True, help="folder of the train/valid/test TFRecords")
    p.add_argument(
        "--labels_file",
        default=None,
        help="dict.txt (default: in input_topdir, or ../flower_photos/dict.txt)",
    )
    p.add_argument(
        "--pattern",
        default="-*",
        type=lambda s: s.strip("\"'"),
        help='shard pattern after the split name (the book: --pattern "-*")',
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from checkpoints/last.keras in job-dir at the saved epoch",
    )
    p.add_argument("--no_export", action="store_true", help="skip the SavedModel export")
    p.add_argument("--no_tensorboard", action="store_true", help="write no TensorBoard logs")


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--num_epochs", type=int, default=d.num_epochs)
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument(
        "--lrate",
        type=float,
        default=d.lrate,
        help="Adam learning rate at the start of its cosine decay (book: 1e-3, constant)",
    )
    p.add_argument(
        "--num_hidden", type=int, default=d.num_hidden, help="units of the last-but-one layer"
    )
    p.add_argument(
        "--crop_ratio",
        type=float,
        default=d.crop_ratio,
        help="smallest side of the random zoom crop in training, as a fraction (1: no crop); "
        "at inference the model sees the whole image",
    )
    p.add_argument(
        "--with_color_distort",
        type=str_to_bool,
        nargs="?",
        const=True,
        default=d.with_color_distort,
        help="True or False (random brightness and contrast in training)",
    )
    p.add_argument(
        "--flip", type=str_to_bool, default=d.flip, help="True or False (random left-right flip)"
    )
    p.add_argument(
        "--augment",
        type=str_to_bool,
        default=d.augment,
        help="False: no random crop/flip/colour, e.g. to compare distributed runs step by step",
    )
    p.add_argument("--l2", type=float, default=d.l2, help="L2 regularisation of the dense layers")
    p.add_argument("--distribute", default=d.distribute, choices=MODES)
    p.add_argument(
        "--img_size", type=int, default=d.img_size, help="preprocessed image side (pixels)"
    )
    p.add_argument(
        "--patience", type=int, default=d.patience, help="early stopping patience (epochs)"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    _add_model_flags(p, d)


def _add_model_flags(p: argparse.ArgumentParser, d: TrainConfig) -> None:
    p.add_argument("--model_kind", default=d.model_kind, choices=MODEL_KINDS)
    p.add_argument(
        "--weights",
        default=None,
        help="mobilenetv2 only: a local no-top weights file, or 'imagenet' (network)",
    )
    p.add_argument(
        "--alpha", type=float, default=d.alpha, help="mobilenetv2 only: width multiplier"
    )
    p.add_argument(
        "--freeze_backbone",
        type=str_to_bool,
        default=d.freeze_backbone,
        help="with --weights: train the head only (False: fine-tune the backbone too)",
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` the parsed flags describe."""
    return TrainConfig(**{name: getattr(args, name) for name in CONFIG_FLAGS})


def local_job_dir(job_dir: str) -> str:
    """The trainer writes with plain file I/O: a ``gs://`` job dir is used through the
    Cloud Storage FUSE mount ``/gcs/<bucket>/...`` that Vertex training machines have."""
    if not job_dir.startswith("gs://"):
        return job_dir
    if os.path.isdir("/gcs"):
        return "/gcs/" + job_dir[len("gs://") :]
    raise ValueError(
        f"--job-dir {job_dir}: a gs:// output folder needs the /gcs FUSE mount "
        f"(Vertex training); elsewhere give a local folder"
    )


def staged_job_dir(job_dir: str, resume: bool = False) -> tuple[str, str | None]:
    """``(folder the trainer writes, gs:// folder to copy it to at the end, or None)``.

    The trainer writes with plain file I/O (Keras' CSVLogger, for one, fails on gs://). A
    gs:// job dir is the /gcs FUSE mount where there is one (Vertex training); elsewhere the
    run writes a local temporary folder, copied to the gs:// job dir when it ends (with
    ``resume``, the gs:// job dir is first copied down)."""
    if not job_dir.startswith("gs://") or os.path.isdir("/gcs"):
        return local_job_dir(job_dir), None
    local = tempfile.mkdtemp(prefix="pmlv_job_")
    if resume and tf.io.gfile.isdir(job_dir):
        copy_folder(job_dir, local)
    return local, job_dir


def upload_job_dir(local: str, gcs_dir: str | None) -> None:
    """Copy a staged job dir (:func:`staged_job_dir`) to its gs:// folder, then delete it."""
    if gcs_dir:
        copy_folder(local, gcs_dir)
        shutil.rmtree(local, ignore_errors=True)
        print(f"job dir written in {local}, copied to {gcs_dir}", flush=True)


def render_vertex_config(name: str, bucket: str, out_path: str) -> str:
    """Write ``07_training/vertex/<name>.yaml`` with ``${BUCKET}`` filled in; return its path."""
    if name not in VERTEX_CONFIGS:
        raise ValueError(f"Vertex config must be one of {VERTEX_CONFIGS}, got {name!r}")
    if not bucket or "/" in bucket or bucket.startswith("gs:"):
        raise ValueError(f"bucket must be a bare bucket name, got {bucket!r}")
    with open(os.path.join(VERTEX_DIR, f"{name}.yaml")) as f:
        text = f.read().replace("${BUCKET}", bucket)
    with open(out_path, "w") as f:
        f.write(text)
    return out_path


def vertex_submit_command(
    name: str,
    config_path: str,
    project: str,
    region: str,
    display_name: str | None = None,
    max_trials: int = 20,
    parallel_trials: int = 2,
) -> list[str]:
    """The ``gcloud`` command that submits a rendered config (custom job or tuning job)."""
    display_name = display_name or f"flowers_{name}"
    common = [
        f"--region={region}",
        f"--project={project}",
        f"--display-name={display_name}",
        f"--config={config_path}",
    ]
    if name == "hparam":
        return [
            "gcloud",
            "ai",
            "hp-tuning-jobs",
            "create",
            *common,
            f"--max-trial-count={max_trials}",
            f"--parallel-trial-count={parallel_trials}",
        ]
    return ["gcloud", "ai", "custom-jobs", "create", *common]


def main(argv=None) -> int:
    """Parse the flags, train and export; print the job parameters and, last, the summary."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.job_dir:
        parser.error("--job-dir is required (or set AIP_MODEL_DIR)")
    args.job_dir, upload_to = staged_job_dir(args.job_dir, args.resume)
    config = config_from_args(args)
    # The strategy first: MultiWorkerMirroredStrategy must exist before TF starts up.
    strategy = create_strategy(config.distribute)
    labels_file = args.labels_file or default_labels_file(args.input_topdir)
    print(f"job parameters: {json.dumps({**vars(args), 'labels_file': labels_file})}", flush=True)
    metrics = train_and_export(
        args.job_dir,
        args.input_topdir,
        labels_file,
        config,
        resume=args.resume,
        pattern=args.pattern,
        export=not args.no_export,
        tensorboard=not args.no_tensorboard,
        strategy=strategy,
    )
    upload_job_dir(args.job_dir, upload_to)
    summary = {k: metrics[k] for k in SUMMARY_KEYS}
    print(json.dumps(summary), flush=True)
    return 0
