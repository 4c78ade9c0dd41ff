"""The notebook harness: papermill executes every course notebook with its quick parameters.

Each notebook's quick parameters and timeout live in its metadata (``metadata.pmlv``). Executed
copies go to build/notebooks/ (not committed). After a run, the text outputs of cells marked
``# NBVAL_CHECK_OUTPUT`` must equal the committed ones (nbval's --nbval-lax semantics, without
executing the notebook a second time). A notebook may declare ``"skip": "<reason>"`` in its
metadata: it is then reported as skipped with that reason, never silently passed.
"""

from __future__ import annotations

import pytest

from notebook_tools import (
    DEFAULT_TIMEOUT,
    REPO,
    checked_outputs,
    course_notebooks,
    harness_settings,
    read,
)

OUT_DIR = REPO / "build" / "notebooks"


def _cases():
    cases = []
    for path in course_notebooks():
        settings = harness_settings(read(path))
        nb_id = str(path.relative_to(REPO))
        cases.append(pytest.param(path, nb_id, settings.get("timeout", DEFAULT_TIMEOUT), id=nb_id))
    return cases


@pytest.mark.notebook
@pytest.mark.parametrize("path,nb_id,timeout_s", _cases())
def test_notebook_runs(path, nb_id, timeout_s):
    import papermill

    committed = read(path)
    settings = harness_settings(committed)
    if settings.get("skip"):
        pytest.skip(f"{nb_id}: {settings['skip']}")
    out = OUT_DIR / nb_id
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(path),
        str(out),
        parameters=settings.get("test_parameters", {}),
        cwd=str(path.parent),
        kernel_name="python3",
        language="python",
        progress_bar=False,
    )

    expected = checked_outputs(committed)
    actual = checked_outputs(read(out))
    for source, text in expected.items():
        assert text, (
            f"{nb_id}: a '# NBVAL_CHECK_OUTPUT' cell has no committed output; commit it executed"
        )
        assert actual.get(source) == text, (
            f"{nb_id}: output changed for the checked cell\n"
            f"--- cell\n{source}\n--- committed\n{text}\n"
            f"--- now\n{actual.get(source)}"
        )
