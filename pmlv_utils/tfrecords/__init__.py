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
    dict.txt                      the labels, one a line (the trainer needs only this folder)

Every CSV line ends up in exactly one place: a split, or the errors file with a reason from
:data:`REJECT_REASONS`. The job never stops for a bad line: bytes that are not UTF-8, a path
listed twice (the first line is written, later ones are rejected as ``duplicate``), a file
that is not a regular file or over the size cap, an image over the pixel budget (read from its
header, before decoding), a format outside :data:`ALLOWED_FORMATS`, a failed conversion. Every
stored image is checked with TensorFlow's own decoder. Only a missing/empty CSV or an
unreadable labels file / one with fewer than two labels stop it, before it starts, with a
ValueError. UTF-8 byte-order marks are dropped in both files.

Two runs over the same CSV write byte-identical files (deterministic serialisation, shards by
a hash of the path, a fixed order in each shard), so content hashes and caches hold.

The split is :func:`pmlv_utils.dataset_files.split_for` (a hash of ``<class>/<file>``), so it is
the same on every run and every worker, with any runner.

Submodules:

    examples  the tf.train.Example schema: make_example, serialize (deterministic bytes),
              feature_spec, parse_example, decode_image
    images    one image: read_bytes (regular files under a cap), to_rgb_jpeg (pixel budget,
              format allowlist, convert only when needed, TensorFlow-decodable), reject
              reasons, ImageRejected, error_record (the dead-letter line)
    job       DatasetJobConfig, the Beam graph (CsvRowToRecord, WriteShard: deterministic
              shards written then renamed), run_pipeline, shard counts
    options   PipelineOptions for the DirectRunner or Dataflow, requirements_for_workers
    reading   reading a run back: count_records, read_records, read_errors, size_report,
              output_files
    demo      write_bad_input_demo: a small CSV with one line of every problem kind

Importing this package imports TensorFlow and Apache Beam.
"""

from .demo import write_bad_input_demo
from .examples import (
    SCHEMA_VERSION,
    decode_image,
    feature_spec,
    make_example,
    parse_example,
    serialize,
)
from .images import (
    ALLOWED_FORMATS,
    CONVERSION_FAILED,
    CORRUPT_IMAGE,
    DUPLICATE,
    EMPTY_FILE,
    EMPTY_LINE,
    ERRORS_PREFIX,
    IMAGE_TOO_LARGE,
    JPEG_MAX_SIDE,
    MALFORMED_LINE,
    MAX_FILE_BYTES,
    MAX_PIXELS,
    MISSING_FILE,
    NOT_AN_IMAGE,
    NOT_UTF8,
    READ_ERROR,
    REENCODE_QUALITY,
    REJECT_REASONS,
    UNKNOWN_LABEL,
    UNSUPPORTED_FORMAT,
    ImageRejected,
    error_record,
    read_bytes,
    tf_decodable,
    to_rgb_jpeg,
)
from .job import (
    LABELS_NAME,
    METRICS_NAMESPACE,
    CsvRowToRecord,
    DatasetJobConfig,
    WriteShard,
    build_graph,
    count_csv_lines,
    format_counts,
    labels_path,
    record_key,
    run_pipeline,
    shard_counts,
    shard_name,
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
    "ALLOWED_FORMATS",
    "BOOK_FLOAT32_BYTES_5_IMAGES",
    "BOOK_FLOAT32_OVER_JPEG",
    "CONVERSION_FAILED",
    "CORRUPT_IMAGE",
    "DUPLICATE",
    "EMPTY_FILE",
    "EMPTY_LINE",
    "ERRORS_PREFIX",
    "IMAGE_TOO_LARGE",
    "JPEG_MAX_SIDE",
    "LABELS_NAME",
    "LOCAL_RUNNERS",
    "MALFORMED_LINE",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "METRICS_NAMESPACE",
    "MISSING_FILE",
    "NOT_AN_IMAGE",
    "NOT_UTF8",
    "READ_ERROR",
    "REENCODE_QUALITY",
    "REJECT_REASONS",
    "REPO_ROOT",
    "RUNNERS",
    "RUNNING_MODES",
    "SCHEMA_VERSION",
    "UNKNOWN_LABEL",
    "UNSUPPORTED_FORMAT",
    "CsvRowToRecord",
    "DatasetJobConfig",
    "ImageRejected",
    "WriteShard",
    "build_graph",
    "build_pipeline_options",
    "count_csv_lines",
    "count_records",
    "decode_image",
    "error_record",
    "feature_spec",
    "format_counts",
    "labels_path",
    "make_example",
    "output_files",
    "parse_example",
    "read_bytes",
    "read_errors",
    "read_records",
    "record_key",
    "remove_output_files",
    "requirements_for_workers",
    "run_pipeline",
    "serialize",
    "shard_counts",
    "shard_name",
    "size_report",
    "tf_decodable",
    "to_rgb_jpeg",
    "write_bad_input_demo",
]
