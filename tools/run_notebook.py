"""Execute a course notebook in place at its own default parameters (for committing outputs).

    .venv/bin/python tools/run_notebook.py 07_training/07c_export.ipynb [--quick]

--quick passes the notebook's metadata.pmlv.test_parameters (as the test harness does) and
writes to build/ instead of in place. Fails if an output shows an absolute path of this machine.
A run at the defaults records its wall time in benchmarks/NOTEBOOK_TIMES.md (kept in RESULTS.md
by `make bench`).
"""

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import papermill

from pmlv_utils.workspace import MACHINE_PATH, NOTEBOOK_PATHS_ENV

REPO = Path(__file__).resolve().parents[1]
TIMES = REPO / "benchmarks" / "NOTEBOOK_TIMES.md"
TIMES_HEADER = [
    "## Notebook wall times at learner defaults",
    "",
    "Written by `tools/run_notebook.py` when it executes a notebook at its defaults (the committed",
    "outputs), one workspace for all, in chapter order: later notebooks reuse earlier artifacts.",
    "Budget: each <= 5 min on 2 cores (10a and 10c <= 8 min).",
    "",
    "| notebook | wall s | load avg (1 min) at start | executed (UTC) |",
    "|---|---:|---:|---|",
]


def record_time(notebook: str, seconds: float, load: float) -> None:
    """Replace ``notebook``'s row of :data:`TIMES` (rows kept in chapter order)."""
    rows = {}
    if TIMES.is_file():
        for line in TIMES.read_text().splitlines():
            if line.startswith("| ") and not line.startswith(("| notebook", "|---")):
                rows[line.split("|")[1].strip()] = line
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    rows[notebook] = f"| {notebook} | {seconds:.0f} | {load:.1f} | {when} |"
    TIMES.write_text("\n".join(TIMES_HEADER + [rows[k] for k in sorted(rows)]) + "\n")


def print_slowest_cells(nb, n: int = 8) -> None:
    """Print the ``n`` code cells that took longest (papermill's per-cell durations)."""
    timed = [
        (c.metadata.get("papermill", {}).get("duration") or 0.0, i, c.source.split("\n")[0])
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
    ]
    for seconds, i, first_line in sorted(timed, reverse=True)[:n]:
        print(f"  cell {i:3d} {seconds:7.1f} s  {first_line[:70]}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("notebook")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--timeout", type=int, default=1800)
    args = ap.parse_args()
    nb_path = Path(args.notebook).resolve()
    nb = nbformat.read(nb_path, as_version=4)
    params = nb.metadata.get("pmlv", {}).get("test_parameters", {}) if args.quick else {}
    out = (REPO / "build" / "quick" / nb_path.name) if args.quick else nb_path
    out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PMLV_WORKSPACE", str(REPO / "workspace"))
    os.environ[NOTEBOOK_PATHS_ENV] = "1"  # $PMLV_WORKSPACE/… paths: no machine path committed
    load, start = os.getloadavg()[0], time.perf_counter()
    papermill.execute_notebook(
        str(nb_path),
        str(out),
        parameters=params,
        cwd=str(nb_path.parent),
        kernel_name="python3",
        language="python",
        execution_timeout=args.timeout,
    )
    seconds = time.perf_counter() - start
    done = nbformat.read(out, as_version=4)
    print_slowest_cells(done)
    if not args.quick:  # drop papermill's bookkeeping so the committed file stays clean
        done.cells = [
            c for c in done.cells if "injected-parameters" not in c.metadata.get("tags", [])
        ]
        for c in done.cells:
            c.metadata.pop("papermill", None)
            c.metadata.pop("execution", None)
        done.metadata.pop("papermill", None)
        nbformat.write(done, out)
    text = json.dumps([c.get("outputs", []) for c in done.cells if c.cell_type == "code"])
    bad = sorted(set(MACHINE_PATH.findall(text)))
    if bad:
        print(
            f"{out}: outputs show machine paths {bad}: use workspace.display_path()",
            file=sys.stderr,
        )
        return 1
    if not args.quick:
        record_time(str(nb_path.relative_to(REPO)), seconds, load)
    print(f"executed -> {out} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
