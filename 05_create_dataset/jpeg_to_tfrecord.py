"""Create train/valid/test TFRecords from the book's ``all_data.csv`` with Apache Beam.

Run from this folder, as in the book::

    python -m jpeg_to_tfrecord --all_data DATA.csv --labels_file dict.txt --output_dir OUT
    python -m jpeg_to_tfrecord ... --runner DataflowRunner --project_id P --region R \\
        --output_dir gs://BUCKET/flowers_tfrecords

Locally the job runs on Beam's DirectRunner (``--direct_running_mode multi_processing
--direct_num_workers 2`` to use two processes). Lines that cannot become a record go to
``OUTPUT_DIR/errors-00000-of-00001.jsonl`` with a reason (bytes that are not UTF-8, a
duplicate path, an image over the pixel budget or of a format not allowed, ...); the job still
exits 0. An empty CSV or a labels file that is unreadable or has fewer than two labels exits
with status 2 and a message. Two runs over the same CSV write byte-identical shards.
Any other ``--flag`` is passed to Beam's PipelineOptions.
"""

import argparse
import sys

from pmlv_utils import safe_io, tfrecords


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="jpeg_to_tfrecord", description=__doc__.split("\n\n")[0])
    ap.add_argument("--all_data", required=True, help="CSV of path,label lines (local or gs://)")
    ap.add_argument("--labels_file", required=True, help="dict.txt: one label a line")
    ap.add_argument(
        "--output_dir", required=True, help="folder for the shards (gs:// for Dataflow)"
    )
    ap.add_argument("--runner", default="DirectRunner", choices=["DirectRunner", "DataflowRunner"])
    ap.add_argument("--project_id", default=None, help="GCP project (Dataflow only)")
    ap.add_argument("--region", default=None, help="GCP region (Dataflow only)")
    ap.add_argument(
        "--num_workers", type=int, default=None, help="Dataflow: maximum number of workers"
    )
    ap.add_argument("--direct_running_mode", default=None, choices=list(tfrecords.RUNNING_MODES))
    ap.add_argument("--direct_num_workers", type=int, default=None)
    ap.add_argument(
        "--num_shards",
        type=int,
        default=None,
        help="train shards (valid/test get 1/8 of it); default from the data size",
    )
    ap.add_argument("--counts_json", default=None, help="also write the counts to this file")
    return ap.parse_known_args(argv)


def config_from_args(args, beam_args) -> tfrecords.DatasetJobConfig:
    """The job's settings from the parsed flags (unknown flags go to Beam)."""
    return tfrecords.DatasetJobConfig(
        all_data=args.all_data,
        labels_file=args.labels_file,
        output_dir=args.output_dir,
        runner=args.runner,
        project_id=args.project_id,
        region=args.region,
        num_shards=args.num_shards,
        direct_num_workers=args.direct_num_workers,
        direct_running_mode=args.direct_running_mode,
        extra_args=tuple(beam_args),
        num_workers=args.num_workers,
    )


def main(argv=None) -> int:
    args, beam_args = parse_args(argv)
    try:
        counts = tfrecords.run_pipeline(config_from_args(args, beam_args))
    except (ValueError, FileNotFoundError) as e:
        print(f"jpeg_to_tfrecord: error: {e}", file=sys.stderr)
        return 2
    if args.counts_json:
        safe_io.write_json(args.counts_json, counts)  # a temporary file, then renamed
    return 0


if __name__ == "__main__":
    sys.exit(main())
