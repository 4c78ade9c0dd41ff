"""Explaining an image classifier: IG, XRAI, Grad-CAM, LIME, KernelSHAP and Anchors.

One entry point, used by the notebooks and by the model server's ``:explain`` route::

    model = ExplainableModel.from_saved_model(export_dir)      # or .from_keras / .from_predict_fn
    result = explain(images, target_classes, method="ig", model=model, steps=50)
    result.attributions   # [N, H, W] float: one map per image
    result.approx_error   # [N] IG completeness gap (IG and XRAI), else None

The algorithms come from well-kept libraries: ``saliency`` (IG, XRAI, Grad-CAM), ``lime``
(``lime_image``), ``shap`` (``KernelExplainer`` over superpixels) and ``alibi``
(``AnchorImage``). What this module adds is the plumbing between them and a model, the IG
integration rules that ``saliency`` lacks (left/right/middle/trapezoid Riemann sums and
Gauss-Legendre), the completeness gap Vertex AI reports as ``approx_error``, a count of model
evaluations, and the metrics that compare explanations (rank correlation, top-k IoU, LIME
stability across seeds, attribution share on the object vs the background).

``model_calls`` counts images evaluated by the model (forward, or forward + gradient), not
batches: it is the cost that scales with the image count on a serving platform.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

METHODS = ("ig", "xrai", "gradcam", "lime", "kernelshap", "anchors")
GRADIENT_METHODS = ("ig", "xrai", "gradcam")
BLACK_BOX_METHODS = ("lime", "kernelshap", "anchors")

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
IG_BASELINES = ("black", "white", "random")
DEFAULT_IG_STEPS = 25  # the book's --num-integral-steps
LIME_STABILITY_SEEDS = tuple(range(1, 90, 10))  # 1, 11, ..., 81: the blog's 9 seeds
_VALUE_TOLERANCE = 1e-3  # pixel values may stray this far outside [0, 1]


@dataclass
class Explanation:
    """The result of :func:`explain` for a batch of N images."""

    attributions: np.ndarray  # [N, H, W] float32
    approx_error: np.ndarray | None  # [N] completeness gap (IG, XRAI) or None
    method: str
    model_calls: int  # images evaluated by the model (forward or forward+gradient)
    seconds: float
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# The model wrapper
# --------------------------------------------------------------------------------------


class ExplainableModel:
    """A classifier of float images [N, H, W, 3] in [0, 1] -> class probabilities [N, C].

    Build one with :meth:`from_saved_model` (the exported ``xai_model`` signature),
    :meth:`from_keras` (a Keras model: also gives Grad-CAM) or :meth:`from_predict_fn`
    (a black box, e.g. a REST endpoint or a TFLite interpreter: no gradients, so only the
    perturbation methods LIME, KernelSHAP and Anchors).
    """

    def __init__(
        self,
        predict_fn: Callable[[np.ndarray], np.ndarray],
        img_size: int | Sequence[int],
        *,
        target_gradient_fn: Callable | None = None,
        gradcam_fn: Callable | None = None,
        num_classes: int | None = None,
        labels: Sequence[str] | None = None,
        name: str = "model",
        batch_size: int = 64,
    ):
        size = (
            (int(img_size), int(img_size))
            if np.isscalar(img_size)
            else tuple(int(s) for s in img_size)
        )
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"img_size must be an int or (height, width), got {img_size!r}")
        self.img_size = size
        self.name = name
        self.labels = list(labels) if labels is not None else None
        self.batch_size = int(batch_size)
        self._predict_fn = predict_fn
        self._target_gradient_fn = target_gradient_fn
        self._gradcam_fn = gradcam_fn
        self._num_classes = num_classes
        self.forward_calls = 0
        self.gradient_calls = 0
        self._keep_alive: Any = None  # a loaded SavedModel must outlive its functions

    # ---- constructors ------------------------------------------------------------------
    @classmethod
    def from_saved_model(
        cls,
        export_dir: str | Path,
        signature: str = "xai_model",
        output_key: str = "probability",
        batch_size: int = 64,
    ) -> "ExplainableModel":
        """Wrap the ``xai_model`` signature (images -> probability) of an exported model.

        Gradients flow through the loaded signature with ``tf.GradientTape``.
        """
        import tensorflow as tf

        export_dir = Path(export_dir)
        if not (export_dir / "saved_model.pb").exists():
            raise ValueError(f"{export_dir.name}: not a SavedModel folder (no saved_model.pb)")
        loaded = tf.saved_model.load(str(export_dir))
        if signature not in loaded.signatures:
            raise ValueError(
                f"{export_dir.name}: no signature {signature!r} "
                f"(has {sorted(loaded.signatures.keys())})"
            )
        fn = loaded.signatures[signature]
        inputs = fn.structured_input_signature[1]
        if len(inputs) != 1:
            raise ValueError(
                f"signature {signature!r} should take one image tensor, takes {sorted(inputs)}"
            )
        input_name, spec = next(iter(inputs.items()))
        if output_key not in fn.structured_outputs:
            raise ValueError(
                f"signature {signature!r} has no output {output_key!r} "
                f"(has {sorted(fn.structured_outputs)})"
            )
        if spec.shape.rank != 4 or spec.shape[1] is None or spec.shape[2] is None:
            raise ValueError(
                f"signature {signature!r} input {input_name!r} should be [None, H, W, 3], "
                f"is {spec.shape}"
            )
        out_shape = fn.structured_outputs[output_key].shape
        if out_shape.rank != 2:
            raise ValueError(
                f"{signature!r} output {output_key!r} should be [None, num_classes] "
                f"probabilities, is {out_shape}"
            )
        img_size = (int(spec.shape[1]), int(spec.shape[2]))
        from . import export

        labels = export.model_labels(export_dir) or None

        def forward(x):
            return fn(**{input_name: x})[output_key]

        model = cls(
            _tf_predict(forward, img_size),
            img_size,
            target_gradient_fn=_tf_target_gradients(forward, img_size),
            num_classes=out_shape[1] or (len(labels) if labels else None),
            labels=labels,
            name=export_dir.name,
            batch_size=batch_size,
        )
        model._keep_alive = loaded
        return model

    @classmethod
    def from_keras(
        cls,
        model,
        conv_layer: str | None = None,
        outputs_are_logits: bool = False,
        labels: Sequence[str] | None = None,
        batch_size: int = 64,
    ) -> "ExplainableModel":
        """Wrap a Keras model whose output is class probabilities (or logits).

        ``conv_layer``: the layer Grad-CAM looks at; default the last top-level layer with a
        4-D output (the last conv block, or a nested backbone such as MobileNetV2).
        """
        import keras
        import tensorflow as tf

        shape = (
            tuple(model.inputs[0].shape)
            if getattr(model, "inputs", None)
            else tuple(model.input_shape)
        )
        if len(shape) != 4 or shape[1] is None or shape[2] is None:
            raise ValueError(f"Keras model input should be [None, H, W, 3], is {shape}")
        img_size = (int(shape[1]), int(shape[2]))

        def forward(x):
            out = model(x, training=False)
            return tf.nn.softmax(out) if outputs_are_logits else out

        layer = _gradcam_layer(model, conv_layer)
        gradcam_fn = None
        if layer is not None:
            both = keras.Model(model.inputs, [layer.output, model.outputs[0]])

            @tf.function(
                input_signature=[
                    tf.TensorSpec([None, *img_size, 3], tf.float32),
                    tf.TensorSpec([None], tf.int32),
                ],
                reduce_retracing=True,
            )
            def gradcam_fn(x, targets):
                with tf.GradientTape() as tape:
                    conv, out = both(x, training=False)
                    probs = tf.nn.softmax(out) if outputs_are_logits else out
                    y = tf.gather(probs, targets, axis=1, batch_dims=1)
                return conv, tape.gradient(y, conv)

        return cls(
            _tf_predict(forward, img_size),
            img_size,
            target_gradient_fn=_tf_target_gradients(forward, img_size),
            gradcam_fn=gradcam_fn,
            num_classes=int(model.outputs[0].shape[-1]),
            labels=labels,
            name=getattr(model, "name", "keras"),
            batch_size=batch_size,
        )

    @classmethod
    def from_job_dir(
        cls, job_dir: str | Path, checkpoint: str = "best", **kwargs
    ) -> "ExplainableModel":
        """The Keras model a trainer job saved (``checkpoints/<checkpoint>.keras``), with the
        labels of its export: the same weights as ``<job_dir>/export``, plus Grad-CAM."""
        import keras

        from . import preprocess  # noqa: F401  (registers the model's custom layers)

        path = Path(job_dir) / "checkpoints" / f"{checkpoint}.keras"
        if not path.exists():
            raise ValueError(
                f"{Path(job_dir).name}: no checkpoints/{checkpoint}.keras (not a trainer job dir?)"
            )
        from . import export

        labels = kwargs.pop("labels", None) or export.model_labels(Path(job_dir) / "export") or None
        return cls.from_keras(keras.models.load_model(path), labels=labels, **kwargs)

    @classmethod
    def from_predict_fn(
        cls,
        fn: Callable[[np.ndarray], Any],
        img_size: int | Sequence[int],
        labels: Sequence[str] | None = None,
        batch_size: int = 64,
        name: str = "predict_fn",
    ) -> "ExplainableModel":
        """A black box: ``fn(images [N,H,W,3] float32 in [0,1]) -> probabilities [N, C]``.

        No gradients: only LIME, KernelSHAP and Anchors can explain it.
        """
        return cls(
            lambda x: np.asarray(fn(x), dtype=np.float32),
            img_size,
            labels=labels,
            num_classes=len(labels) if labels else None,
            name=name,
            batch_size=batch_size,
        )

    # ---- what the explainers call ------------------------------------------------------
    @property
    def supports_gradients(self) -> bool:
        return self._target_gradient_fn is not None

    @property
    def supports_gradcam(self) -> bool:
        return self._gradcam_fn is not None

    @property
    def num_classes(self) -> int:
        if self._num_classes is None:  # a black box: ask it once
            probe = np.zeros((1, *self.img_size, 3), np.float32)
            self._num_classes = int(np.asarray(self._predict_fn(probe)).shape[-1])
        return self._num_classes

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities [N, C] of float images [N, H, W, 3] (batched, counted)."""
        images = np.asarray(images, dtype=np.float32)
        outs = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            out = np.asarray(self._predict_fn(chunk), dtype=np.float32)
            if out.ndim != 2 or len(out) != len(chunk):
                raise ValueError(
                    f"{self.name}: predict returned shape {out.shape} for {len(chunk)} images; "
                    "expected [N, num_classes] probabilities"
                )
            outs.append(out)
            self.forward_calls += len(chunk)
        return np.concatenate(outs) if outs else np.zeros((0, self.num_classes), np.float32)

    def target_gradients(
        self, images: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(probability of each image's target class [N], its gradient w.r.t. the image [N,H,W,3])."""
        if not self.supports_gradients:
            raise ValueError(
                f"{self.name!r} is a black box (no gradients): use one of {BLACK_BOX_METHODS}"
            )
        images = np.asarray(images, dtype=np.float32)
        targets = np.broadcast_to(np.asarray(targets, dtype=np.int32), (len(images),))
        values, grads = [], []
        for start in range(0, len(images), self.batch_size):
            v, g = self._target_gradient_fn(
                images[start : start + self.batch_size], targets[start : start + self.batch_size]
            )
            values.append(np.asarray(v))
            grads.append(np.asarray(g))
            self.gradient_calls += len(v)
        return np.concatenate(values), np.concatenate(grads)

    def gradcam_tensors(
        self, images: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(conv layer output, gradient of the target probability w.r.t. it) for Grad-CAM."""
        if not self.supports_gradcam:
            raise ValueError(
                f"{self.name}: Grad-CAM needs the model's convolution layers; wrap a Keras "
                "model with ExplainableModel.from_keras (a SavedModel signature hides them)"
            )
        conv, grads = self._gradcam_fn(
            np.asarray(images, np.float32), np.asarray(targets, np.int32)
        )
        self.gradient_calls += len(images)
        return np.asarray(conv), np.asarray(grads)

    def calls(self) -> int:
        return self.forward_calls + self.gradient_calls

    def warm_up(self) -> "ExplainableModel":
        """Run each model function once (TensorFlow traces a function on its first call), so
        timings measure the explainers, not the tracing. Not counted in the call counters."""
        forward, gradient = self.forward_calls, self.gradient_calls
        x = np.zeros((1, *self.img_size, 3), np.float32)
        self.predict(x)
        if self.supports_gradients:
            self.target_gradients(x, [0])
        if self.supports_gradcam:
            self.gradcam_tensors(x, [0])
        self.forward_calls, self.gradient_calls = forward, gradient
        return self


def _tf_predict(forward: Callable, img_size: tuple[int, int]) -> Callable:
    import tensorflow as tf

    fn = tf.function(
        lambda x: forward(x), input_signature=[tf.TensorSpec([None, *img_size, 3], tf.float32)]
    )
    return lambda x: fn(tf.constant(x, tf.float32)).numpy()


def _tf_target_gradients(forward: Callable, img_size: tuple[int, int]) -> Callable:
    import tensorflow as tf

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, *img_size, 3], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def grads(x, targets):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.gather(forward(x), targets, axis=1, batch_dims=1)
        return y, tape.gradient(y, x)

    return lambda x, t: [
        v.numpy() for v in grads(tf.constant(x, tf.float32), tf.constant(t, tf.int32))
    ]


def _gradcam_layer(model, name: str | None):
    if name is not None:
        return model.get_layer(name)
    for layer in reversed(model.layers[:-1]):
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4 and shape[1] is not None and shape[1] > 1:
            return layer
    return None


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


def check_images(images, model: ExplainableModel) -> np.ndarray:
    """float32 [N, H, W, 3] in [0, 1] at the model's size, or a ValueError saying what is wrong."""
    arr = np.asarray(images)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(
            f"images: expected a float array [N, H, W, 3] in [0, 1], got dtype {arr.dtype}"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"images: expected float pixels in [0, 1], got {arr.dtype} "
            "(divide 8-bit images by 255, or use the model's xai_preprocess)"
        )
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(
            f"images: expected shape [N, H, W, 3], got {list(arr.shape)}"
            + (" (a single image? pass images[None])" if arr.ndim == 3 else "")
        )
    if len(arr) == 0:
        raise ValueError("images: the batch is empty")
    if tuple(arr.shape[1:3]) != model.img_size:
        raise ValueError(
            f"images: {arr.shape[1]}x{arr.shape[2]} pixels, but {model.name} takes "
            f"{model.img_size[0]}x{model.img_size[1]}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("images: contain NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -_VALUE_TOLERANCE or hi > 1 + _VALUE_TOLERANCE:
        raise ValueError(f"images: pixel values should be in [0, 1], found [{lo:.3g}, {hi:.3g}]")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def check_targets(
    target_classes, n: int, model: ExplainableModel, images: np.ndarray
) -> np.ndarray:
    """int [N] target classes; None means each image's predicted class."""
    if target_classes is None:
        return model.predict(images).argmax(axis=1).astype(np.int64)
    arr = np.asarray(target_classes)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(
            f"target_classes: expected one class per image ({n}), got shape {list(arr.shape)}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"target_classes: expected class indices (int), got {arr.dtype}")
    k = model.num_classes
    bad = arr[(arr < 0) | (arr >= k)]
    if len(bad):
        raise ValueError(
            f"target_classes: {bad.tolist()} out of range: the model has {k} classes (0..{k - 1})"
        )
    return arr.astype(np.int64)


def make_baseline(baseline, shape: tuple[int, ...], seed: int = 42) -> np.ndarray:
    """A baseline image: 'black' (zeros), 'white' (ones), 'random' (uniform, seeded) or an array."""
    if isinstance(baseline, str):
        if baseline == "black":
            return np.zeros(shape, np.float32)
        if baseline == "white":
            return np.ones(shape, np.float32)
        if baseline == "random":
            return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)
        raise ValueError(
            f"baseline: unknown {baseline!r}; use one of {IG_BASELINES} or an image array"
        )
    arr = np.asarray(baseline, dtype=np.float32)
    if arr.shape != tuple(shape):
        raise ValueError(
            f"baseline: shape {list(arr.shape)} does not match the image shape {list(shape)}"
        )
    return arr


# --------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------


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
        raise ValueError(
            f"{model.name}: Grad-CAM needs the model's convolution layers; wrap a Keras "
            "model with ExplainableModel.from_keras (a SavedModel signature hides them)"
        )
    runner = _RUNNERS[method]
    allowed = _OPTIONS[method]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"options {unknown} are not used by method {method!r}; it takes {sorted(allowed)}"
        )
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


# --------------------------------------------------------------------------------------
# Integrated gradients
# --------------------------------------------------------------------------------------


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
    import saliency.core as saliency

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
        import saliency.core as saliency

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
    """|sum(attr) - (F(x) - F(baseline))| / |F(x) - F(baseline)| per image (Vertex's approx_error)."""
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


def gap_vs_steps(
    images: np.ndarray,
    target_classes,
    model: ExplainableModel,
    steps_list: Sequence[int] = (4, 8, 16, 32, 64, 128, 256),
    integrations: Sequence[str] = ("riemann", "riemann_trapezoid", "gausslegendre"),
    baseline="random",
    seed: int = 42,
):
    """IG's completeness gap for every (integration rule, step count): a DataFrame with one
    row per image and setting (columns integration, steps, image, gap, seconds, model_calls)."""
    import pandas as pd

    rows = []
    for integration in integrations:
        for steps in steps_list:
            r = explain(
                images,
                target_classes,
                "ig",
                model,
                steps=int(steps),
                baseline=baseline,
                integration=integration,
                seed=seed,
            )
            for i, gap in enumerate(r.approx_error):
                rows.append(
                    {
                        "integration": integration,
                        "steps": int(steps),
                        "image": i,
                        "gap": float(gap),
                        "seconds": r.seconds / len(images),
                        "model_calls": r.model_calls / len(images),
                    }
                )
    return pd.DataFrame(rows)


def steps_for_gap(table, target: float = 0.05, statistic: str = "max") -> dict:
    """{integration: the smallest step count from which the gap's ``statistic`` over the images
    ('max' or 'median') stays <= target at every larger step count tried} (None if never)."""
    if statistic not in ("max", "median"):
        raise ValueError(f"statistic: 'max' or 'median', got {statistic!r}")
    chosen = {}
    for integration, part in table.groupby("integration", sort=False):
        per_step = part.groupby("steps")["gap"].agg(statistic).sort_index()
        ok = per_step <= target
        chosen[integration] = None
        for steps in per_step.index:
            if ok.loc[steps:].all():
                chosen[integration] = int(steps)
                break
    return chosen


def _run_ig(
    images, targets, model, steps=DEFAULT_IG_STEPS, baseline="black", integration="riemann", seed=42
):
    attrs, gaps, details = integrated_gradients(
        images, targets, model, steps, baseline, integration, seed
    )
    return attrs.sum(axis=-1), gaps, details


def _run_xrai(
    images,
    targets,
    model,
    steps=DEFAULT_IG_STEPS,
    baselines=("black", "white"),
    integration="riemann",
    seed=42,
    algorithm="full",
):
    import saliency.core as saliency

    if isinstance(baselines, (str, np.ndarray)):
        baselines = [baselines]
    per_baseline = [
        integrated_gradients(images, targets, model, steps, b, integration, seed) for b in baselines
    ]
    ig_mean = np.mean([attrs for attrs, _, _ in per_baseline], axis=0)
    gaps = np.mean([g for _, g, _ in per_baseline], axis=0)
    params = saliency.XRAIParameters(steps=int(steps), algorithm=algorithm)
    xrai = saliency.XRAI()
    maps = [
        xrai.GetMask(
            x,
            _saliency_call_model_function(model),
            call_model_args={"target": int(t)},
            base_attribution=a,
            extra_parameters=params,
        )
        for x, t, a in zip(images, targets, ig_mean)
    ]
    return (
        np.stack(maps),
        gaps,
        {
            "steps": int(steps),
            "integration": integration,
            "baselines": [b if isinstance(b, str) else "custom" for b in baselines],
        },
    )


def _run_gradcam(images, targets, model):
    import saliency.core as saliency

    gradcam = saliency.GradCam()
    maps = [
        gradcam.GetMask(
            x,
            _saliency_call_model_function(model),
            call_model_args={"target": int(t)},
            should_resize=True,
            three_dims=False,
        )
        for x, t in zip(images, targets)
    ]
    return np.stack(maps), None, {}


# --------------------------------------------------------------------------------------
# Perturbation methods over superpixels (these work on black boxes)
# --------------------------------------------------------------------------------------


def superpixels(image: np.ndarray, n_segments: int = 40, compactness: float = 30.0) -> np.ndarray:
    """SLIC superpixels of one image, labelled 0..M-1 ([H, W] int). Deterministic.

    When SLIC finds almost no structure (noise, a flat image) it returns a handful of
    segments; then a regular grid of about ``n_segments`` squares is used instead.
    """
    from skimage.segmentation import slic

    image = np.asarray(image, np.float64)
    seg = slic(
        image,
        n_segments=int(n_segments),
        compactness=compactness,
        sigma=0.5,
        start_label=0,
        channel_axis=-1,
    )
    if len(np.unique(seg)) < max(4, int(n_segments) // 4):
        h, w = image.shape[:2]
        side = max(1, int(round(np.sqrt(h * w / int(n_segments)))))
        rows, cols = np.arange(h)[:, None] // side, np.arange(w)[None, :] // side
        seg = rows * (int(np.ceil(w / side))) + cols
    return np.unique(seg, return_inverse=True)[1].reshape(seg.shape)


def segment_means(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """The image with every superpixel filled with its mean colour (the 'switched off' image)."""
    flat = segments.ravel()
    counts = np.bincount(flat)
    means = np.stack(
        [np.bincount(flat, weights=image[..., c].ravel()) / counts for c in range(3)], axis=1
    )
    return means[segments].astype(np.float32)


HIDE_MODES = ("mean", "grey", "black")  # how a switched-off superpixel is filled
_HIDE_VALUES = {"grey": 0.5, "black": 0.0}


def hidden_image(image: np.ndarray, segments: np.ndarray, hide: str = "mean") -> np.ndarray:
    """The image with every superpixel switched off: its mean colour (LIME's and alibi's
    default), or a constant grey or black."""
    if hide == "mean":
        return segment_means(image, segments)
    if hide in _HIDE_VALUES:
        return np.full(image.shape, _HIDE_VALUES[hide], np.float32)
    raise ValueError(f"hide: unknown {hide!r}; choose one of {HIDE_MODES}")


def segment_map(segments: np.ndarray, weights: dict[int, float] | np.ndarray) -> np.ndarray:
    """A pixel map [H, W] holding each superpixel's weight."""
    values = np.zeros(segments.max() + 1, np.float32)
    items = weights.items() if isinstance(weights, dict) else enumerate(weights)
    for seg, w in items:
        values[int(seg)] = w
    return values[segments]


@contextlib.contextmanager
def _numpy_global_seed(seed: int):
    """shap and alibi draw from numpy's global generator: seed it, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def _quiet_lime(lime_image_module):
    """lime 0.2.0.1 always draws a tqdm progress bar: swap it for a plain iterator meanwhile."""
    original = lime_image_module.tqdm
    lime_image_module.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        lime_image_module.tqdm = original


def _run_lime(
    images, targets, model, num_samples=1000, n_segments=40, seed=1, batch_size=100, hide="mean"
):
    from lime import lime_image

    hidden_image(images[0], np.zeros(images.shape[1:3], int), hide)  # validates `hide`
    maps, details = [], {"segments": [], "score": [], "local_pred": []}
    for x, t in zip(images, targets):
        segments = superpixels(x, n_segments)
        explainer = lime_image.LimeImageExplainer(random_state=seed)
        with _quiet_lime(lime_image):
            exp = explainer.explain_instance(
                x.astype(np.float64),
                lambda batch: model.predict(batch),
                labels=(int(t),),
                top_labels=None,
                hide_color=_HIDE_VALUES.get(hide),
                num_samples=int(num_samples),
                batch_size=int(batch_size),
                segmentation_fn=lambda _img, s=segments: s,
                random_seed=seed,
            )
        maps.append(segment_map(segments, dict(exp.local_exp[int(t)])))
        details["segments"].append(segments)
        details["score"].append(float(exp.score))
        details["local_pred"].append(float(np.ravel(exp.local_pred)[0]))
    return np.stack(maps), None, details


def _run_kernelshap(images, targets, model, num_samples=1000, n_segments=40, seed=1, hide="mean"):
    import shap

    maps, details = [], {"segments": [], "expected_value": []}
    for x, t in zip(images, targets):
        segments = superpixels(x, n_segments)
        off = hidden_image(x, segments, hide)
        n_seg = int(segments.max()) + 1

        def f(z, x=x, off=off, segments=segments, t=t):
            keep = np.asarray(z, bool)[:, segments]  # [K, H, W]
            batch = np.where(keep[..., None], x[None], off[None])
            return model.predict(batch)[:, t]

        with _numpy_global_seed(seed):
            explainer = shap.KernelExplainer(f, np.zeros((1, n_seg)))
            values = explainer.shap_values(
                np.ones((1, n_seg)), nsamples=int(num_samples), silent=True, l1_reg=False
            )
        maps.append(segment_map(segments, np.asarray(values).reshape(-1)))
        details["segments"].append(segments)
        details["expected_value"].append(float(np.ravel(explainer.expected_value)[0]))
    return np.stack(maps), None, details


def _anchor_image_class():
    """alibi's AnchorImage, with switched-off superpixels filled by our hidden image.

    alibi 0.5.5 fills them with their mean colour only (its ``images_background`` option fails
    on background index 0), so ``perturbation`` -- same inputs and outputs as alibi's -- is
    overridden to use the same "off" image as LIME and KernelSHAP.
    """
    from alibi.explainers import AnchorImage

    class AnchorImageWithHide(AnchorImage):
        hidden: np.ndarray | None = None

        def perturbation(self, anchor, num_samples):
            if self.hidden is None:
                return super().perturbation(anchor, num_samples)
            segments_mask = self._choose_superpixels(num_samples, p_sample=self.p_sample)
            segments_mask[:, anchor] = 1  # the anchor's superpixels stay on
            keep = segments_mask[:, self.segments].astype(bool)[..., None]
            return np.where(keep, self.image[None], self.hidden[None]), segments_mask

    return AnchorImageWithHide


def _run_anchors(
    images,
    targets,
    model,
    threshold=0.95,
    p_sample=0.5,
    n_segments=40,
    seed=1,
    batch_size=100,
    hide="mean",
    max_anchor_size=None,
):
    AnchorImage = _anchor_image_class()
    hidden_image(images[0], np.zeros(images.shape[1:3], int), hide)  # validates `hide`

    maps = []
    details = {
        "segments": [],
        "precision": [],
        "coverage": [],
        "anchor_segments": [],
        "explained": [],
    }
    for x, t in zip(images, targets):
        segments = superpixels(x, n_segments)
        predicted = int(model.predict(x[None]).argmax())

        def is_target(batch, t=int(t)):  # alibi wants class ids: 1 = "the model says t"
            return (model.predict(batch).argmax(axis=1) == t).astype(np.int64)

        with _numpy_global_seed(seed):
            explainer = AnchorImage(
                is_target, x.shape, segmentation_fn=lambda _img, s=segments: s, seed=seed
            )
            explainer.hidden = hidden_image(x, segments, hide)
            exp = explainer.explain(
                x,
                threshold=threshold,
                p_sample=p_sample,
                batch_size=int(batch_size),
                max_anchor_size=max_anchor_size,
            )
        anchor = [int(s) for s in exp.data["raw"]["feature"]]
        maps.append(np.isin(segments, anchor).astype(np.float32))
        details["segments"].append(segments)
        details["precision"].append(
            float(np.ravel(exp.precision)[0]) if np.size(exp.precision) else float("nan")
        )
        details["coverage"].append(float(exp.coverage))
        details["anchor_segments"].append(anchor)
        # an anchor explains "the model predicts t" only when it does; otherwise "it does not"
        details["explained"].append("target" if predicted == int(t) else "not target")
    return np.stack(maps), None, details


_RUNNERS = {
    "ig": _run_ig,
    "xrai": _run_xrai,
    "gradcam": _run_gradcam,
    "lime": _run_lime,
    "kernelshap": _run_kernelshap,
    "anchors": _run_anchors,
}
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


# --------------------------------------------------------------------------------------
# Comparing explanations
# --------------------------------------------------------------------------------------


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation between two attribution maps (nan if one is constant)."""
    from scipy.stats import spearmanr

    a, b = np.ravel(a), np.ravel(b)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {a.size} vs {b.size}")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def top_k_mask(attribution: np.ndarray, k: float = 0.1) -> np.ndarray:
    """The pixels in the top fraction ``k`` by value (ties at the threshold included; the
    map's minimum never counts as 'top', so a flat map selects nothing)."""
    if not 0 < k <= 1:
        raise ValueError(f"k: a fraction in (0, 1], got {k}")
    a = np.asarray(attribution, np.float64)
    n_top = max(1, int(round(k * a.size)))
    threshold = np.partition(a.ravel(), a.size - n_top)[a.size - n_top]
    return (a >= threshold) & (a > a.min())


def iou(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(mask_a, bool), np.asarray(mask_b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def top_k_iou(a: np.ndarray, b: np.ndarray, k: float = 0.1) -> float:
    """IoU of the top-k pixel sets of two maps (nan when a map is flat: it has no top)."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"maps differ in shape: {np.shape(a)} vs {np.shape(b)}")
    mask_a, mask_b = top_k_mask(a, k), top_k_mask(b, k)
    if not mask_a.any() or not mask_b.any():
        return float("nan")
    return iou(mask_a, mask_b)


def agreement_table(
    maps_by_method: dict[str, np.ndarray], metric: str = "rank_correlation", k: float = 0.1
):
    """Method x method DataFrame: the metric between their maps, averaged over the images."""
    import pandas as pd

    if metric not in ("rank_correlation", "top_k_iou"):
        raise ValueError(f"metric: 'rank_correlation' or 'top_k_iou', got {metric!r}")
    names = list(maps_by_method)
    table = pd.DataFrame(np.nan, index=names, columns=names)
    for m1, m2 in itertools.product(names, names):
        pairs = zip(maps_by_method[m1], maps_by_method[m2])
        values = [
            rank_correlation(a, b) if metric == "rank_correlation" else top_k_iou(a, b, k)
            for a, b in pairs
        ]
        table.loc[m1, m2] = np.nanmean(values) if not np.all(np.isnan(values)) else np.nan
    return table


def lime_stability(
    image: np.ndarray,
    target_class: int,
    model: ExplainableModel,
    seeds: Sequence[int] = LIME_STABILITY_SEEDS,
    top_features: int = 5,
    **lime_options,
) -> dict:
    """LIME on one image with several seeds: the mean pairwise IoU of the top superpixels.

    Returns ``{"stability": float, "pairwise_iou": [...], "masks": [H,W] bool per seed,
    "model_calls": int}``. 1.0 = every seed picked the same superpixels.
    """
    if len(seeds) < 2:
        raise ValueError("seeds: need at least two seeds to compare")
    masks, calls = [], 0
    for seed in seeds:
        result = explain(
            np.asarray(image)[None], [target_class], "lime", model, seed=seed, **lime_options
        )
        calls += result.model_calls
        weights = result.attributions[0]
        segments = result.extra["segments"][0]
        per_segment = np.array([weights[segments == s][0] for s in range(segments.max() + 1)])
        top = np.argsort(-per_segment, kind="stable")[:top_features]
        top = top[per_segment[top] > 0]
        masks.append(np.isin(segments, top))
    pairwise = [iou(a, b) for a, b in itertools.combinations(masks, 2)]
    return {
        "stability": float(np.mean(pairwise)),
        "pairwise_iou": pairwise,
        "masks": masks,
        "seeds": list(seeds),
        "model_calls": calls,
    }


def preprocess_mask(mask: np.ndarray, img_size: int | Sequence[int]) -> np.ndarray:
    """An object mask brought to the model's input grid ([H, W] bool), through THE
    preprocessing function (same centre crop and resize as the image), then thresholded."""
    import io

    import tensorflow as tf
    from PIL import Image

    from .preprocess import preprocess_image

    h, w = (img_size, img_size) if np.isscalar(img_size) else img_size
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask: expected [H, W], got shape {list(m.shape)}")
    buf = io.BytesIO()
    Image.fromarray((m > 0).astype(np.uint8) * 255, mode="L").save(buf, format="PNG")
    out = preprocess_image(tf.constant(buf.getvalue()), int(h), int(w)).numpy()
    return out[..., 0] > 0.5


@dataclass
class Examples:
    """Images of one split, ready for a model: float [N,H,W,3], label ids, paths, masks."""

    images: np.ndarray
    label_ids: np.ndarray
    labels: list[str]  # the class names, in dict.txt order
    paths: list[str]
    masks: np.ndarray | None  # [N, H, W] bool: the flower (generated data sets only)
    backgrounds: list[str] | None = None  # background kind per image (generated data sets only)

    @property
    def names(self) -> list[str]:
        return [self.labels[i] for i in self.label_ids]


def load_examples(
    data_dir: str | Path,
    img_size: int,
    split: str = "test",
    per_class: int | None = None,
    with_masks: bool = True,
) -> Examples:
    """Images of ``split`` from a data folder of ``workspace.ensure_dataset`` (in CSV order),
    preprocessed by THE preprocessing function; with their flower masks on the same grid.

    per_class: keep at most this many images of each class (e.g. 1 = one flower per class).
    """
    from . import dataset_files, synthetic
    from .preprocess import read_and_preprocess

    flower_dir = Path(data_dir) / "flower_photos"
    labels = dataset_files.read_labels(str(flower_dir / "dict.txt"))
    rows = [
        r
        for r in dataset_files.read_all_data(str(flower_dir / "all_data.csv"), report=None)
        if not r.problem and dataset_files.split_for(r.path) == split
    ]
    kept, counts = [], {}
    for r in rows:
        if per_class is None or counts.get(r.label, 0) < per_class:
            counts[r.label] = counts.get(r.label, 0) + 1
            kept.append(r)
    if not kept:
        raise ValueError(f"{flower_dir.name}/all_data.csv: no usable images in split {split!r}")
    kept.sort(key=lambda r: (labels.index(r.label), r.path)) if per_class else None
    images = np.stack([read_and_preprocess(r.path, img_size, img_size).numpy() for r in kept])
    masks = (
        np.stack([preprocess_mask(synthetic.load_mask(r.path), img_size) for r in kept])
        if with_masks
        else None
    )
    return Examples(
        images=images,
        label_ids=np.array([labels.index(r.label) for r in kept]),
        labels=list(labels),
        paths=[r.path for r in kept],
        masks=masks,
        backgrounds=_backgrounds(Path(data_dir), [r.path for r in kept]),
    )


def _backgrounds(data_dir: Path, paths: list[str]) -> list[str] | None:
    """The background kind of each image, from the generator's ``image_info.csv`` (if any)."""
    import csv

    info = data_dir / "image_info.csv"
    if not info.exists():
        return None
    with open(info, newline="") as f:
        kinds = {row["image"]: row["background"] for row in csv.DictReader(f)}
    keys = ["/".join(Path(p).parts[-3:]) for p in paths]  # flower_photos/<class>/<file>
    return [kinds.get(k, "unknown") for k in keys]


def attribution_share(attributions: np.ndarray, mask: np.ndarray) -> dict:
    """Share of the POSITIVE attribution mass on the object (mask True) vs the background.

    Works on one map [H, W] or a batch [N, H, W] (with masks of the same shape). Returns
    ``{"object": ..., "background": ..., "object_area": ...}`` (floats, or [N] arrays);
    ``object_area`` (the mask's share of the pixels) is what a map unrelated to the object
    would put on it. A map with no positive mass gives nan.
    """
    attr = np.asarray(attributions, np.float64)
    m = np.asarray(mask).astype(bool)
    if attr.shape != m.shape:
        raise ValueError(
            f"attributions {list(attr.shape)} and mask {list(m.shape)} differ in shape"
        )
    single = attr.ndim == 2
    if single:
        attr, m = attr[None], m[None]
    pos = np.clip(attr, 0, None).reshape(len(attr), -1)
    mflat = m.reshape(len(m), -1)
    total = pos.sum(axis=1)
    on_object = (pos * mflat).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        obj = np.where(total > 0, on_object / total, np.nan)
    out = {"object": obj, "background": 1.0 - obj, "object_area": mflat.mean(axis=1)}
    return {k: float(v[0]) for k, v in out.items()} if single else out


# --------------------------------------------------------------------------------------
# Encoding a map for a JSON response
# --------------------------------------------------------------------------------------


def attribution_to_png_b64(attribution: np.ndarray, percentile: float = 99.0) -> str:
    """A base64 PNG (8-bit grey) of a map's positive part, scaled so the ``percentile``-th
    positive value is white: what the Vertex response carries for display."""
    import base64
    import io

    from PIL import Image

    a = np.clip(np.asarray(attribution, np.float64), 0, None)
    if a.ndim != 2:
        raise ValueError(f"attribution: expected an [H, W] map, got shape {list(a.shape)}")
    top = np.percentile(a[a > 0], percentile) if np.any(a > 0) else 1.0
    grey = np.clip(a / (top or 1.0) * 255.0, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def explanations_from_response(response: dict) -> dict:
    """The maps and numbers of a server's ``:explain`` response (see ``pmlv_utils.serving``):
    ``{"attributions": [N, H, W] float32, "approx_error": [N], "target_classes": [N],
    "png_maps": [N, H, W] in [0, 1] (the displayed PNGs), "method": str}``."""
    import base64

    maps, errors, targets, pngs, method = [], [], [], [], None
    for i, row in enumerate(response.get("explanations", [])):
        try:
            att = row["attributions"][0]
            feature = att["featureAttributions"]["input_images"]
            raw = np.frombuffer(base64.b64decode(feature["b64"]), dtype="<f4").reshape(
                feature["shape"]
            )
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise ValueError(f"explanation {i}: not in the expected format ({err!r})") from None
        maps.append(raw)
        errors.append(
            np.nan if att.get("approximationError") is None else att["approximationError"]
        )
        targets.append(int(att["outputIndex"][0]))
        pngs.append(png_b64_to_array(feature["b64_png"]))
        method = att.get("method", method)
    if not maps:
        raise ValueError(f"no explanations in the response (keys: {sorted(response)})")
    return {
        "attributions": np.stack(maps),
        "approx_error": np.asarray(errors, np.float64),
        "target_classes": np.asarray(targets),
        "png_maps": np.stack(pngs),
        "method": method,
    }


def image_to_png_bytes(image: np.ndarray) -> bytes:
    """A float [H, W, 3] image in [0, 1] as 8-bit PNG bytes (what a client would upload)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def rest_predict_fn(predict_url: str, timeout: float = 120.0) -> Callable[[np.ndarray], np.ndarray]:
    """A black-box ``fn(images) -> probabilities`` that POSTs PNG bytes to a ``:predict`` route
    (``{"instances": [{"img_bytes": {"b64": ...}}]}``), as one would call a cloud endpoint.

    Images travel as 8-bit PNGs, so the model sees them rounded to 1/255.
    """
    import base64

    import requests

    def predict(images: np.ndarray) -> np.ndarray:
        instances = [
            {"img_bytes": {"b64": base64.b64encode(image_to_png_bytes(x)).decode("ascii")}}
            for x in np.asarray(images)
        ]
        resp = requests.post(predict_url, json={"instances": instances}, timeout=timeout)
        if resp.status_code != 200:
            raise RuntimeError(f"{predict_url}: HTTP {resp.status_code}: {resp.text[:300]}")
        return np.asarray([row["probability"] for row in resp.json()["predictions"]], np.float32)

    return predict


def png_b64_to_array(b64: str) -> np.ndarray:
    """Decode :func:`attribution_to_png_b64` output to a float [H, W] map in [0, 1]."""
    import base64
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))), np.float32) / 255.0
