"""The SHAP explainer as an MLflow pyfunc model *from code*: signature, logging, loading, requests.

No pickled Python object: MLflow runs :mod:`pmlv_utils.tracking.explainer_model` when it loads the
model (the class is :class:`pmlv_utils.tracking.shap_model.ShapImageExplainer`), with the
SavedModel as an artifact. Base64 image bytes in; label, probability, SHAP base value, the SHAP
map as a JSON array and as a base64 PNG, and an error field out. Never pickles: the source text
sends pickled SHAP values over HTTP, which lets whoever answers run code on the client (10d §6).
10d writes a short version of this in its own cells first, then logs this one and compares.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import io
import os
import warnings
from pathlib import Path
from typing import Sequence

import mlflow
import mlflow.pyfunc
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, Schema
from PIL import Image

from ..export import read_model_info
from .shap_model import DEFAULT_CONFIG

MODEL_CODE = Path(__file__).with_name("explainer_model.py")  # the pyfunc model, from code
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # pmlv_utils/, shipped with the model
INPUT_COLUMNS = ("image_b64",)
# The libraries whose versions make an explanation reproducible (logged with it).
VERSIONED = ("shap", "mlflow", "tensorflow", "keras", "numpy", "pandas", "pillow")
RESULT_TYPE = (  # the same output schema as a Spark DDL string (for mlflow.pyfunc.spark_udf)
    "label string, probability double, base_value double, shap array<array<double>>, "
    "shap_png_b64 string, error string"
)


def explainer_signature() -> ModelSignature:
    """The pyfunc signature: input ``image_b64`` (required); one output row per image."""
    inputs = Schema([ColSpec("string", "image_b64")])
    outputs = Schema(
        [
            ColSpec("string", "label"),
            ColSpec("double", "probability"),
            ColSpec("double", "base_value"),
            ColSpec(Array(Array("double")), "shap"),
            ColSpec("string", "shap_png_b64"),
            ColSpec("string", "error"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def library_versions(names: Sequence[str] = VERSIONED) -> dict[str, str]:
    """``{distribution: installed version}`` (what a provenance record and the pins name)."""
    return {name: importlib.metadata.version(name) for name in names}


def explainer_config(**overrides) -> dict:
    """The model config of the explainer: :data:`shap_model.DEFAULT_CONFIG` with overrides."""
    unknown = set(overrides) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"unknown explainer settings {sorted(unknown)}; known {DEFAULT_CONFIG}")
    return {**DEFAULT_CONFIG, **overrides}


def provenance(config: dict, export_dir: str | os.PathLike) -> dict:
    """What produced an explanation: method, masker (the baseline), evaluations, seed, versions."""
    info = read_model_info(str(export_dir))
    return {
        "method": "shap.PartitionExplainer (shap.Explainer with a shap.maskers.Image masker)",
        "masker": config["masker"],
        "baseline": f"masked regions replaced by the image under {config['masker']}",
        "max_evals": int(config["max_evals"]),
        "batch_size": int(config["batch_size"]),
        "seed": int(config["seed"]),
        "explained_output": "the predicted class (outputs=shap.Explanation.argsort.flip[:1])",
        "map": f"SHAP values summed over RGB, block means <= {config['map_size']} px a side",
        "model": {"img_size": int(info["img_size"]), "labels": list(info["labels"])},
        "versions": library_versions(),
    }


def log_explainer(export_dir: str | os.PathLike, name: str = "shap_explainer", **settings):
    """Log the SHAP explainer (from code, the SavedModel as an artifact) to the active run.

    ``settings``: the keys of :data:`shap_model.DEFAULT_CONFIG`. Also logs the provenance as
    ``<name>_provenance.json``. Returns the ModelInfo (``.model_uri`` to load or serve it).
    """
    config = explainer_config(**settings)
    with quiet_pyfunc_warnings():
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={"saved_model": str(export_dir)},
            model_config=config,
            signature=explainer_signature(),
            code_paths=[str(PACKAGE_DIR)],
            # Explicit pins: no requirement inference (it would load the model to find them).
            pip_requirements=[f"{k}=={v}" for k, v in library_versions().items()],
        )
    mlflow.log_dict(provenance(config, export_dir), f"{name}_provenance.json")
    return info


@contextlib.contextmanager
def quiet_pyfunc_warnings():
    """Silence MLflow's advice to add type hints / an input example: the signature is explicit."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*(type hint|input example|input_example).*", category=UserWarning
        )
        yield


def load_explainer(model_uri: str):
    """``mlflow.pyfunc.load_model`` without the type-hint advice."""
    with quiet_pyfunc_warnings():
        return mlflow.pyfunc.load_model(model_uri)


def image_request(paths: Sequence[str | os.PathLike]) -> dict:
    """A JSON body for the served explainer: ``{"dataframe_records": [{"image_b64": ..}, ..]}``.

    The client reads its own files and sends their bytes; the server never opens a path."""
    return {
        "dataframe_records": [
            {"image_b64": base64.b64encode(Path(p).read_bytes()).decode()} for p in paths
        ]
    }


def png_b64_to_image(text: str) -> np.ndarray:
    """Decode a base64 PNG from a response (for plotting)."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))
