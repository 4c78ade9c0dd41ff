"""A small bad-input set, to see the dead-letter output at work (the chapter-5 notebook)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from PIL import Image

from .images import (
    CORRUPT_IMAGE,
    EMPTY_FILE,
    EMPTY_LINE,
    MALFORMED_LINE,
    MISSING_FILE,
    NOT_AN_IMAGE,
    UNKNOWN_LABEL,
    read_bytes,
)


def write_bad_input_demo(
    folder: str, good_rows: Sequence[tuple[str, str]], labels: Sequence[str]
) -> tuple[str, str, dict[int, str]]:
    """Write a CSV mixing ``good_rows`` ((path, label), at least one) with one line of every
    problem kind, plus the files those lines point to, under the local ``folder``.

    The first good image is re-saved as grayscale JPEG, CMYK JPEG and PNG-named-.jpg (these
    must be converted, not rejected) and cut in half (a truncated JPEG). Returns
    ``(csv_path, labels_path, expected)``; ``expected`` maps each CSV line number to the
    reject reason, or to ``"ok"`` / ``"ok, converted from <format/mode>"``.
    """
    if not good_rows:
        raise ValueError("write_bad_input_demo needs at least one good (path, label) row")
    root = Path(folder)
    first_path, first_label = good_rows[0]
    lines: list[str] = []
    expected: dict[int, str] = {}

    def add(text: str, outcome: str) -> None:
        lines.append(text)
        expected[len(lines)] = outcome

    for path, label in good_rows:
        add(f"{path},{label}", "ok")
    for name, outcome in _write_bad_files(root / first_label, read_bytes(first_path)):
        add(f"{root / first_label / name},{first_label}", outcome)
    add("", EMPTY_LINE)
    add(f"{first_path},orchids", UNKNOWN_LABEL)
    name = first_path.rsplit("/", 1)[-1]
    add(f"{first_label}/{name}", MALFORMED_LINE)  # no label
    add(f"{first_label}/{name},{first_label},extra", MALFORMED_LINE)  # one field too many
    csv_path, labels_path = root / "all_data.csv", root / "dict.txt"
    csv_path.write_text("\n".join(lines) + "\n")
    labels_path.write_text("".join(f"{label}\n" for label in labels))
    return str(csv_path), str(labels_path), expected


def _write_bad_files(base: Path, source: bytes) -> list[tuple[str, str]]:
    """Variants of the image ``source`` under ``base``: (file name, expected outcome)."""
    picture = Image.open(io.BytesIO(source)).convert("RGB")
    base.mkdir(parents=True, exist_ok=True)
    picture.convert("L").save(base / "grayscale.jpg", "JPEG", quality=90)
    picture.convert("CMYK").save(base / "cmyk.jpg", "JPEG", quality=90)
    picture.save(base / "png_named.jpg", "PNG")
    (base / "truncated.jpg").write_bytes(source[: len(source) // 2])
    (base / "readme.jpg").write_text("a text file with an image's name\n")
    (base / "zero_bytes.jpg").write_bytes(b"")
    return [
        ("grayscale.jpg", "ok, converted from JPEG/L"),
        ("cmyk.jpg", "ok, converted from JPEG/CMYK"),
        ("png_named.jpg", "ok, converted from PNG/RGB"),
        ("truncated.jpg", CORRUPT_IMAGE),
        ("readme.jpg", NOT_AN_IMAGE),
        ("zero_bytes.jpg", EMPTY_FILE),
        ("deleted.jpg", MISSING_FILE),
    ]
