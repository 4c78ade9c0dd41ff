"""Small I/O helpers every stage shares: atomic JSON writes, and error text fit for a client.

``write_json`` writes to a temporary file beside the target and renames it, so a reader never
sees half a file (local paths); ``gs://`` and other URLs go through TensorFlow's filesystem,
whose object stores publish a file only once it is closed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

# Lines of a TensorFlow error message that say nothing about the cause.
_TF_NOISE = ("Graph execution error", "Detected at node", "<stack traces unavailable>", "[[")


def json_default(value: Any):
    """``json.dump``'s fallback for numpy scalars and arrays (anything else becomes its str)."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    return str(value)


def write_json(
    path: str | os.PathLike, value: Any, indent: int | None = 1, allow_nan: bool = True
) -> None:
    """Write ``value`` as JSON to ``path`` atomically (temporary file + rename when local)."""
    text = json.dumps(value, indent=indent, default=json_default, allow_nan=allow_nan)
    write_text(path, text)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file + rename when local)."""
    if "://" in str(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(str(path), "w") as f:
            f.write(text)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file (local path or a URL TensorFlow's filesystem knows)."""
    if "://" in str(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(str(path)) as f:
            return json.load(f)
    return json.loads(Path(path).read_text(encoding="utf-8"))


def short_error(err: BaseException, limit: int = 200) -> str:
    """The informative line of an error (TensorFlow's graph and node boilerplate removed)."""
    text = getattr(err, "message", None) or str(err)
    lines = [
        ln.strip()
        for ln in text.splitlines()
        if ln.strip() and not ln.strip().startswith(_TF_NOISE)
    ]
    line = lines[0] if lines else text.strip()
    return re.sub(r"\s*\[\[.*|\s*\[Op:.*|\{\{.*?\}\}", "", line).strip()[:limit]


def http_error_text(response, limit: int = 200) -> str:
    """The ``error`` field of a JSON error answer, or the start of its body."""
    try:
        return str(response.json().get("error", response.text))[:limit]
    except (ValueError, AttributeError):
        return response.text[:limit]
