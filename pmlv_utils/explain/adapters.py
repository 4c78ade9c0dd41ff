"""The model an explainer calls: :class:`ExplainableModel` and the loaders that build one.

An ExplainableModel is a classifier of float images [N, H, W, 3] in [0, 1] -> probabilities
[N, C], with (when it has them) the gradients IG/XRAI need and the convolution tensors Grad-CAM
needs. The loaders below turn an exported SavedModel, a Keras model, a trainer job dir or a
black-box function into the keyword arguments of its constructor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from .. import export, preprocess  # noqa: F401  (preprocess registers the custom layers)
from .fov import FieldOfView, from_model_info, probe_field_of_view

# Which methods a model can run: every method with gradients, only these without.
GRADIENT_METHODS = ("ig", "xrai", "gradcam")
BLACK_BOX_METHODS = ("lime", "kernelshap", "anchors")


def no_gradcam_message(name: str) -> str:
    """The error text when a model cannot give Grad-CAM its convolution tensors."""
    return (
        f"{name}: Grad-CAM needs the model's convolution layers; wrap a Keras "
        "model with ExplainableModel.from_keras (a SavedModel signature hides them)"
    )


def image_size(img_size: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) from an int or a pair, or a ValueError."""
    size = (
        (int(img_size), int(img_size)) if np.isscalar(img_size) else tuple(int(s) for s in img_size)
    )
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"img_size must be an int or (height, width), got {img_size!r}")
    return size


class ModelLoaders:
    """The constructors of :class:`ExplainableModel` (it inherits them); each calls a loader
    function below for the model's functions."""

    @classmethod
    def from_saved_model(
        cls,
        export_dir: str | Path,
        signature: str = "xai_model",
        output_key: str = "probability",
        batch_size: int = 64,
    ) -> "ExplainableModel":
        """Wrap the ``xai_model`` signature (images -> probability) of an exported model.
        Gradients flow through the loaded signature with ``tf.GradientTape``."""
        return cls(
            **saved_model_functions(export_dir, signature, output_key), batch_size=batch_size
        )

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
        4-D output (the last conv block, or a nested backbone such as MobileNetV2)."""
        functions = keras_functions(model, conv_layer, outputs_are_logits)
        return cls(**functions, labels=labels, batch_size=batch_size)

    @classmethod
    def from_job_dir(
        cls, job_dir: str | Path, checkpoint: str = "best", **kwargs
    ) -> "ExplainableModel":
        """The Keras model a trainer job saved (``checkpoints/<checkpoint>.keras``), with the
        labels of its export: the same weights as ``<job_dir>/export``, plus Grad-CAM."""
        model = load_job_checkpoint(job_dir, checkpoint)
        labels = kwargs.pop("labels", None) or export.model_labels(Path(job_dir) / "export") or None
        return cls.from_keras(model, labels=labels, **kwargs)

    @classmethod
    def from_predict_fn(
        cls,
        fn: Callable[[np.ndarray], Any],
        img_size: int | Sequence[int],
        labels: Sequence[str] | None = None,
        batch_size: int = 64,
        name: str = "predict_fn",
        field_of_view: FieldOfView | None = None,
    ) -> "ExplainableModel":
        """A black box: ``fn(images [N,H,W,3] float32 in [0,1]) -> probabilities [N, C]``.
        No gradients: only LIME, KernelSHAP and Anchors can explain it.
        ``field_of_view``: the window the model sees (default the whole image)."""
        return cls(
            lambda x: np.asarray(fn(x), dtype=np.float32),
            img_size,
            labels=labels,
            num_classes=len(labels) if labels else None,
            name=name,
            batch_size=batch_size,
            field_of_view=field_of_view,
        )


class ExplainableModel(ModelLoaders):
    """A classifier of float images [N, H, W, 3] in [0, 1] -> class probabilities [N, C].

    Build one with :meth:`from_saved_model` (the exported ``xai_model`` signature),
    :meth:`from_keras` (a Keras model: also gives Grad-CAM), :meth:`from_job_dir` (a trainer
    job's Keras checkpoint) or :meth:`from_predict_fn` (a black box, e.g. a REST endpoint or a
    TFLite interpreter: no gradients, so only the perturbation methods LIME, KernelSHAP and
    Anchors).
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
        keep_alive: Any = None,
        field_of_view: FieldOfView | None = None,
    ):
        self.img_size = image_size(img_size)
        fov = field_of_view or FieldOfView.whole(self.img_size)
        if tuple(fov.image_size) != self.img_size:
            raise ValueError(
                f"field_of_view is for {fov.image_size} images, the model takes {self.img_size}"
            )
        self.field_of_view = fov  # the window of the input the model looks at
        self.name = name
        self.labels = list(labels) if labels is not None else None
        self.batch_size = int(batch_size)
        self._predict_fn = predict_fn
        self._target_gradient_fn = target_gradient_fn
        self._gradcam_fn = gradcam_fn
        self._num_classes = num_classes
        self.forward_calls = 0
        self.gradient_calls = 0
        self._keep_alive = keep_alive  # a loaded SavedModel must outlive its functions

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
        """(probability of each image's target class [N], its gradient w.r.t. the image
        [N, H, W, 3])."""
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
            raise ValueError(no_gradcam_message(self.name))
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


# --------------------------------------------------------------------------------------
# Loaders: each returns the keyword arguments of ExplainableModel
# --------------------------------------------------------------------------------------


def saved_model_functions(
    export_dir: str | Path, signature: str = "xai_model", output_key: str = "probability"
) -> dict:
    """The functions of an exported signature (images -> probabilities), checked."""
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
    input_name, spec, out_shape = _image_signature(fn, signature, output_key)
    img_size = (int(spec.shape[1]), int(spec.shape[2]))
    info = export.read_model_info(export_dir, required=False)
    labels = info.get("labels") or None

    def forward(x):
        return fn(**{input_name: x})[output_key]

    gradients = _tf_target_gradients(forward, img_size)
    num_classes = out_shape[1] or (len(labels) if labels else None)
    fov = from_model_info(info, img_size)
    if fov is None:  # an older export: ask the gradients
        fov = probe_field_of_view(gradients, img_size, num_classes or 1)
    return dict(
        predict_fn=_tf_predict(forward, img_size),
        img_size=img_size,
        target_gradient_fn=gradients,
        num_classes=num_classes,
        labels=labels,
        name=export_dir.name,
        keep_alive=loaded,
        field_of_view=fov,
    )


def _image_signature(fn, signature: str, output_key: str):
    """(input name, input spec, output shape) of a signature [None, H, W, 3] -> [None, C]."""
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
    return input_name, spec, out_shape


def keras_functions(model, conv_layer: str | None = None, outputs_are_logits: bool = False) -> dict:
    """The functions of a Keras model (probabilities, or logits with ``outputs_are_logits``),
    with Grad-CAM on ``conv_layer`` (default: see :func:`gradcam_layer`)."""
    shape = (
        tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else tuple(model.input_shape)
    )
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ValueError(f"Keras model input should be [None, H, W, 3], is {shape}")
    img_size = (int(shape[1]), int(shape[2]))

    def forward(x):
        out = model(x, training=False)
        return tf.nn.softmax(out) if outputs_are_logits else out

    layer = gradcam_layer(model, conv_layer)
    return dict(
        predict_fn=_tf_predict(forward, img_size),
        img_size=img_size,
        target_gradient_fn=_tf_target_gradients(forward, img_size),
        gradcam_fn=None
        if layer is None
        else _gradcam_fn(model, layer, img_size, outputs_are_logits),
        num_classes=int(model.outputs[0].shape[-1]),
        name=getattr(model, "name", "keras"),
        field_of_view=FieldOfView.from_window(
            export.inference_window(model, *img_size), img_size, "the Keras model's layers"
        ),
    )


def load_job_checkpoint(job_dir: str | Path, checkpoint: str = "best"):
    """The Keras model of ``<job_dir>/checkpoints/<checkpoint>.keras``."""
    path = Path(job_dir) / "checkpoints" / f"{checkpoint}.keras"
    if not path.exists():
        raise ValueError(
            f"{Path(job_dir).name}: no checkpoints/{checkpoint}.keras (not a trainer job dir?)"
        )
    return keras.models.load_model(path)


def gradcam_layer(model, name: str | None):
    """The layer Grad-CAM looks at: ``name``, or the last top-level layer with a 4-D output."""
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


def _tf_predict(forward: Callable, img_size: tuple[int, int]) -> Callable:
    fn = tf.function(
        lambda x: forward(x), input_signature=[tf.TensorSpec([None, *img_size, 3], tf.float32)]
    )
    return lambda x: fn(tf.constant(x, tf.float32)).numpy()


def _tf_target_gradients(forward: Callable, img_size: tuple[int, int]) -> Callable:
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


def _gradcam_fn(model, layer, img_size: tuple[int, int], outputs_are_logits: bool) -> Callable:
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

    return gradcam_fn
