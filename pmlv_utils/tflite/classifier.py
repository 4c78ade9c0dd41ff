"""LiteRT inference: a .tflite classifier run one image per invoke (as on a device), its ops.

Needs numpy, pandas and LiteRT (``ai_edge_litert``), not TensorFlow.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from ai_edge_litert.interpreter import Interpreter

from .. import quiet


def check_float_images(images, image_shape: Sequence[int], what: str = "images") -> np.ndarray:
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
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"no TFLite model at {self.path} (make one with pmlv_utils.tflite.convert)"
            )
        try:
            with quiet.native_stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK ..."
                self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
                self.interpreter.allocate_tensors()  # creates the delegate (and its INFO line)
        except ValueError as err:
            raise ValueError(f"{self.path} is not a valid TFLite model: {err}") from err
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
        batch = check_float_images(images, self.image_shape)
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
    checked = TFLiteClassifier(path).path
    with quiet.native_stderr_silenced():
        interpreter = Interpreter(model_path=str(checked))
        interpreter.allocate_tensors()
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
