"""Explanations tracked, served and run in batch with MLflow (10d).

Submodules:

    runs             -> the tracking store (sqlite in the workspace), a trainer job's metrics,
                        explanation artifacts (.npz, no pickles; PNG plots), reading them back
    shap_model       -> ShapImageExplainer: the SHAP partition explainer as a pyfunc model
    explainer        -> its signature, provenance, log_explainer / load_explainer, requests
    explainer_model  -> the "model from code" file MLflow runs (never imported by the package)
    served           -> ServedModel, serve_model: ``mlflow models serve --env-manager local``
    server           -> launch / Background (start, wait, stop a server), ``mlflow server``
    spark            -> local_spark (local[2] on 127.0.0.1, no UI, quiet), java_runtime,
                        spark_explanations: spark_udf over a DataFrame of paths, dead letters
    batch            -> run_batch_explanations: Beam, one explainer a worker (Shared), dead letters

Importing this package imports MLflow, SHAP, TensorFlow, PySpark and Apache Beam.
"""

from .batch import ExplainBatchDoFn, LoadedExplainer, read_jsonl, run_batch_explanations
from .explainer import (
    INPUT_COLUMNS,
    MODEL_CODE,
    PACKAGE_DIR,
    RESULT_TYPE,
    explainer_config,
    explainer_signature,
    image_request,
    library_versions,
    load_explainer,
    log_explainer,
    png_b64_to_image,
    provenance,
    quiet_pyfunc_warnings,
)
from .runs import (
    EXPERIMENT,
    captured_messages,
    configure,
    load_logged_attributions,
    log_explanations,
    log_training_job,
    tracking_uri,
)
from .served import ServedModel, serve_model
from .server import Background, launch, start_tracking_server, tracking_server_command
from .shap_model import OUTPUT_COLUMNS, ShapImageExplainer, decode_image_b64
from .spark import (
    JAVA_MISSING,
    image_frame,
    java_runtime,
    local_spark,
    spark_explanations,
    split_dead_letters,
)

__all__ = [
    "EXPERIMENT",
    "INPUT_COLUMNS",
    "JAVA_MISSING",
    "MODEL_CODE",
    "OUTPUT_COLUMNS",
    "PACKAGE_DIR",
    "RESULT_TYPE",
    "Background",
    "ExplainBatchDoFn",
    "LoadedExplainer",
    "ServedModel",
    "ShapImageExplainer",
    "captured_messages",
    "configure",
    "decode_image_b64",
    "explainer_config",
    "explainer_signature",
    "image_request",
    "image_frame",
    "java_runtime",
    "launch",
    "library_versions",
    "load_explainer",
    "load_logged_attributions",
    "local_spark",
    "log_explainer",
    "log_explanations",
    "log_training_job",
    "png_b64_to_image",
    "provenance",
    "quiet_pyfunc_warnings",
    "read_jsonl",
    "run_batch_explanations",
    "serve_model",
    "spark_explanations",
    "split_dead_letters",
    "start_tracking_server",
    "tracking_server_command",
    "tracking_uri",
]
