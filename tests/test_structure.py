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
def test_no_installs(path):
    nb = read(path)
    for c in nb.cells:
        if c.cell_type == "code":
            assert not re.search(r"^\s*[!%]\s*pip\s+install", c.source, re.M), (
                "pip install in a notebook"
            )


# What a committed output must not show (issue 16, "clean outputs"): TensorFlow's C++ start-up
# lines, progress-bar debris and paths of the machine that ran the notebook.
NOISE = {
    "TensorFlow C++ log line": re.compile(r"^[EWIF]\d{4} [\d:. ]+\d+ [\w/.-]+\.cc:\d+\]", re.M),
    "cuInit error": re.compile(r"cuInit"),
    "absl start-up line": re.compile(r"All log messages before absl::InitializeLog"),
    "oneDNN notice": re.compile(r"oneDNN custom operations"),
    "CPU-instructions notice": re.compile(r"This TensorFlow binary is optimized"),
    "carriage return (progress bar)": re.compile(r"\r(?!\n)"),
    "tqdm bar": re.compile(r"\d+%\|[^|\n]*\|"),
    "Keras progress bar": re.compile(r"━"),
    "Beam interactive notice": re.compile(r"Interactive Beam PCollection visualization"),
    # a model the workspace trains for a notebook that only needs it: its summary, not its epochs
    "training log of a workspace build": re.compile(
        r"\[workspace\] building trained[^\0]*?^Epoch 1/", re.M
    ),
    "machine path": MACHINE_PATH,
}
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "application/json")


def _output_texts(output) -> list[str]:
    """The text a reader sees in one output (stream, rich text, traceback); never image data."""
    kind = output.get("output_type")
    if kind == "stream":
        return [output.get("text", "")]
    if kind == "error":
        return list(output.get("traceback", [])) + [output.get("evalue", "")]
    data = output.get("data", {})
    return [v if isinstance(v, str) else json.dumps(v) for m, v in data.items() if m in TEXT_MIMES]


def output_violations(nb) -> list[str]:
    """One line per (cell, kind of noise) found in the committed outputs, with an excerpt."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        text = "\n".join(t for out in cell.get("outputs", []) for t in _output_texts(out))
        for what, pattern in NOISE.items():
            match = pattern.search(text)
            if match:
                start = text.rfind("\n", 0, match.start()) + 1
                excerpt = text[start : start + 70].replace("\r", "\\r").split("\n")[0]
                found.append(f"cell {index}: {what}: {excerpt!r}")
    return found


# Committed with noisy outputs by other work in progress; remove a line once its notebook is
# re-executed clean, its setup importing TensorFlow inside pmlv_utils.quiet.native_stderr_silenced()
# (strict: a clean notebook still listed here fails, so the list cannot rot).
KNOWN_NOISY: dict[str, str] = {}


def _clean_cases():
    cases = []
    for path, nb_id in zip(NOTEBOOKS, IDS):
        marks = ()
        if nb_id in KNOWN_NOISY:
            marks = pytest.mark.xfail(reason=KNOWN_NOISY[nb_id], strict=True)
        cases.append(pytest.param(path, id=nb_id, marks=marks))
    return cases


@pytest.mark.parametrize("path", _clean_cases())
def test_clean_outputs(path):
    found = output_violations(read(path))
    if found:
        pytest.fail(f"{path.relative_to(REPO)}: noisy committed outputs\n" + "\n".join(found))


def test_the_clean_output_check_catches_noise():
    """The check itself: each kind of noise in a made-up output is reported."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    lines = [
        "E0000 00:00:1795444380.138634   22767 cuda_platform.cc:52] failed call to cuInit: X",
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795444374.506556   22767 port.cc:153] oneDNN custom operations are on.",
        "This TensorFlow binary is optimized to use available CPU instructions",
        "\rdrawing flowers:  15%|█▍        | 147/1000 [00:02<00:11, 73.02img/s]",
        "25/25 ━━━━━━━━━━━━━━━━━━━━ 1s 20ms/step",
        "WARNING:apache_beam...: Dependencies required for Interactive Beam PCollection "
        "visualization are not available",
        "[workspace] building trained: $PMLV_WORKSPACE/trained-0123456789",
        "Epoch 1/25",
        "saved to /tmp/pmlv_x/model",
    ]
    nb.cells = [nbformat.v4.new_code_cell("x")]
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stderr", text="\n".join(lines))]
    kinds = {line.split(": ")[1] for line in output_violations(nb)}
    assert kinds == set(NOISE), set(NOISE) - kinds
    nb.cells[0].outputs = [
        nbformat.v4.new_output(
            "stream", name="stdout", text="epoch 1\r\nok $PMLV_WORKSPACE/x\nEpoch 1/6\n"
        )
    ]
    assert output_violations(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_quick_parameters_exist(path):
    """The harness's quick values must name real parameters (a typo would silently do nothing)."""
    nb = read(path)
    settings = harness_settings(nb)
    params_cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    defined = set(re.findall(r"^([A-Za-z_]\w*)\s*=", params_cell.source, re.M))
    unknown = set(settings.get("test_parameters", {})) - defined
    assert not unknown, f"test_parameters not defined in the parameters cell: {sorted(unknown)}"


# The learner defaults live in pmlv_utils.workspace; a notebook that trains or reuses the
# course's model must ask for that model (chapters 7c, 9 and 10 share one).
SHARED_DEFAULTS = {
    "IMAGES_PER_CLASS": "DEFAULT_IMAGES_PER_CLASS",
    "SEED": "DEFAULT_SEED",
    "IMG_SIZE": "DEFAULT_IMG_SIZE",
    "EPOCHS": "DEFAULT_EPOCHS",
    "DIFFICULTY": "DEFAULT_DIFFICULTY",
}
OWN_SETTINGS = {  # notebook -> (parameters it sets on purpose, why)
    "07_training/07a_ingest.ipynb": (
        {"IMAGES_PER_CLASS", "IMG_SIZE", "EPOCHS"},
        "times input pipelines at the book's 224 px on a small set",
    ),
    "07_training/07d_distribute.ipynb": (
        {"IMG_SIZE", "EPOCHS"},
        "compares strategies on a tiny model: the numerics, not the accuracy",
    ),
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_one_set_of_learner_defaults(path):
    """A parameter named like a workspace default has that default's value."""
    from pmlv_utils import workspace

    nb_id = str(path.relative_to(REPO))
    own = OWN_SETTINGS.get(nb_id, (set(), ""))[0]
    params_cell = next(c for c in read(path).cells if "parameters" in c.metadata.get("tags", []))
    values = dict(re.findall(r"^([A-Z_]+)\s*=\s*([^#\n]+?)\s*(?:#.*)?$", params_cell.source, re.M))
    wrong = {
        name: (values[name], getattr(workspace, default))
        for name, default in SHARED_DEFAULTS.items()
        if name in values
        and name not in own
        and values[name] != repr(getattr(workspace, default)).replace("'", '"')
    }
    assert not wrong, f"{nb_id}: parameter (notebook, workspace default): {wrong}"
