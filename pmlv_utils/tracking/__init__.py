"""Explanations tracked and served with MLflow (10d).

Submodules:

    runs             -> the tracking store (sqlite in the workspace), a trainer job's metrics,
                        explanation artifacts (.npz, no pickles; PNG plots), reading them back
    explainer        -> the explainer as a pyfunc model from code: signature, log, load, requests
    explainer_model  -> the "model from code" file MLflow runs (never imported by the package)
    served           -> ServedModel, serve_model: ``mlflow models serve --env-manager local``
    batch            -> run_batch_explanations: Beam, one explainer a worker (Shared), dead letters

Importing this package imports MLflow, TensorFlow and Apache Beam.
"""

from .batch import ExplainBatchDoFn, LoadedExplainer, read_jsonl, run_batch_explanations
from .explainer import (
    INPUT_COLUMNS,
    MODEL_CODE,
    decode_request_images,
    explainer_signature,
    image_request,
    load_explainer,
    log_explainer,
    png_b64_to_image,
    quiet_pyfunc_warnings,
)
from .runs import (
    EXPERIMENT,
    configure,
    load_logged_attributions,
    log_explanations,
    log_training_job,
    tracking_uri,
)
from .served import ServedModel, serve_model

__all__ = [
    "EXPERIMENT",
    "INPUT_COLUMNS",
    "MODEL_CODE",
    "ExplainBatchDoFn",
    "LoadedExplainer",
    "ServedModel",
    "configure",
    "decode_request_images",
    "explainer_signature",
    "image_request",
    "load_explainer",
    "load_logged_attributions",
    "log_explainer",
    "log_explanations",
    "log_training_job",
    "png_b64_to_image",
    "quiet_pyfunc_warnings",
    "read_jsonl",
    "run_batch_explanations",
    "serve_model",
    "tracking_uri",
]
