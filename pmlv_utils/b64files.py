"""Files as base64 text, one row each, with the reason a file could not be read.

What a Spark worker runs to read image files for the explainer (10d): it is pickled by
reference, so the worker imports this small module (pandas, PIL's header parsers) instead of
``pmlv_utils.tracking`` and TensorFlow. Each file is checked by
:func:`pmlv_utils.image_limits.check_file` (a regular file, at most 32 MB, a known format whose
header fits the pixel budget), so a FIFO cannot block a worker and a decompression bomb never
reaches a decoder. A file that cannot be read or is refused gives ``image_b64 = ""`` and
``read_error``, never an exception: one bad file must not fail the task.
"""

from __future__ import annotations

import base64

import pandas as pd

from . import image_limits

COLUMNS = ("image_b64", "read_error")
SPARK_TYPE = "image_b64 string, read_error string"  # the same, as a Spark DDL struct


def read_b64(paths: pd.Series) -> pd.DataFrame:
    """Paths -> ``image_b64`` (the bytes in base64) and ``read_error`` (``""`` when read)."""
    rows = []
    for path in paths:
        try:  # opened once: a regular file under the size cap, the pixel budget in its header
            data = image_limits.check_file(path).data
            rows.append((base64.b64encode(data).decode("ascii"), ""))
        except OSError as err:
            rows.append(("", f"unreadable: {err.strerror or err}"))
        except (image_limits.NotAnImage, image_limits.ImageTooLarge) as err:
            rows.append(("", f"refused: {err}"[:300]))
    return pd.DataFrame(rows, columns=list(COLUMNS))
