"""TFLite conversion (float32 / float16 / full-int8) and LiteRT inference for the edge.

Only the model part is converted: the exported ``xai_model`` signature, which takes a
preprocessed float image batch ``[N, H, W, 3]`` in [0, 1] and returns ``probability``
``[N, classes]``. Decoding and cropping stay outside, on the device, done by the same
:func:`pmlv_utils.preprocess.preprocess_image` as training and serving. The converted models
take one image at a time (``[1, H, W, 3]``), as a camera pipeline feeds them.

The int8 model is fully quantised (int8 weights and activations, integer-only ops) and takes
``uint8`` pixels: with the input scale calibrated to ~1/255 these are the camera's own bytes.

    paths = convert(export_dir, out_dir, representative_images=train_images[:100])
    clf = TFLiteClassifier(paths["int8"])
    probabilities = clf.predict(test_images)            # float images in [0, 1]
    row = evaluate_tflite(paths["int8"], test_images, test_labels)

Route used (see PLATFORM_NOTES): ``tf.saved_model.load`` + ``from_concrete_functions``
on the signature; it gives correct float and int8 models for a Keras 3 export.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

KINDS = ("float32", "float16", "int8")
MODEL_SIGNATURE = "xai_model"
OUTPUT_NAME = "probability"


# --------------------------------------------------------------------------------------
# The exported model
# --------------------------------------------------------------------------------------


def check_export_dir(export_dir: str | os.PathLike) -> Path:
    """The SavedModel folder, or a FileNotFoundError that says what is missing."""
    folder = Path(export_dir)
    if not (folder / "saved_model.pb").is_file():
        raise FileNotFoundError(
            f"no SavedModel in {folder}: expected {folder / 'saved_model.pb'} "
            "(make one with pmlv_utils.workspace.ensure_exported_model)"
        )
    return folder


def model_signature(export_dir: str | os.PathLike, signature: str = MODEL_SIGNATURE):
    """(loaded SavedModel, signature function, input name, image shape (H, W, 3)).

    The signature must take one float image batch ``[None, H, W, 3]`` and return
    ``probability`` with one score per class.
    """
    import tensorflow as tf

    folder = check_export_dir(export_dir)
    loaded = tf.saved_model.load(str(folder))
    if signature not in loaded.signatures:
        raise KeyError(
            f"{folder} has no signature {signature!r}; it has {sorted(loaded.signatures)}"
        )
    fn = loaded.signatures[signature]
    _, inputs = fn.structured_input_signature
    if len(inputs) != 1:
        raise ValueError(
            f"signature {signature!r} must take one image input, it takes {sorted(inputs)}"
        )
    ((input_name, spec),) = inputs.items()
    if spec.dtype != tf.float32 or spec.shape.rank != 4 or None in spec.shape[1:]:
        raise ValueError(
            f"signature {signature!r} input {input_name!r} must be float32 [None, H, W, 3], "
            f"it is {spec.dtype.name} {spec.shape}"
        )
    outputs = fn.structured_outputs
    if OUTPUT_NAME not in outputs or outputs[OUTPUT_NAME].shape.rank != 2:
        raise ValueError(
            f"signature {signature!r} must return {OUTPUT_NAME!r} [None, classes]; "
            f"it returns {dict((k, str(v.shape)) for k, v in outputs.items())}"
        )
    return loaded, fn, input_name, tuple(int(d) for d in spec.shape[1:])


def savedmodel_size_bytes(export_dir: str | os.PathLike) -> int:
    """Bytes of a SavedModel folder (graph + variables + assets)."""
    return sum(p.stat().st_size for p in Path(export_dir).rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------


def _check_images(images, image_shape: Sequence[int], what: str = "images") -> np.ndarray:
    """A float32 batch [N, H, W, 3] in [0, 1], or a ValueError saying what is wrong."""
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        raise ValueError(
            f"{what}: got uint8 pixels; pass preprocessed float images in [0, 1] "
            "(pmlv_utils.preprocess.preprocess_image); int8 models quantise them themselves"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{what}: expected float images, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or tuple(arr.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"{what}: expected shape [N, {', '.join(map(str, image_shape))}] "
            f"(or one image [{', '.join(map(str, image_shape))}]), got {list(np.shape(images))}"
        )
    if arr.size and (np.nanmin(arr) < -1e-3 or np.nanmax(arr) > 1 + 1e-3 or np.isnan(arr).any()):
        raise ValueError(
            f"{what}: pixel values must lie in [0, 1] (preprocess_image's range), "
            f"got min {np.nanmin(arr):.3g}, max {np.nanmax(arr):.3g}"
        )
    return arr.astype(np.float32, copy=False)


def _calibration_images(representative_images, image_shape, limit: int) -> np.ndarray:
    if representative_images is None:
        raise ValueError(
            "int8 needs representative_images: preprocessed training images [N, H, W, 3]"
        )
    images = _check_images(representative_images, image_shape, "representative_images")[:limit]
    if len(images) == 0:
        raise ValueError("representative_images is empty")
    return images


def _one_image_function(export_dir, signature: str):
    """(loaded SavedModel, concrete function [1, H, W, 3] -> probability, image shape)."""
    import tensorflow as tf

    loaded, fn, input_name, image_shape = model_signature(export_dir, signature)

    @tf.function(input_signature=[tf.TensorSpec([1, *image_shape], tf.float32, name=input_name)])
    def one_image(image):
        return {OUTPUT_NAME: fn(**{input_name: image})[OUTPUT_NAME]}

    return loaded, one_image.get_concrete_function(), image_shape


def _converter(
    loaded, concrete, kind: str, calibration: np.ndarray | None = None, integer_io: bool = True
):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)
    if kind == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif kind == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([img[None]] for img in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if integer_io:
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
    return converter


def convert(
    export_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    kinds: Iterable[str] = KINDS,
    representative_images=None,
    signature: str = MODEL_SIGNATURE,
    max_calibration_images: int = 100,
) -> dict[str, Path]:
    """Convert the model signature of ``export_dir`` to ``<out_dir>/model_<kind>.tflite``.

    kinds: any of ``float32`` (plain), ``float16`` (weights stored as float16), ``int8``
    (full integer: int8 weights and activations, uint8 input and output; needs
    ``representative_images``, preprocessed training images [N, H, W, 3] in [0, 1], of
    which the first ``max_calibration_images`` calibrate the activation ranges).
    Also writes ``labels.txt`` (the classes, one a line) for the device. Returns {kind: path}.
    """
    kinds = list(kinds)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds}")
    loaded, concrete, image_shape = _one_image_function(export_dir, signature)
    calibration = None
    if "int8" in kinds:
        calibration = _calibration_images(
            representative_images, image_shape, max_calibration_images
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind in kinds:
        path = out / f"model_{kind}.tflite"
        path.write_bytes(_convert_quietly(_converter(loaded, concrete, kind, calibration)))
        paths[kind] = path
    from . import export

    labels = export.model_labels(export_dir)
    if labels:
        (out / "labels.txt").write_text("\n".join(labels) + "\n")
    return paths


def quantization_error_by_layer(
    export_dir: str | os.PathLike,
    representative_images,
    debug_images,
    signature: str = MODEL_SIGNATURE,
    max_calibration_images: int = 100,
):
    """Where int8 loses precision: TFLite's QuantizationDebugger, one row per quantised layer.

    ``rmse_in_steps`` is the RMS difference between the float and the int8 output of the layer
    (run on ``debug_images``) in units of that layer's quantisation step: about 0.29 is pure
    rounding noise (the RMS of a uniform error over one step); much larger values point at a
    layer whose range is badly calibrated.
    """
    import io

    import pandas as pd
    import tensorflow as tf

    loaded, concrete, image_shape = _one_image_function(export_dir, signature)
    calibration = _calibration_images(representative_images, image_shape, max_calibration_images)
    debug = _check_images(debug_images, image_shape, "debug_images")
    converter = _converter(loaded, concrete, "int8", calibration, integer_io=False)
    with _quiet_tensorflow():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([img[None]] for img in debug)
        )
        debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    buffer.seek(0)
    stats = pd.read_csv(buffer)
    layer = (
        stats["tensor_name"]
        .str.split(";")
        .str[0]
        .str.split("/")
        .str[1]
        .fillna(stats["tensor_name"])
    )
    return pd.DataFrame(
        {
            "op": stats["op_name"],
            "layer": layer,
            "elements": stats["num_elements"].astype(int),
            "step": stats["scale"],
            "rmse_in_steps": np.sqrt(stats["mean_squared_error"]) / stats["scale"],
        }
    )


@contextlib.contextmanager
def _quiet_tensorflow():
    """Hide TensorFlow's INFO lines (they name temporary folders) and its deprecation warnings
    (the converter's tools still create ``tf.lite.Interpreter`` internally)."""
    import logging

    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            yield
    finally:
        logger.setLevel(level)


def _convert_quietly(converter) -> bytes:
    with _quiet_tensorflow():
        return converter.convert()


# --------------------------------------------------------------------------------------
# Inference with LiteRT
# --------------------------------------------------------------------------------------


class TFLiteClassifier:
    """A .tflite classifier run with LiteRT, one image per invoke (as on a device).

    ``predict(images)`` takes preprocessed float images [N, H, W, 3] (or one [H, W, 3]) in
    [0, 1] and returns probabilities [N, classes]; quantised inputs and outputs are
    converted with the model's own scale and zero point. ``last_latencies_s`` holds the
    time of each invoke (including quantisation) of the last ``predict`` call.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        labels: Sequence[str] | None = None,
        num_threads: int | None = 1,
    ):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"no TFLite model at {self.path} (make one with pmlv_utils.tflite.convert)"
            )
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        except ValueError as err:
            raise ValueError(f"{self.path} is not a valid TFLite model: {err}") from err
        self.interpreter.allocate_tensors()
        inputs, outputs = (
            self.interpreter.get_input_details(),
            self.interpreter.get_output_details(),
        )
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"{self.path}: expected one input and one output, "
                f"got {len(inputs)} and {len(outputs)}"
            )
        self._input, self._output = inputs[0], outputs[0]
        self.image_shape = tuple(int(d) for d in self._input["shape"][1:])
        self.input_dtype = np.dtype(self._input["dtype"])
        self.num_classes = int(self._output["shape"][-1])
        if labels is None:
            label_file = self.path.parent / "labels.txt"
            labels = label_file.read_text().split() if label_file.is_file() else []
        self.labels = list(labels)
        self.last_latencies_s: list[float] = []

    def describe(self) -> dict:
        """Input and output type, shape and quantisation (real = scale * (q - zero_point))."""

        def one(d):
            scale, zero_point = d["quantization"]
            quant = f"scale {scale:.6g}, zero point {zero_point}" if scale else "none"
            return f"{np.dtype(d['dtype']).name} {list(map(int, d['shape']))}", quant

        (inp, inq), (out, outq) = one(self._input), one(self._output)
        return {"input": inp, "input quantisation": inq, "output": out, "output quantisation": outq}

    @property
    def quantized(self) -> bool:
        return np.issubdtype(self.input_dtype, np.integer)

    def _quantize(self, image: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return image[None].astype(self.input_dtype)
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(self.input_dtype)
        q = np.round(image / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(self.input_dtype)[None]

    def _dequantize(self, value: np.ndarray) -> np.ndarray:
        scale, zero_point = self._output["quantization"]
        if np.issubdtype(value.dtype, np.integer) and scale:
            return (value.astype(np.float32) - zero_point) * scale
        return value.astype(np.float32)

    def predict(self, images) -> np.ndarray:
        batch = _check_images(images, self.image_shape)
        probabilities = np.empty((len(batch), self.num_classes), np.float32)
        self.last_latencies_s = []
        for i, image in enumerate(batch):
            start = time.perf_counter()
            self.interpreter.set_tensor(self._input["index"], self._quantize(image))
            self.interpreter.invoke()
            probabilities[i] = self._dequantize(self.interpreter.get_tensor(self._output["index"]))[
                0
            ]
            self.last_latencies_s.append(time.perf_counter() - start)
        return probabilities

    def predict_labels(self, images) -> list[str]:
        """The most likely class name of each image (class index if there are no labels)."""
        ids = self.predict(images).argmax(axis=1)
        return [self.labels[i] if i < len(self.labels) else str(i) for i in ids]


def op_summary(path: str | os.PathLike):
    """A pandas table of the operators in a .tflite model: name, count, tensor types used.

    A model an Edge TPU (or any integer-only accelerator) can run whole has only integer
    tensors between its input and output, apart from constant bias/scale parameters.
    Uses LiteRT's op listing (``Interpreter._get_ops_details``, not yet a public API).
    """
    import pandas as pd
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(TFLiteClassifier(path).path))
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    rows: dict[str, dict] = {}
    for op in interpreter._get_ops_details():  # noqa: SLF001 - no public equivalent
        row = rows.setdefault(
            op["op_name"],
            {"op": op["op_name"], "count": 0, "input_types": set(), "output_types": set()},
        )
        row["count"] += 1
        row["input_types"].update(dtypes.get(i, "?") for i in op["inputs"] if i >= 0)
        row["output_types"].update(dtypes.get(i, "?") for i in op["outputs"] if i >= 0)
    table = pd.DataFrame(rows.values())
    for col in ("input_types", "output_types"):
        table[col] = table[col].map(lambda types: ", ".join(sorted(types)))
    return table.set_index("op")


# --------------------------------------------------------------------------------------
# Evaluation: accuracy, latency, size (and agreement with the SavedModel)
# --------------------------------------------------------------------------------------


def _summary(
    name: str,
    probabilities: np.ndarray,
    labels,
    latencies_s: list[float],
    size_bytes: int,
    reference_probabilities=None,
) -> dict:
    predicted = probabilities.argmax(axis=1)
    row = dict(
        model=name,
        size_bytes=int(size_bytes),
        accuracy=float(np.mean(predicted == np.asarray(labels)))
        if len(predicted)
        else float("nan"),
        latency_ms_median=1000 * statistics.median(latencies_s) if latencies_s else float("nan"),
    )
    if reference_probabilities is not None:
        row["agreement"] = float(
            np.mean(predicted == np.asarray(reference_probabilities).argmax(axis=1))
        )
    return row


def evaluate_tflite(
    path: str | os.PathLike,
    images,
    labels,
    reference_probabilities=None,
    num_threads: int | None = 1,
    warmup: int = 3,
) -> dict:
    """Run a .tflite model on every image, one at a time.

    Returns {model, size_bytes, accuracy, latency_ms_median, agreement (if
    ``reference_probabilities`` is given: fraction of images with the same top class),
    probabilities}. Latency is the median of per-image invokes after ``warmup`` untimed ones.
    """
    clf = TFLiteClassifier(path, num_threads=num_threads)
    batch = _check_images(images, clf.image_shape)
    if len(batch) != len(labels):
        raise ValueError(f"{len(batch)} images but {len(labels)} labels")
    if warmup and len(batch):
        clf.predict(batch[:warmup])
    probabilities = clf.predict(batch)
    row = _summary(
        Path(path).stem.replace("model_", "tflite_"),
        probabilities,
        labels,
        clf.last_latencies_s,
        Path(path).stat().st_size,
        reference_probabilities,
    )
    row["probabilities"] = probabilities
    return row


def evaluate_savedmodel(
    export_dir: str | os.PathLike, images, labels, signature: str = MODEL_SIGNATURE, warmup: int = 3
) -> dict:
    """The same measurements for the SavedModel's model signature (one image per call)."""
    import tensorflow as tf

    _, fn, input_name, image_shape = model_signature(export_dir, signature)
    batch = _check_images(images, image_shape)
    if len(batch) != len(labels):
        raise ValueError(f"{len(batch)} images but {len(labels)} labels")
    for image in batch[:warmup]:
        fn(**{input_name: tf.constant(image[None])})
    probabilities = np.empty(
        (len(batch), int(fn.structured_outputs[OUTPUT_NAME].shape[-1] or 0)), np.float32
    )
    latencies = []
    for i, image in enumerate(batch):
        start = time.perf_counter()
        probabilities[i] = fn(**{input_name: tf.constant(image[None])})[OUTPUT_NAME].numpy()[0]
        latencies.append(time.perf_counter() - start)
    row = _summary(
        "savedmodel", probabilities, labels, latencies, savedmodel_size_bytes(export_dir)
    )
    row["probabilities"] = probabilities
    return row


def compare_with_savedmodel(
    export_dir: str | os.PathLike,
    tflite_paths: dict[str, os.PathLike],
    images,
    labels,
    num_threads: int | None = 1,
):
    """A pandas table: one row for the SavedModel and one per TFLite model.

    Columns: size (MB and as a fraction of float32 TFLite), test accuracy, accuracy change vs the
    SavedModel (points), agreement with the SavedModel's top class, median latency per image.
    """
    import pandas as pd

    reference = evaluate_savedmodel(export_dir, images, labels)
    rows = [reference] + [
        evaluate_tflite(p, images, labels, reference["probabilities"], num_threads)
        for p in tflite_paths.values()
    ]
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "probabilities"} for r in rows])
    table.loc[0, "agreement"] = 1.0
    table["size_mb"] = table["size_bytes"] / 1e6
    float_size = table.loc[table["model"] == "tflite_float32", "size_bytes"]
    if len(float_size):
        table["size_vs_float32_tflite"] = table["size_bytes"] / float(float_size.iloc[0])
    table["accuracy_change_points"] = 100 * (table["accuracy"] - reference["accuracy"])
    columns = [
        "model",
        "size_mb",
        "size_vs_float32_tflite",
        "accuracy",
        "accuracy_change_points",
        "agreement",
        "latency_ms_median",
    ]
    return table[[c for c in columns if c in table]].set_index("model")


# --------------------------------------------------------------------------------------
# Images of a split (for calibration and evaluation)
# --------------------------------------------------------------------------------------


def load_split_images(
    tfrecord_dir: str | os.PathLike, split: str, img_size: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 [N, S, S, 3] in [0, 1], label ids [N]) of one TFRecord split, in file order.

    Read with :func:`pmlv_utils.ingest.make_dataset` (evaluation mode: deterministic order),
    so images are decoded by THE preprocessing function, exactly as in training and serving.
    """
    from . import ingest

    ds = ingest.make_dataset(
        str(Path(tfrecord_dir) / f"{split}-*"), batch_size=None, img_size=img_size, training=False
    )
    if limit:
        ds = ds.take(limit)
    images, labels = [], []
    for image, label in ds.as_numpy_iterator():
        images.append(image)
        labels.append(int(label))
    if not images:
        raise ValueError(f"split '{split}' in {tfrecord_dir} has no records")
    return np.stack(images), np.asarray(labels)
