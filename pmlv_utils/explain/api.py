"""The entry point :func:`explain`: one call for every method, with its checks and counters.

    model = ExplainableModel.from_saved_model(export_dir)      # or .from_keras / .from_predict_fn
    result = explain(images, target_classes, method="ig", model=model, steps=50)

``model_calls`` counts images evaluated by the model (forward, or forward + gradient), not
batches: it is the cost that scales with the image count on a serving platform.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import gradients, perturbation
from .adapters import BLACK_BOX_METHODS, GRADIENT_METHODS, ExplainableModel, no_gradcam_message
from .checks import check_images, check_targets

METHODS = GRADIENT_METHODS + BLACK_BOX_METHODS  # ig, xrai, gradcam, lime, kernelshap, anchors


@dataclass
class Explanation:
    """The result of :func:`explain` for a batch of N images."""

    attributions: np.ndarray  # [N, H, W] float32
    approx_error: np.ndarray | None  # [N] completeness gap (IG, XRAI) or None
    method: str
    model_calls: int  # images evaluated by the model (forward or forward+gradient)
    seconds: float
    extra: dict = field(default_factory=dict)


def explain(
    images,
    target_classes=None,
    method: str = "ig",
    model: ExplainableModel | None = None,
    **options,
) -> Explanation:
    """Explain ``model``'s probability of ``target_classes`` (one per image; None = predicted).

    images: float [N, H, W, 3] in [0, 1] at the model's size.
    method: one of :data:`METHODS`. Options per method:

    - ``ig``: ``steps`` (25), ``baseline`` ('black' | 'white' | 'random' | array; 'black'),
      ``integration`` (one of :data:`IG_INTEGRATION`; 'riemann'), ``seed`` (random baseline, 42).
    - ``xrai``: ``steps``, ``baselines`` (('black', 'white')), ``integration``, ``seed``,
      ``algorithm`` ('full' | 'fast').
    - ``gradcam``: none (``from_keras`` models only).
    - ``lime``: ``num_samples`` (1000), ``n_segments`` (40), ``seed`` (1), ``hide`` ('mean').
    - ``kernelshap``: ``num_samples`` (1000), ``n_segments`` (40), ``seed`` (1), ``hide``.
    - ``anchors``: ``threshold`` (0.95), ``p_sample`` (0.5), ``n_segments`` (40), ``seed`` (1),
      ``batch_size`` (100), ``hide``, ``max_anchor_size`` (None: no limit).

    ``hide`` (one of :data:`HIDE_MODES`) is how the perturbation methods switch a superpixel
    off: its mean colour (the libraries' default), or grey, or black.
    """
    runner = _checked_runner(method, model, options)
    images = check_images(images, model)
    calls_before, start = model.calls(), time.perf_counter()
    targets = check_targets(target_classes, len(images), model, images)
    maps, errors, extra = runner(images, targets, model, **options)
    seconds = time.perf_counter() - start
    extra = dict(extra)
    extra.setdefault("target_classes", targets)
    return Explanation(
        attributions=np.asarray(maps, np.float32),
        approx_error=errors,
        method=method,
        model_calls=model.calls() - calls_before,
        seconds=seconds,
        extra=extra,
    )


def _checked_runner(method: str, model, options: dict):
    """The runner of ``method``, once the method, the model and the options fit together."""
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; choose one of {METHODS}")
    if not isinstance(model, ExplainableModel):
        raise ValueError(
            "model: pass an ExplainableModel (from_saved_model, from_keras or from_predict_fn)"
        )
    if method in GRADIENT_METHODS and not model.supports_gradients:
        raise ValueError(
            f"method {method!r} needs the model's gradients, but {model.name!r} is a black box "
            f"(predictions only): use one of {BLACK_BOX_METHODS}"
        )
    if method == "gradcam" and not model.supports_gradcam:
        raise ValueError(no_gradcam_message(model.name))
    allowed = _OPTIONS[method]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"options {unknown} are not used by method {method!r}; it takes {sorted(allowed)}"
        )
    return _RUNNERS[method]


# method -> runner(images, targets, model, **options) -> (maps [N, H, W], gaps or None, details)
_RUNNERS = {
    "ig": gradients.run_ig,
    "xrai": gradients.run_xrai,
    "gradcam": gradients.run_gradcam,
    "lime": perturbation.run_lime,
    "kernelshap": perturbation.run_kernelshap,
    "anchors": perturbation.run_anchors,
}
# method -> the options explain() passes on to its runner
_OPTIONS = {
    "ig": ("steps", "baseline", "integration", "seed"),
    "xrai": ("steps", "baselines", "integration", "seed", "algorithm"),
    "gradcam": (),
    "lime": ("num_samples", "n_segments", "seed", "batch_size", "hide"),
    "kernelshap": ("num_samples", "n_segments", "seed", "hide"),
    "anchors": (
        "threshold",
        "p_sample",
        "n_segments",
        "seed",
        "batch_size",
        "hide",
        "max_anchor_size",
    ),
}
