"""Command line: the prediction job on the DirectRunner or Dataflow::

    python -m pmlv_utils.predict --input PATTERN|CSV --model_dir D --output_prefix P [--runner R]

Flags it does not know go to Beam's PipelineOptions, e.g. ``--project``, ``--temp_location``.
"""

from __future__ import annotations

import argparse
import json
from typing import Sequence

from .job import run_batch_prediction


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the flags (unknown ones go to PipelineOptions), run the job, print its counters."""
    ap = argparse.ArgumentParser(
        prog="python -m pmlv_utils.predict", description="Beam batch prediction"
    )
    ap.add_argument(
        "--input",
        required=True,
        help="file pattern, all_data.csv, .txt list, or projects/.../subscriptions/...",
    )
    ap.add_argument("--model_dir", help="exported SavedModel (local or gs://)")
    ap.add_argument("--output_prefix", required=True)
    ap.add_argument("--mode", default="shared", choices=["shared", "naive", "rest"])
    ap.add_argument("--predict_url", help="a model server's :predict URL (mode rest)")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--streaming", action="store_true")
    ap.add_argument("--window_seconds", type=float, default=10.0)
    ap.add_argument("--runner", default="DirectRunner")
    args, pipeline_args = ap.parse_known_args(argv)
    result = run_batch_prediction(
        args.input,
        args.model_dir,
        args.output_prefix,
        args.streaming,
        mode=args.mode,
        batch_size=args.batch_size,
        predict_url=args.predict_url,
        runner=args.runner,
        pipeline_args=pipeline_args,
        window_seconds=args.window_seconds,
    )
    print(json.dumps({"seconds": round(result.seconds, 2), **result.counters}))


if __name__ == "__main__":
    main()
