"""Reading the data set's files (``all_data.csv``, ``dict.txt``) and the deterministic split.

Formats (the book's): ``dict.txt`` has one label a line; ``all_data.csv`` has headerless
``path,label`` lines. Paths may be absolute, ``gs://...`` or relative to the CSV's folder.

Both files are read as bytes, one line at a time (:func:`iter_lines`): a UTF-8 byte-order mark
at the start is dropped, a CSV line that is not valid UTF-8 becomes a row with the problem
``NOT_UTF8`` (the others are still read), fields are parsed with the ``csv`` module (a quoted
path may hold commas). A path listed again is a ``DUPLICATE`` row: the first line with a path
is the one used, every later one is rejected naming that first line.

The split of an image is decided by a hash of the last two components of its path
(``<class>/<file>``), never by a random draw: the same image lands in the same split on
every run, on every Beam worker, and whether it is read from a local copy or from GCS.
"""

from __future__ import annotations

import csv
import hashlib
import os
import posixpath
from typing import Iterable, Iterator, NamedTuple, Sequence

SPLITS = ("train", "valid", "test")
SHARD_SUFFIX = "-*-of-*.gz"  # Beam's shard names: train-00000-of-00004.gz
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)

# Reasons a CSV line is rejected before its image is even read (see tfrecords.images for the rest).
EMPTY_LINE = "empty line"
MALFORMED_LINE = "malformed line"
NOT_UTF8 = "not UTF-8"
DUPLICATE = "duplicate"
BOM = b"\xef\xbb\xbf"  # the UTF-8 byte-order mark some editors put at the start of a file


class CsvRow(NamedTuple):
    """One line of ``all_data.csv``. ``problem`` is None for a usable line, else the reason."""

    line: int  # 1-based line number in the CSV
    path: str  # resolved path ('' when the line could not be parsed)
    label: str
    problem: str | None = None
    text: str = ""  # the raw line, kept for the dead-letter output
    detail: str = ""  # more about the problem (e.g. the line a duplicate repeats)


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


def iter_lines(path: str) -> Iterator[tuple[int, str | None, bytes]]:
    """``(line number, text, raw bytes)`` for every line of a local or gs:// file.

    Read as bytes one line at a time; the line break (``\\n`` or ``\\r\\n``) is removed and a
    UTF-8 BOM at the start of the file dropped. ``text`` is None for a line that is not valid
    UTF-8 (``raw`` still has its bytes). FileNotFoundError naming the file when it is missing.
    """
    gfile = _gfile()
    if not gfile.exists(path):
        raise FileNotFoundError(f"file not found: {path}")
    with gfile.GFile(path, "rb") as f:
        number = 0
        while True:
            raw = f.readline()
            if not raw:
                return
            number += 1
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            raw = raw[:-1] if raw.endswith(b"\n") else raw
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            yield number, text, raw


def read_labels(path: str) -> list[str]:
    """The labels of ``dict.txt`` in file order (blank lines ignored, a UTF-8 BOM dropped).

    Raises ValueError naming the file when it holds fewer than two labels, a duplicate or a
    line that is not UTF-8 (the labels file is a setting: nothing starts without it).
    """
    if not _gfile().exists(path):
        raise FileNotFoundError(f"labels file not found: {path}")
    labels = []
    for number, text, raw in iter_lines(path):
        if text is None:
            raise ValueError(f"labels file {path}, line {number} is not UTF-8: {raw[:80]!r}")
        if text.strip():
            labels.append(text.strip())
    if len(labels) < 2:
        raise ValueError(
            f"labels file {path} has {len(labels)} label(s); a classifier needs at least 2"
        )
    duplicates = sorted({lab for lab in labels if labels.count(lab) > 1})
    if duplicates:
        raise ValueError(f"labels file {path} lists some labels more than once: {duplicates}")
    return labels


def csv_fields(text: str) -> list[str]:
    """The stripped fields of one CSV line (``csv`` module: quoted fields may hold commas);
    ``[]`` when the line cannot be parsed."""
    try:
        return [f.strip() for f in next(csv.reader([text.strip()]), [])]
    except csv.Error:
        return []


def parse_csv_line(
    line_number: int, text: str | None, base_dir: str = "", raw: bytes = b""
) -> CsvRow:
    """Parse one ``path,label`` line; a bad line gives a row whose ``problem`` says why.

    ``text`` None means the line's bytes (``raw``) are not UTF-8 (see :func:`iter_lines`)."""
    if text is None:
        shown = raw.decode("utf-8", "backslashreplace")[:300]
        return CsvRow(line_number, "", "", NOT_UTF8, shown, f"not valid UTF-8: {raw[:200]!r}")
    if not text.strip():
        return CsvRow(line_number, "", "", EMPTY_LINE, text)
    fields = csv_fields(text)
    if len(fields) != 2 or not fields[0] or not fields[1]:
        return CsvRow(line_number, "", "", MALFORMED_LINE, text)
    return CsvRow(line_number, resolve_path(fields[0], base_dir), fields[1], None, text)


def mark_duplicates(
    rows: Iterable[CsvRow], labels: Sequence[str] | None = None
) -> Iterator[CsvRow]:
    """``rows`` with every usable row whose path an earlier row already has turned into a
    ``DUPLICATE`` problem (the first one is kept). With ``labels``, only rows with one of
    them count (a row with an unknown label is that problem, and never hides a later good
    row). Remembers 16 bytes of hash a path."""
    first: dict[bytes, tuple[int, str]] = {}
    known = None if labels is None else set(labels)
    for row in rows:
        if row.problem is None and (known is None or row.label in known):
            key = hashlib.blake2b(row.path.encode("utf-8", "surrogatepass"), digest_size=16)
            line, label = first.setdefault(key.digest(), (row.line, row.label))
            if line != row.line:
                other = "" if label == row.label else f", labelled {label!r} there"
                row = row._replace(problem=DUPLICATE, detail=f"same path as line {line}{other}")
        yield row


def iter_all_data(path: str, labels: Sequence[str] | None = None) -> Iterator[CsvRow]:
    """Every line of ``all_data.csv`` as a :class:`CsvRow` (bad lines included, with a problem:
    empty, malformed, not UTF-8, duplicate; ``labels``: see :func:`mark_duplicates`)."""
    if not _gfile().exists(path):
        raise FileNotFoundError(f"data CSV not found: {path}")
    base_dir = csv_folder(path)
    rows = (parse_csv_line(n, text, base_dir, raw) for n, text, raw in iter_lines(path))
    yield from mark_duplicates(rows, labels)


def read_all_data(path: str, report=print, labels: Sequence[str] | None = None) -> list[CsvRow]:
    """All rows of ``all_data.csv``. Blank, malformed, non-UTF-8 and duplicate lines are kept
    (with ``problem`` set) and reported through ``report`` (pass ``None`` for silence); they
    never raise. ``labels``: see :func:`mark_duplicates`."""
    rows = list(iter_all_data(path, labels))
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
