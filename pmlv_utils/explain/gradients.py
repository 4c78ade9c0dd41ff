"""The gradient methods: integrated gradients (with its integration rules), XRAI and Grad-CAM.

The algorithms come from the ``saliency`` library. What this module adds is the IG integration
rules that ``saliency`` lacks (left/right/middle/trapezoid Riemann sums and Gauss-Legendre, with
the names alibi uses) and the completeness gap Vertex AI reports as ``approx_error``; alibi's
own IntegratedGradients runs beside it (:func:`alibi_integrated_gradients`) for comparison. The
``run_*`` functions are what :func:`pmlv_utils.explain.explain` dispatches to.
"""

from __future__ import annotations

import keras
import numpy as np
import saliency.core as saliency
from alibi.explainers import IntegratedGradients as AlibiIntegratedGradients
from skimage.transform import resize

from .adapters import ExplainableModel
from .checks import make_baseline

# IG integration rules. "riemann" is the saliency library's own scheme (the mean of the
# gradients at `steps` evenly spaced points, both ends included); the others are computed
# here from the model's gradients, with the names alibi uses.
IG_INTEGRATION = (
    "riemann",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)
DEFAULT_IG_STEPS = 25  # the book's --num-integral-steps


def integration_points(integration: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) of the path integral from baseline (alpha 0) to input (alpha 1)."""
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps: expected a positive int, got {steps!r}")
    n = int(steps)
    if integration == "riemann":  # the saliency library's rule
        return np.linspace(0.0, 1.0, n), np.full(n, 1.0 / n)
    if integration == "riemann_left":
        return np.arange(n) / n, np.full(n, 1.0 / n)
    if integration == "riemann_right":
        return (np.arange(n) + 1.0) / n, np.full(n, 1.0 / n)
    if integration == "riemann_middle":
        return (np.arange(n) + 0.5) / n, np.full(n, 1.0 / n)
    if integration == "riemann_trapezoid":
        if n < 2:
            raise ValueError("steps: the trapezoid rule needs at least 2 points")
        w = np.full(n, 1.0 / (n - 1))
        w[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, n), w
    if integration == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(n)
        return (nodes + 1.0) / 2.0, w / 2.0
    raise ValueError(f"integration: unknown {integration!r}; choose one of {IG_INTEGRATION}")


def _saliency_call_model_function(model: ExplainableModel):
    def call(x_batch, call_model_args=None, expected_keys=None):
        target = call_model_args["target"]
        out = {}
        if saliency.base.INPUT_OUTPUT_GRADIENTS in expected_keys:
            _, grads = model.target_gradients(x_batch, np.full(len(x_batch), target))
            out[saliency.base.INPUT_OUTPUT_GRADIENTS] = grads
        if saliency.base.CONVOLUTION_LAYER_VALUES in expected_keys:
            conv, grads = model.gradcam_tensors(x_batch, np.full(len(x_batch), target))
            out[saliency.base.CONVOLUTION_LAYER_VALUES] = conv
            out[saliency.base.CONVOLUTION_OUTPUT_GRADIENTS] = grads
        return out

    return call


def _saliency_masks(method, model, images, targets, per_image=None, **options) -> np.ndarray:
    """``method.GetMask`` (a saliency method) of each image for its target class, stacked.

    ``per_image``: keyword arguments for each image's call; ``options``: for every call.
    """
    call_model = _saliency_call_model_function(model)
    per_image = per_image if per_image is not None else [{}] * len(images)
    return np.stack(
        [
            method.GetMask(x, call_model, call_model_args={"target": int(t)}, **extra, **options)
            for x, t, extra in zip(images, targets, per_image)
        ]
    )


def _ig_one(
    x: np.ndarray,
    baseline: np.ndarray,
    target: int,
    model: ExplainableModel,
    steps: int,
    integration: str,
) -> np.ndarray:
    """IG attributions [H, W, 3] of one image for one baseline."""
    if integration == "riemann":
        integration_points(integration, steps)  # validates steps
        return saliency.IntegratedGradients().GetMask(
            x,
            _saliency_call_model_function(model),
            call_model_args={"target": int(target)},
            x_baseline=baseline,
            x_steps=int(steps),
            batch_size=min(int(steps), model.batch_size),
        )
    alphas, weights = integration_points(integration, steps)
    path = baseline[None] + alphas[:, None, None, None].astype(np.float32) * (x - baseline)[None]
    _, grads = model.target_gradients(path, np.full(len(path), target))
    return (x - baseline) * np.tensordot(weights.astype(np.float32), grads, axes=1)


def completeness_gap(
    attributions: np.ndarray, f_input: np.ndarray, f_baseline: np.ndarray
) -> np.ndarray:
    """|sum(attr) - (F(x) - F(baseline))| / |F(x) - F(baseline)| per image (Vertex's
    approx_error)."""
    attributions = np.asarray(attributions, np.float64)
    total = attributions.reshape(len(attributions), -1).sum(axis=1)
    delta = np.asarray(f_input, np.float64) - np.asarray(f_baseline, np.float64)
    return np.abs(total - delta) / np.maximum(np.abs(delta), 1e-12)


def integrated_gradients(
    images: np.ndarray,
    targets: np.ndarray,
    model: ExplainableModel,
    steps: int = DEFAULT_IG_STEPS,
    baseline="black",
    integration: str = "riemann",
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """IG attributions per colour channel [N, H, W, 3], completeness gaps [N], and details."""
    base = make_baseline(baseline, images.shape[1:], seed)
    attrs = np.stack(
        [_ig_one(x, base, t, model, steps, integration) for x, t in zip(images, targets)]
    )
    probs = model.predict(np.concatenate([images, base[None]]))
    f_input = probs[np.arange(len(images)), targets]
    f_baseline = probs[-1][targets]
    gaps = completeness_gap(attrs, f_input, f_baseline)
    details = {
        "f_input": f_input,
        "f_baseline": f_baseline,
        "sum_attributions": attrs.reshape(len(attrs), -1).sum(axis=1),
        "steps": int(steps),
        "integration": integration,
        "baseline": baseline if isinstance(baseline, str) else "custom",
    }
    return attrs.astype(np.float32), gaps, details


def run_ig(
    images, targets, model, steps=DEFAULT_IG_STEPS, baseline="black", integration="riemann", seed=42
):
    """IG maps [N, H, W] (summed over the colour channels), completeness gaps, details."""
    attrs, gaps, details = integrated_gradients(
        images, targets, model, steps, baseline, integration, seed
    )
    return attrs.sum(axis=-1), gaps, details


def run_xrai(
    images,
    targets,
    model,
    steps=DEFAULT_IG_STEPS,
    baselines=("black", "white"),
    integration="riemann",
    seed=42,
    algorithm="full",
):
    """XRAI regions over the mean IG attribution of ``baselines`` (the gap is their mean)."""
    if isinstance(baselines, (str, np.ndarray)):
        baselines = [baselines]
    per_baseline = [
        integrated_gradients(images, targets, model, steps, b, integration, seed) for b in baselines
    ]
    ig_mean = np.mean([attrs for attrs, _, _ in per_baseline], axis=0)
    gaps = np.mean([g for _, g, _ in per_baseline], axis=0)
    params = saliency.XRAIParameters(steps=int(steps), algorithm=algorithm)
    maps = _saliency_masks(
        saliency.XRAI(),
        model,
        images,
        targets,
        [dict(base_attribution=a) for a in ig_mean],
        extra_parameters=params,
    )
    return (
        maps,
        gaps,
        {
            "steps": int(steps),
            "integration": integration,
            "baselines": [b if isinstance(b, str) else "custom" for b in baselines],
        },
    )


def run_gradcam(images, targets, model):
    """Grad-CAM maps of a model from ``from_keras``: saliency's conv-cell map (ReLU, scaled to
    max 1), resized into the model's field of view and 0 outside it.

    Resizing it over the whole image instead (saliency's ``should_resize``) would stretch the
    map of a cropped window over the frame the model never sees, misplacing every cell."""
    cells = _saliency_masks(
        saliency.GradCam(), model, images, targets, should_resize=False, three_dims=False
    )
    fov = model.field_of_view
    maps = np.stack([fov.place(_resize_cells(c, (fov.height, fov.width))) for c in cells])
    return maps, None, {"cells": list(cells[0].shape), "field_of_view": fov.window}


def _resize_cells(cells: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A conv-cell map scaled to max 1 and resized bilinearly to ``size`` (cell centres land on
    the centres of the pixel blocks they cover)."""
    peak = cells.max()
    cells = cells / peak if peak > 0 else cells
    return resize(cells.astype(np.float64), size, order=1, mode="edge").astype(np.float32)


def inference_model(keras_model):
    """``keras_model`` frozen in inference mode (``training=False``), as a model alibi can call:
    alibi calls ``model(x)``, and without ``training=False`` Keras' augmentation layers
    (RandomFlip, RandomBrightness, ...) flip and recolour every point of the path."""
    inp = keras.Input(tuple(keras_model.inputs[0].shape[1:]))
    return keras.Model(inp, keras_model(inp, training=False))


def _same_without_training_flag(keras_model, images) -> bool:
    a = np.asarray(keras_model(images[:2]))
    return bool(np.allclose(a, np.asarray(keras_model(images[:2], training=False)), atol=1e-6))


def alibi_integrated_gradients(
    images: np.ndarray,
    targets,
    keras_model,
    method: str = "gausslegendre",
    n_steps: int = 50,
    internal_batch_size: int = 100,
    layer: str | None = None,
    baseline: float = 0.0,
) -> dict:
    """alibi's ``IntegratedGradients`` (the recipe text's library) on a Keras model, beside the
    course's own IG: ``method`` is one of alibi's rules (the names of :data:`IG_INTEGRATION`
    minus "riemann"), ``layer`` a layer name for a layer attribution (what that layer's output
    contributes) instead of the input's.

    Returns ``{"attributions": [N, h, w] (summed over channels), "raw": alibi's array,
    "gap": [N] completeness gap, "deltas": alibi's sum(attr) - (F(x) - F(baseline))}``."""
    if method not in IG_INTEGRATION[1:]:
        raise ValueError(f"method: one of alibi's rules {IG_INTEGRATION[1:]}, got {method!r}")
    images = np.asarray(images, np.float32)
    targets = np.broadcast_to(np.asarray(targets, np.int64), (len(images),))
    if layer is None:
        inference = inference_model(keras_model)
    elif _same_without_training_flag(keras_model, images):  # alibi needs a top-level layer
        inference = keras_model
    else:
        raise ValueError(
            "layer: alibi's layer attributions call the model without training=False, and this "
            "model's output then differs (augmentation layers); use input attributions"
        )
    explainer = AlibiIntegratedGradients(
        inference,
        layer=None if layer is None else inference.get_layer(layer),
        method=method,
        n_steps=int(n_steps),
        internal_batch_size=int(internal_batch_size),
    )
    exp = explainer.explain(images, baselines=float(baseline), target=np.array(targets))
    raw = np.asarray(
        exp.attributions[0] if isinstance(exp.attributions, list) else exp.attributions
    )
    probs = np.asarray(inference(np.concatenate([images, np.full_like(images[:1], baseline)])))
    delta = probs[np.arange(len(images)), targets] - probs[-1][targets]
    return {
        "attributions": raw.sum(axis=-1),
        "raw": raw,
        "gap": completeness_gap(raw, delta, np.zeros_like(delta)),
        "deltas": np.asarray(exp.data["deltas"]),
    }
