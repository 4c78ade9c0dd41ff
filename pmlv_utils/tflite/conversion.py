"""TFLite conversion of the exported model part (float32 / float16 / full int8), int8 debugging.

:func:`convert` writes ``model_<kind>.tflite`` and ``labels.txt``;
:func:`quantization_error_by_layer` says where int8 loses precision. The route (see
PLATFORM_NOTES): ``tf.saved_model.load`` + ``from_concrete_functions`` on the ``xai_model``
signature, wrapped to take one image ``[1, H, W, 3]``; it gives correct float and int8 models
for a Keras 3 export.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import tensorflow as tf

from .. import export, quiet
from .classifier import check_float_images

KINDS = ("float32", "float16", "int8")
MODEL_SIGNATURE = "xai_model"
OUTPUT_NAME = "probability"


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


def _calibration_images(representative_images, image_shape, limit: int) -> np.ndarray:
    if representative_images is None:
        raise ValueError(
            "int8 needs representative_images: preprocessed training images [N, H, W, 3]"
        )
    images = check_float_images(representative_images, image_shape, "representative_images")[:limit]
    if len(images) == 0:
        raise ValueError("representative_images is empty")
    return images


def _one_image_function(export_dir, signature: str):
    """(loaded SavedModel, concrete function [1, H, W, 3] -> probability, image shape)."""
    loaded, fn, input_name, image_shape = model_signature(export_dir, signature)

    @tf.function(input_signature=[tf.TensorSpec([1, *image_shape], tf.float32, name=input_name)])
    def one_image(image):
        return {OUTPUT_NAME: fn(**{input_name: image})[OUTPUT_NAME]}

    return loaded, one_image.get_concrete_function(), image_shape


def _converter(
    loaded, concrete, kind: str, calibration: np.ndarray | None = None, integer_io: bool = True
):
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
    loaded, concrete, image_shape = _one_image_function(export_dir, signature)
    calibration = _calibration_images(representative_images, image_shape, max_calibration_images)
    debug = check_float_images(debug_images, image_shape, "debug_images")
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
    """Hide TensorFlow's INFO lines (they name temporary folders), its deprecation warnings
    (the converter's tools still create ``tf.lite.Interpreter`` internally) and the C++ lines."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:  # the converter's C++ lines ("fully_quantize: 0, ...") go to file descriptor 2
        with warnings.catch_warnings(), quiet.native_stderr_silenced():
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            yield
    finally:
        logger.setLevel(level)


def _convert_quietly(converter) -> bytes:
    with _quiet_tensorflow():
        return converter.convert()
