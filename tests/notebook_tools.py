"""Shared by the notebook harness and the structure check: finding and reading course notebooks."""

from __future__ import annotations

from pathlib import Path

import nbformat

from pmlv_utils.workspace import MACHINE_PATH  # noqa: F401 (used by the structure check)

REPO = Path(__file__).resolve().parents[1]
CHAPTER_DIRS = ("05_create_dataset", "07_training", "09_deploying", "10_mlops")
DEFAULT_TIMEOUT = 600
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def course_notebooks() -> list[Path]:
    """Every notebook of the course, in chapter order (new ones are picked up automatically)."""
    found = []
    for d in CHAPTER_DIRS:
        found += [
            p for p in sorted((REPO / d).rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts
        ]
    return found


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def harness_settings(nb: nbformat.NotebookNode) -> dict:
    """metadata.pmlv: {"test_parameters": {...}, "timeout": seconds, "skip": "reason"}."""
    return dict(nb.metadata.get("pmlv", {}))


def checked_outputs(nb: nbformat.NotebookNode) -> dict[str, str]:
    """Text outputs of the cells marked NBVAL_CHECK_OUTPUT, keyed by the cell's source."""
    result = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.lstrip().startswith(CHECK_MARK):
            result[cell.source.strip()] = output_text(cell)
    return result


def output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    text = "".join(p if isinstance(p, str) else "".join(p) for p in parts)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())
