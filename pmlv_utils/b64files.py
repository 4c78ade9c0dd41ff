"""Files as base64 text, one row each, with the reason a file could not be read.

What a Spark worker runs to read image files for the explainer (10d): it is pickled by reference,
so the worker imports this small module (pandas only) instead of ``pmlv_utils.tracking`` and
TensorFlow. A file that cannot be read gives ``image_b64 = ""`` and ``read_error``, never an
exception: one bad file must not fail the task.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pandas as pd

COLUMNS = ("image_b64", "read_error")
SPARK_TYPE = "image_b64 string, read_error string"  # the same, as a Spark DDL struct


def read_b64(paths: pd.Series) -> pd.DataFrame:
    """Paths -> ``image_b64`` (the bytes in base64) and ``read_error`` (``""`` when read)."""
    rows = []
    for path in paths:
        try:
            rows.append((base64.b64encode(Path(path).read_bytes()).decode("ascii"), ""))
        except OSError as err:
            rows.append(("", f"unreadable: {err.strerror or err}"))
    return pd.DataFrame(rows, columns=list(COLUMNS))
