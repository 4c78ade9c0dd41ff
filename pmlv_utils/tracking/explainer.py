"""The explainer as an MLflow pyfunc model *from code*: signature, logging, loading, requests.

No pickled Python object: MLflow runs :mod:`pmlv_utils.tracking.explainer_model` when it loads the
model, with the SavedModel as an artifact. Base64 image bytes in; label, probability,
``approx_error``, the attribution map as a JSON array and as a base64 PNG out. Never pickles: the
source text sends pickled SHAP values over HTTP, which lets whoever answers run code on the client.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import mlflow
import mlflow.pyfunc
import numpy as np
import tensorflow as tf
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, Schema
from PIL import Image

from .. import workspace as ws
from ..export import read_model_info
from ..preprocess import preprocess_image

MODEL_CODE = Path(__file__).with_name("explainer_model.py")  # the pyfunc model, from code
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # pmlv_utils/, shipped with the model
INPUT_COLUMNS = ("image_b64", "target")


def decode_request_images(b64_images: Sequence[str], img_size: int) -> np.ndarray:
    """base64 image bytes -> float images [N, H, W, 3] through THE preprocessing function."""
    images = []
    for i, text in enumerate(b64_images):
        try:
            raw = base64.b64decode(text, validate=True)
        except (ValueError, TypeError) as err:
            raise ValueError(f"row {i}: image_b64 is not valid base64 ({err})") from None
        try:
            images.append(preprocess_image(tf.constant(raw), img_size, img_size).numpy())
        except tf.errors.InvalidArgumentError:
            raise ValueError(f"row {i}: image_b64 does not hold a JPEG/PNG image") from None
    return np.stack(images) if images else np.zeros((0, img_size, img_size, 3), np.float32)


def explainer_signature(img_size: int) -> ModelSignature:
    """The pyfunc signature: inputs image_b64 (required) + target (optional); outputs per image."""
    inputs = Schema([ColSpec("string", "image_b64"), ColSpec("string", "target", required=False)])
    outputs = Schema(
        [
            ColSpec("string", "label"),
            ColSpec("double", "probability"),
            ColSpec("double", "approx_error"),
            ColSpec("string", "attribution_png_b64"),
            ColSpec(Array(Array("double")), "attribution"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_explainer(
    export_dir: str | os.PathLike,
    method: str = "ig",
    steps: int = 64,
    name: str = "explainer",
    input_example: Any = None,
):
    """Log the explainer (from code, with the SavedModel as an artifact) to the active run.

    Returns the ModelInfo (``.model_uri`` to load or serve it).
    """
    img_size = int(read_model_info(str(export_dir))["img_size"])
    requirements = ws.REPO_ROOT / "requirements.txt"
    with quiet_pyfunc_warnings():
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={"saved_model": str(export_dir)},
            model_config={"method": method, "steps": steps},
            signature=explainer_signature(img_size),
            code_paths=[str(PACKAGE_DIR)],
            input_example=input_example,
            pip_requirements=[f"-r {requirements}"] if requirements.exists() else None,
        )


@contextlib.contextmanager
def quiet_pyfunc_warnings():
    """Silence MLflow's advice to add type hints / an input example: the signature is explicit."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*(type hints|input example).*", category=UserWarning
        )
        yield


def load_explainer(model_uri: str):
    """``mlflow.pyfunc.load_model`` without the type-hint advice."""
    with quiet_pyfunc_warnings():
        return mlflow.pyfunc.load_model(model_uri)


def image_request(paths: Sequence[str | os.PathLike], targets: Sequence[str] | None = None) -> dict:
    """A JSON body for the served explainer: ``{"dataframe_records": [{"image_b64": ..}, ..]}``."""
    records = []
    for i, path in enumerate(paths):
        record = {"image_b64": base64.b64encode(Path(path).read_bytes()).decode()}
        if targets is not None:
            record["target"] = str(targets[i])
        records.append(record)
    return {"dataframe_records": records}


def png_b64_to_image(text: str) -> np.ndarray:
    """Decode a base64 PNG from a response (for plotting)."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))
