"""Prediction with the exported SavedModel: in memory, and as a Beam batch / streaming job.

Submodules:

    model     -> LoadedModel: the SavedModel in memory (signatures, labels, image size)
    inmemory  -> predict_files / predict_bytes, outputs as JSON rows, timing, notebook tables
    beam      -> the DoFns (shared model + BatchElements, naive, REST) and build_prediction
    rest      -> RetryPolicy, bounded retries then a dead letter for a model server; predict_jsonl
    job       -> run_batch_prediction: sources (files, CSV, TestStream, Pub/Sub), JSON-lines outputs
    __main__  -> ``python -m pmlv_utils.predict ...`` (DirectRunner or Dataflow)

In memory (09a)::

    model = predict.LoadedModel(export_dir)          # tf.saved_model.load + labels
    rows = predict.predict_files(["a.jpg", "b.jpg"], model)

Beam (09a/09b)::

    result = predict.run_batch_prediction("flower_photos/*/*.jpg", export_dir, "out/pred")
    result.predictions()   # rows read back from out/pred-predictions-*.jsonl
    result.dead_letters()  # {"path", "reason"} rows from out/pred-errors-*.jsonl

Importing this package imports TensorFlow and Apache Beam.
"""

from .beam import (
    DEAD_LETTER,
    METRICS_NAMESPACE,
    NaivePredictDoFn,
    PredictBatchDoFn,
    RestPredictDoFn,
    build_prediction,
)
from .inmemory import (
    MAX_FILE_BYTES,
    ImageRefused,
    classify_file_error,
    csv_paths,
    missing_files,
    outputs_to_rows,
    predict_bytes,
    predict_files,
    predictions_table,
    read_image_checked,
    short_name,
    split_files,
    time_in_memory,
    to_json_value,
)
from .job import BatchPredictionResult, read_filenames, read_inputs, run_batch_prediction
from .model import DEFAULT_SIGNATURE, LoadedModel, load_model
from .rest import RetryPolicy, post_json, predict_instances, predict_jsonl

__all__ = [
    "DEAD_LETTER",
    "DEFAULT_SIGNATURE",
    "MAX_FILE_BYTES",
    "METRICS_NAMESPACE",
    "BatchPredictionResult",
    "ImageRefused",
    "LoadedModel",
    "NaivePredictDoFn",
    "PredictBatchDoFn",
    "RestPredictDoFn",
    "RetryPolicy",
    "build_prediction",
    "classify_file_error",
    "csv_paths",
    "load_model",
    "missing_files",
    "outputs_to_rows",
    "post_json",
    "predict_bytes",
    "predict_files",
    "predict_instances",
    "predict_jsonl",
    "predictions_table",
    "read_filenames",
    "read_image_checked",
    "read_inputs",
    "run_batch_prediction",
    "short_name",
    "split_files",
    "time_in_memory",
    "to_json_value",
]
