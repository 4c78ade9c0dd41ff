"""Train, checkpoint, early-stop, resume, evaluate and export the flowers classifier.

    training.train_and_export(job_dir, input_topdir, labels_file, training.TrainConfig(...))

Submodules:

    config       -> TrainConfig (frozen: every setting that changes the model), RESUME_KEYS
    checkpoints  -> best/last checkpoints, early stopping, state.json (CheckpointAndEarlyStop)
    loop         -> how the epochs run: Keras fit, or fit_distributed over several replicas
    run          -> train_and_export: data -> fit -> evaluate the best weights -> export
    evaluation   -> evaluate (accuracy, confusion matrix), curves plot, artifacts, tuning metric
    tensorboard  -> TensorBoard logs of a run, read_scalars, start_tensorboard (a local server)
    hparams      -> the book's search space and a local random search
    ablation     -> augmentation ablation over seeds, its summary, over-fitting curves
    cli          -> the book's flags (``python -m pmlv_utils.train``), Vertex job specs
"""

from . import ablation, checkpoints, cli, config, evaluation, hparams, loop, run, tensorboard
from .ablation import (
    ABLATION_VARIANTS,
    ablation_summary,
    augmentation_ablation,
    plot_overfitting,
)
from .checkpoints import CheckpointAndEarlyStop, load_state
from .config import RESUME_KEYS, TrainConfig
from .evaluation import evaluate, list_artifacts, plot_training_curves, report_tuning_metric
from .hparams import BOOK_SEARCH_SPACE, hparam_search, sample_hparams
from .loop import fit_distributed
from .run import CACHE_LIMIT_BYTES, TRAINER_VERSION, count_split_records, train_and_export
from .tensorboard import read_scalars, start_tensorboard, tensorboard_dir

__all__ = [
    "ABLATION_VARIANTS",
    "ablation",
    "ablation_summary",
    "augmentation_ablation",
    "plot_overfitting",
    "BOOK_SEARCH_SPACE",
    "CACHE_LIMIT_BYTES",
    "CheckpointAndEarlyStop",
    "RESUME_KEYS",
    "TRAINER_VERSION",
    "TrainConfig",
    "checkpoints",
    "cli",
    "config",
    "count_split_records",
    "evaluate",
    "evaluation",
    "fit_distributed",
    "hparam_search",
    "hparams",
    "list_artifacts",
    "load_state",
    "loop",
    "plot_training_curves",
    "read_scalars",
    "report_tuning_metric",
    "run",
    "sample_hparams",
    "start_tensorboard",
    "tensorboard",
    "tensorboard_dir",
    "train_and_export",
]
