"""TrainConfig: every setting that changes the trained model, in one frozen dataclass.

What is *not* here is how a run is carried out (where the data and the output are, resume or
not, which shard pattern, export or not, how much it prints): those are the keyword arguments
of :func:`pmlv_utils.training.train_and_export`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..distribute import MODES
from ..model import DEFAULT_CROP_RATIO, MODEL_KINDS

TRAINING_LOOPS = ("auto", "fit", "custom")
# The settings that must match for resume=True (marked below): they define the model's layers
# and its starting weights. num_epochs may grow on resume; patience, distribute,
# training_loop and deterministic only change how the remaining epochs run; lrate,
# batch_size and weights are taken from the saved model and optimizer.
_SAME_ON_RESUME = {"resume": True}


@dataclass(frozen=True)
class TrainConfig:
    """The trainer's settings (the book's flags). Frozen: derive a variant with
    :meth:`replace`, e.g. ``config.replace(num_epochs=30)``.

    model_kind: "small_cnn" or "mobilenetv2" (:func:`pmlv_utils.model.build_model`).
    img_size: side of the preprocessed images.
    crop_ratio: the smallest side of the random zoom crop (training only; at inference the
        model sees the whole image) as a fraction of img_size; 1.0: no crop
        (None: :data:`pmlv_utils.model.DEFAULT_CROP_RATIO`).
    flip / with_color_distort: random horizontal flip / brightness and contrast in training.
    augment: False switches every augmentation off (crop, flip and colour).
    weights: mobilenetv2 only: None, a local no-top weights file (e.g.
        :func:`pmlv_utils.workspace.ensure_backbone`), or "imagenet".
    alpha: mobilenetv2 only: the width multiplier (the weights' own).
    freeze_backbone: with weights, train only the head (False: fine-tune the backbone too).
    lrate: Adam's learning rate at the start of its cosine decay over all epochs.
    patience: epochs without a better val_accuracy before early stopping.
    distribute: "cpu", "gpus_one_machine", "gpus_multiple_machines" or "tpu"
        (:func:`pmlv_utils.distribute.create_strategy`).
    training_loop: "fit" (Keras), "custom" (:func:`pmlv_utils.training.fit_distributed`) or
        "auto": ``fit`` with one replica, the custom loop with several.
    deterministic: enable TensorFlow's op determinism while training (same seed -> same
        weights on CPU, also across processes; without it oneDNN's threaded kernels vary).
    """

    model_kind: str = field(default="small_cnn", metadata=_SAME_ON_RESUME)
    img_size: int = field(default=128, metadata=_SAME_ON_RESUME)
    num_hidden: int = field(default=16, metadata=_SAME_ON_RESUME)
    crop_ratio: float | None = field(default=DEFAULT_CROP_RATIO, metadata=_SAME_ON_RESUME)
    with_color_distort: bool = field(default=True, metadata=_SAME_ON_RESUME)
    flip: bool = field(default=True, metadata=_SAME_ON_RESUME)
    augment: bool = field(default=True, metadata=_SAME_ON_RESUME)
    alpha: float = field(default=1.0, metadata=_SAME_ON_RESUME)
    freeze_backbone: bool = field(default=True, metadata=_SAME_ON_RESUME)
    l2: float = field(default=0.0, metadata=_SAME_ON_RESUME)
    seed: int = field(default=42, metadata=_SAME_ON_RESUME)
    weights: str | None = None
    lrate: float = 2e-3
    batch_size: int = 32
    num_epochs: int = 15
    patience: int = 5
    distribute: str = "cpu"
    training_loop: str = "auto"
    deterministic: bool = True

    def __post_init__(self):
        crop_ratio = DEFAULT_CROP_RATIO if self.crop_ratio is None else self.crop_ratio
        for name, kind, value in (
            ("img_size", int, self.img_size),
            ("num_hidden", int, self.num_hidden),
            ("crop_ratio", float, crop_ratio),
            ("with_color_distort", bool, self.with_color_distort),
            ("flip", bool, self.flip),
            ("augment", bool, self.augment),
            ("alpha", float, self.alpha),
            ("freeze_backbone", bool, self.freeze_backbone),
            ("l2", float, self.l2),
            ("seed", int, self.seed),
            ("lrate", float, self.lrate),
            ("batch_size", int, self.batch_size),
            ("num_epochs", int, self.num_epochs),
            ("patience", int, self.patience),
            ("deterministic", bool, self.deterministic),
        ):
            if kind is bool and isinstance(value, str):  # bool("False") would be True
                raise ValueError(f"{name} must be True or False, got {value!r}")
            object.__setattr__(self, name, kind(value))  # e.g. numpy numbers from a search
        if self.model_kind not in MODEL_KINDS:
            raise ValueError(f"model_kind must be one of {MODEL_KINDS}, got {self.model_kind!r}")
        if self.distribute not in MODES:
            raise ValueError(f"distribute mode must be one of {MODES}, got {self.distribute!r}")
        if self.training_loop not in TRAINING_LOOPS:
            raise ValueError(
                f"training_loop must be 'auto', 'fit' or 'custom', got {self.training_loop!r}"
            )

    def replace(self, **changes) -> TrainConfig:
        """A copy with some settings changed (the same checks run again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The settings as a JSON-ready dict (``metrics.json`` and ``state.json``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> TrainConfig:
        """The config saved in a ``settings`` dict (keys that are not settings are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in names})


# The saved settings that must equal the new ones for resume=True (the labels too: they are
# the model's outputs).
RESUME_KEYS = (
    *(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("resume")),
    "labels",
)


def resume_differences(saved: dict, now: dict) -> dict:
    """``{key: (saved value, new value)}`` for each of :data:`RESUME_KEYS` that differs
    between two settings dicts (empty: the run may be resumed)."""
    return {k: (saved.get(k), now.get(k)) for k in RESUME_KEYS if saved.get(k) != now.get(k)}
