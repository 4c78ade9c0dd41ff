"""Every notebook follows the course skeleton (docs/ARCHITECTURE.md, "Notebooks"): checked without
executing anything."""

from __future__ import annotations

import json
import re

import pytest

from notebook_tools import MACHINE_PATH, REPO, course_notebooks, harness_settings, read

NOTEBOOKS = course_notebooks()
IDS = [str(p.relative_to(REPO)) for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_skeleton(path):
    nb = read(path)
    cells = nb.cells
    markdown = [c.source for c in cells if c.cell_type == "markdown"]
    assert (
        cells and cells[0].cell_type == "markdown" and cells[0].source.lstrip().startswith("# ")
    ), "the first cell must be a markdown H1 title"
    assert any("what you will learn" in m.lower() for m in markdown), (
        "missing 'What you will learn'"
    )
    for heading in ("## Setup", "## Summary", "## Clean up"):
        assert any(re.search(rf"^{heading}\b", m, re.M | re.I) for m in markdown), (
            f"missing '{heading}'"
        )
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", (
        "exactly one code cell tagged 'parameters'"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_installs_and_no_machine_paths(path):
    nb = read(path)
    for c in nb.cells:
        if c.cell_type == "code":
            assert not re.search(r"^\s*[!%]\s*pip\s+install", c.source, re.M), (
                "pip install in a notebook"
            )
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"])
    assert not MACHINE_PATH.search(outputs), (
        "committed outputs show an absolute path of the build machine"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_quick_parameters_exist(path):
    """The harness's quick values must name real parameters (a typo would silently do nothing)."""
    nb = read(path)
    settings = harness_settings(nb)
    params_cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    defined = set(re.findall(r"^([A-Za-z_]\w*)\s*=", params_cell.source, re.M))
    unknown = set(settings.get("test_parameters", {})) - defined
    assert not unknown, f"test_parameters not defined in the parameters cell: {sorted(unknown)}"
