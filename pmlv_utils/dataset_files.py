"""Reading the data set's files (``all_data.csv``, ``dict.txt``) and the deterministic split.

Formats (the book's): ``dict.txt`` has one label a line; ``all_data.csv`` has headerless
``path,label`` lines. Paths may be absolute, ``gs://...`` or relative to the CSV's folder.

The split of an image is decided by a hash of the last two components of its path
(``<class>/<file>``), never by a random draw: the same image lands in the same split on
every run, on every Beam worker, and whether it is read from a local copy or from GCS.
"""

from __future__ import annotations

import csv
import hashlib
import os
import posixpath
from typing import Iterator, NamedTuple, Sequence

SPLITS = ("train", "valid", "test")
SHARD_SUFFIX = "-*-of-*.gz"  # Beam's shard names: train-00000-of-00004.gz
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)

# Reasons a CSV line is rejected before its image is even read (see tfrecords.images for the rest).
EMPTY_LINE = "empty line"
MALFORMED_LINE = "malformed line"


class CsvRow(NamedTuple):
    """One line of ``all_data.csv``. ``problem`` is None for a usable line, else the reason."""

    line: int  # 1-based line number in the CSV
    path: str  # resolved path ('' when the line could not be parsed)
    label: str
    problem: str | None = None
    text: str = ""  # the raw line, kept for the dead-letter output


def _gfile():
    import tensorflow as tf  # heavy: only imported when a file is actually read

    return tf.io.gfile


def has_scheme(path: str) -> bool:
    """True for URLs such as ``gs://bucket/x.jpg`` (kept as they are)."""
    return "://" in path


def resolve_path(path: str, base_dir: str) -> str:
    """``path`` if absolute or a URL, else ``path`` joined to ``base_dir`` (local or gs://)."""
    if has_scheme(path) or posixpath.isabs(path) or not base_dir:
        return path
    joined = posixpath.join(base_dir, path)
    return joined if has_scheme(base_dir) else posixpath.normpath(joined)


def csv_folder(csv_path: str) -> str:
    """The folder of a CSV file, as an absolute path when it is local."""
    folder = posixpath.dirname(str(csv_path))
    if not has_scheme(folder):
        folder = os.path.abspath(folder or ".")
    return folder


def read_labels(path: str) -> list[str]:
    """The labels of ``dict.txt`` in file order (blank lines ignored).

    Raises ValueError naming the file when it holds fewer than two labels or a duplicate.
    """
    gfile = _gfile()
    if not gfile.exists(path):
        raise FileNotFoundError(f"labels file not found: {path}")
    with gfile.GFile(path, "r") as f:
        labels = [s.strip() for s in f.read().splitlines() if s.strip()]
    if len(labels) < 2:
        raise ValueError(
            f"labels file {path} has {len(labels)} label(s); a classifier needs at least 2"
        )
    duplicates = sorted({lab for lab in labels if labels.count(lab) > 1})
    if duplicates:
        raise ValueError(f"labels file {path} lists some labels more than once: {duplicates}")
    return labels


def parse_csv_line(line_number: int, text: str, base_dir: str = "") -> CsvRow:
    """Parse one ``path,label`` line; a bad line gives a row whose ``problem`` says why."""
    stripped = text.strip()
    if not stripped:
        return CsvRow(line_number, "", "", EMPTY_LINE, text)
    try:
        fields = next(csv.reader([stripped]))
    except csv.Error:
        fields = []
    fields = [f.strip() for f in fields]
    if len(fields) != 2 or not fields[0] or not fields[1]:
        return CsvRow(line_number, "", "", MALFORMED_LINE, text)
    return CsvRow(line_number, resolve_path(fields[0], base_dir), fields[1], None, text)


def iter_all_data(path: str) -> Iterator[CsvRow]:
    """Every line of ``all_data.csv`` as a :class:`CsvRow` (bad lines included, with a problem)."""
    gfile = _gfile()
    if not gfile.exists(path):
        raise FileNotFoundError(f"data CSV not found: {path}")
    base_dir = csv_folder(path)
    with gfile.GFile(path, "r") as f:
        for number, text in enumerate(f.read().splitlines(), start=1):
            yield parse_csv_line(number, text, base_dir)


def read_all_data(path: str, report=print) -> list[CsvRow]:
    """All rows of ``all_data.csv``. Blank or malformed lines are kept (with ``problem`` set)
    and reported through ``report`` (pass ``None`` for silence); they never raise."""
    rows = list(iter_all_data(path))
    bad = [r for r in rows if r.problem]
    if bad and report is not None:
        shown = ", ".join(f"line {r.line}: {r.problem}" for r in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        report(f"{path}: {len(bad)} unusable line(s) of {len(rows)}: {shown}{more}")
    return rows


def split_key(path: str) -> str:
    """The part of a path the split depends on: ``<class>/<file>``."""
    parts = [p for p in str(path).replace("\\", "/").split("/") if p]
    return "/".join(parts[-2:])


def split_for(
    path: str, fractions: Sequence[float] = DEFAULT_FRACTIONS, names: Sequence[str] = SPLITS
) -> str:
    """``'train'``, ``'valid'`` or ``'test'`` for an image path, by a stable hash (sha256).

    The same ``<class>/<file>`` always gets the same split, whatever the folder above it.
    """
    if (
        len(fractions) != len(names)
        or any(f < 0 for f in fractions)
        or abs(sum(fractions) - 1) > 1e-6
    ):
        raise ValueError(
            f"fractions must be {len(names)} non-negative numbers summing to 1, got {fractions}"
        )
    digest = hashlib.sha256(split_key(path).encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
    edge = 0.0
    for name, fraction in zip(names, fractions):
        edge += fraction
        if u < edge:
            return name
    return [n for n, f in zip(names, fractions) if f > 0][-1]  # float rounding at the top edge


def split_pattern(topdir: str, split: str, suffix: str = SHARD_SUFFIX) -> str:
    """The glob of one split's TFRecord shards, e.g. ``<topdir>/train-*-of-*.gz``.

    ``suffix`` is the trainer's ``--pattern`` flag (the book passes ``-*``).
    """
    return f"{str(topdir).rstrip('/')}/{split}{suffix}"
