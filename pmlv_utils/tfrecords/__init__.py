"""The chapter-5 Beam job: ``all_data.csv`` -> train/valid/test TFRecords, plus a dead-letter file.

    from pmlv_utils import tfrecords
    counts = tfrecords.run_pipeline(tfrecords.DatasetJobConfig(
        all_data="…/all_data.csv", labels_file="…/dict.txt", output_dir="…/tfrecords"))

Record schema (``SCHEMA_VERSION``), one ``tf.train.Example`` per image:

    image      bytes     the encoded JPEG, RGB (the source bytes when the source already is one)
    shape      int64[3]  (height, width, 3)
    label      bytes     e.g. b"daisy"
    label_int  int64     index of the label in dict.txt
    path       bytes     the image's path as resolved from the CSV

The book stored float32 pixels flattened at full size: about 17x the JPEG bytes. Keeping the
JPEG keeps the records about as big as the source files (see :func:`size_report`).

Output folder (Beam's default shard names, GZIP)::

    train-00000-of-000NN.gz  valid-...gz  test-...gz
    errors-00000-of-00001.jsonl   one JSON object a line: line, path, label, reason, detail

Every CSV line ends up in exactly one place: a split, or the errors file with a reason from
:data:`REJECT_REASONS`. The job never stops for a bad line. Only a missing/empty CSV or a
labels file with fewer than two labels stop it, before it starts, with a ValueError.

The split is :func:`pmlv_utils.dataset_files.split_for` (a hash of ``<class>/<file>``), so it is
the same on every run and every worker, with any runner.

Submodules:

    examples  the tf.train.Example schema: make_example, feature_spec, parse_example, decode_image
    images    one image: read_bytes, to_rgb_jpeg (convert only when needed), reject reasons,
              ImageRejected, error_record (the dead-letter line)
    job       DatasetJobConfig, the Beam graph (CsvRowToRecord), run_pipeline, shard counts
    options   PipelineOptions for the DirectRunner or Dataflow, requirements_for_workers
    reading   reading a run back: count_records, read_records, read_errors, size_report,
              output_files
    demo      write_bad_input_demo: a small CSV with one line of every problem kind

Importing this package imports TensorFlow and Apache Beam.
"""

from .demo import write_bad_input_demo
from .examples import SCHEMA_VERSION, decode_image, feature_spec, make_example, parse_example
from .images import (
    CORRUPT_IMAGE,
    EMPTY_FILE,
    EMPTY_LINE,
    ERRORS_PREFIX,
    IMAGE_TOO_LARGE,
    MALFORMED_LINE,
    MISSING_FILE,
    NOT_AN_IMAGE,
    READ_ERROR,
    REENCODE_QUALITY,
    REJECT_REASONS,
    UNKNOWN_LABEL,
    ImageRejected,
    error_record,
    read_bytes,
    to_rgb_jpeg,
)
from .job import (
    METRICS_NAMESPACE,
    CsvRowToRecord,
    DatasetJobConfig,
    build_graph,
    count_csv_lines,
    format_counts,
    run_pipeline,
    shard_counts,
)
from .options import (
    LOCAL_RUNNERS,
    REPO_ROOT,
    RUNNERS,
    RUNNING_MODES,
    build_pipeline_options,
    requirements_for_workers,
)
from .reading import (
    BOOK_FLOAT32_BYTES_5_IMAGES,
    BOOK_FLOAT32_OVER_JPEG,
    count_records,
    output_files,
    read_errors,
    read_records,
    remove_output_files,
    size_report,
)

__all__ = [
    "BOOK_FLOAT32_BYTES_5_IMAGES",
    "BOOK_FLOAT32_OVER_JPEG",
    "CORRUPT_IMAGE",
    "EMPTY_FILE",
    "EMPTY_LINE",
    "ERRORS_PREFIX",
    "IMAGE_TOO_LARGE",
    "LOCAL_RUNNERS",
    "MALFORMED_LINE",
    "METRICS_NAMESPACE",
    "MISSING_FILE",
    "NOT_AN_IMAGE",
    "READ_ERROR",
    "REENCODE_QUALITY",
    "REJECT_REASONS",
    "REPO_ROOT",
    "RUNNERS",
    "RUNNING_MODES",
    "SCHEMA_VERSION",
    "UNKNOWN_LABEL",
    "CsvRowToRecord",
    "DatasetJobConfig",
    "ImageRejected",
    "build_graph",
    "build_pipeline_options",
    "count_csv_lines",
    "count_records",
    "decode_image",
    "error_record",
    "feature_spec",
    "format_counts",
    "make_example",
    "output_files",
    "parse_example",
    "read_bytes",
    "read_errors",
    "read_records",
    "remove_output_files",
    "requirements_for_workers",
    "run_pipeline",
    "shard_counts",
    "size_report",
    "to_rgb_jpeg",
    "write_bad_input_demo",
]
