"""Batch explanations with Beam: the logged explainer loaded once per worker, bad images aside.

The explainer is held through ``apache_beam.utils.shared.Shared`` (one load per worker process),
batches come from ``BatchElements``. Each file is read once and checked before the explainer
sees it (:func:`pmlv_utils.predict.read_image_checked`: a regular file under the size cap, the
pixel budget and format read from the header), so a decompression bomb never reaches a decoder;
unreadable, refused or undecodable images go to a dead-letter output and the job finishes.
Beam writes the outputs to a temporary folder and renames them when the job ends.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Sequence

import apache_beam as beam
import pandas as pd
from apache_beam.utils.shared import Shared

from .. import quiet
from ..predict import ImageRefused, read_image_checked
from .explainer import load_explainer
from .runs import tracking_uri

quiet.beam_interactive_notice_off()

DEAD_LETTER = "dead_letter"


class LoadedExplainer:
    """A weak-referenceable holder for a loaded pyfunc model (Shared needs one).

    ``LoadedExplainer.loads`` counts the loads in this process (the notebook shows it).
    """

    loads = 0

    def __init__(self, model_uri: str):
        self.model = load_explainer(model_uri)
        LoadedExplainer.loads += 1


class ExplainBatchDoFn(beam.DoFn):
    """Explain a LIST of image paths (after ``BatchElements``) with one explainer per worker.

    Explained images go to the main output as ``{"path", <the explainer's output fields>}``;
    the others (and rows the explainer answered with an ``error``) to ``dead_letter`` as
    ``{"path", "reason"}``.
    """

    def __init__(self, model_uri: str, shared_handle: Shared | None = None):
        self._model_uri = model_uri
        self._shared = shared_handle or Shared()

    def _load(self) -> LoadedExplainer:
        return LoadedExplainer(self._model_uri)

    def process(self, paths):
        holder = self._shared.acquire(self._load)
        good, records = [], []
        for path in paths:
            try:
                data = read_image_checked(path)
            except ImageRefused as err:
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTER, {"path": path, "reason": f"unreadable: {err.reason}"}
                )
                continue
            records.append({"image_b64": base64.b64encode(data).decode()})
            good.append(path)
        # One call for the batch; if it fails (a bad image), retry one by one to isolate it.
        try:
            rows = holder.model.predict(pd.DataFrame(records)) if records else []
            rows = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows
            pairs = list(zip(good, rows))
        except Exception:  # noqa: BLE001 - the failing row is found and reported below
            pairs = []
            for path, record in zip(good, records):
                try:
                    one = holder.model.predict(pd.DataFrame([record]))
                    one = one.to_dict("records") if isinstance(one, pd.DataFrame) else one
                    pairs.append((path, one[0]))
                except Exception as err:  # noqa: BLE001
                    yield beam.pvalue.TaggedOutput(
                        DEAD_LETTER, {"path": path, "reason": str(err)[:300]}
                    )
        for path, row in pairs:
            if row.get("error"):  # the explainer's own error field (10d's SHAP explainer)
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, {"path": path, "reason": row["error"]})
            else:
                yield {"path": path, **{k: v for k, v in row.items() if k != "error"}}


def run_batch_explanations(
    paths: Sequence[str],
    model_uri: str,
    output_prefix: str,
    min_batch_size: int = 4,
    max_batch_size: int = 16,
    uri: str | None = None,
    workspace=None,
) -> dict:
    """Explain many images with Beam; returns counts and output files.

    Writes ``<output_prefix>-explanations-*.jsonl`` and ``<output_prefix>-errors-*.jsonl``.
    """
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri(uri, workspace)
    shared = Shared()
    with beam.Pipeline() as pipeline:
        results = (
            pipeline
            | "paths" >> beam.Create([str(p) for p in paths])
            | "batch"
            >> beam.BatchElements(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
            | "explain"
            >> beam.ParDo(ExplainBatchDoFn(model_uri, shared)).with_outputs(
                DEAD_LETTER, main="explained"
            )
        )
        (
            results.explained
            | "json" >> beam.Map(json.dumps)
            | "write"
            >> beam.io.WriteToText(output_prefix + "-explanations", file_name_suffix=".jsonl")
        )
        (
            results[DEAD_LETTER]
            | "json errors" >> beam.Map(json.dumps)
            | "write errors"
            >> beam.io.WriteToText(output_prefix + "-errors", file_name_suffix=".jsonl")
        )
    folder = Path(output_prefix).parent
    stem = Path(output_prefix).name
    explained = sorted(folder.glob(f"{stem}-explanations-*.jsonl"))
    errors = sorted(folder.glob(f"{stem}-errors-*.jsonl"))
    return {
        "explained": len(read_jsonl(explained)),
        "dead_letter": len(read_jsonl(errors)),
        "explanation_files": [str(f) for f in explained],
        "error_files": [str(f) for f in errors],
    }


def read_jsonl(files: Sequence[str | os.PathLike]) -> list[dict]:
    """The JSON objects of JSON-lines files, in file order (blank lines skipped)."""
    return [
        json.loads(line) for f in files for line in Path(f).read_text().splitlines() if line.strip()
    ]
