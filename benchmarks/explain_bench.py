"""P10 and P11: what explanations cost (issue 13's budgets).

P10 times deletion and insertion curves (``explain.faithfulness``) for the six methods of
notebook 10c on five test flowers; the maps are computed first and not timed. P11 reads the
explanation notebooks' wall times at learner defaults from NOTEBOOK_TIMES.md (written by
``tools/run_notebook.py``), since re-executing them here would double ``make bench``.
"""

from __future__ import annotations

import time
from pathlib import Path

from .common import Artifacts, Result, plain_number

EXPLANATION_NOTEBOOKS = (
    "10_mlops/10b_explain.ipynb",
    "10_mlops/10c_compare_explainers.ipynb",
    "10_mlops/10d_explain_mlflow.ipynb",
    "10_mlops/10e_shortcut_detection.ipynb",
)
NOTEBOOK_BUDGET_S = 300
FAITHFULNESS_BUDGET_S = 120
# cheap settings for the maps themselves: P10 times the curves, not the explainers
_MAP_OPTIONS = {
    "ig": {"steps": 16},
    "xrai": {"steps": 16},
    "gradcam": {},
    "lime": {"num_samples": 200, "n_segments": 40},
    "kernelshap": {"num_samples": 200, "n_segments": 40},
    "anchors": {"n_segments": 40, "max_anchor_size": 4},
}


def p10_faithfulness(a: Artifacts) -> Result:
    from pmlv_utils import explain

    model = explain.ExplainableModel.from_job_dir(a.export_dir.parent).warm_up()
    flowers = explain.load_examples(
        a.data_dir, a.s.img_size, split="test", per_class=1, with_masks=False
    )
    images = flowers.images[: a.s.ig_images]
    targets = model.predict(images).argmax(axis=1)
    maps = {
        m: explain.explain(images, targets, m, model, **_MAP_OPTIONS[m]).attributions
        for m in explain.METHODS
    }
    start = time.perf_counter()
    table, _ = explain.faithfulness.faithfulness_table(images, targets, maps, model)
    seconds = time.perf_counter() - start
    means = table.groupby("method", sort=False)["insertion - deletion"].mean()
    curves = len(maps) + 1  # the six methods and the random ranking
    return Result(
        "P10",
        f"deletion + insertion curves, {len(maps)} methods × {len(images)} images",
        seconds,
        "s",
        f"≤ {FAITHFULNESS_BUDGET_S} s",
        seconds <= FAITHFULNESS_BUDGET_S,
        [
            f"{curves} rankings (with a random one) × {len(images)} images × 2 curves × "
            f"{explain.faithfulness.DEFAULT_STEPS + 1} predictions, at {a.s.img_size} px",
            "insertion − deletion AUC, mean over images (higher = more faithful): "
            + ", ".join(f"{m} {v:.3f}" for m, v in means.items()),
        ],
    )


def notebook_seconds(times_md: Path) -> dict[str, float]:
    """``{notebook: wall seconds}`` from NOTEBOOK_TIMES.md's table."""
    rows = {}
    if times_md.is_file():
        for line in times_md.read_text().splitlines():
            cells = [c.strip() for c in line.split("|")[1:-1]]
            if len(cells) >= 2 and cells[0].endswith(".ipynb"):
                rows[cells[0]] = float(cells[1])
    return rows


def p11_explanation_notebooks(a: Artifacts) -> Result:
    times = notebook_seconds(Path(__file__).with_name("NOTEBOOK_TIMES.md"))
    known = {nb: times[nb] for nb in EXPLANATION_NOTEBOOKS if nb in times}
    slowest = max(known.values(), default=float("nan"))
    details = [f"{nb}: {plain_number(s)} s" for nb, s in known.items()]
    details += [
        f"{nb}: not executed at defaults yet" for nb in EXPLANATION_NOTEBOOKS if nb not in known
    ]
    return Result(
        "P11",
        "slowest explanation notebook at learner defaults (wall)",
        slowest,
        "s",
        f"each ≤ {NOTEBOOK_BUDGET_S} s",
        bool(known) and len(known) == len(EXPLANATION_NOTEBOOKS) and slowest <= NOTEBOOK_BUDGET_S,
        ["from NOTEBOOK_TIMES.md (tools/run_notebook.py at learner defaults)"] + details,
    )
