"""The course's performance comparisons, side by side in one process run.

    python -m benchmarks.run            # full: learner-sized data, several repeats (~15-25 min)
    python -m benchmarks.run --quick    # CI: tiny settings, checks every benchmark yields a number
    python -m benchmarks.run --only P3,P7
    python -m benchmarks.run --only P5,P9 --img-size 64   # a smaller model than the learner's

Writes benchmarks/RESULTS.md (or --out): machine, date, and one line per comparison with the
ratio, the two absolute figures it comes from (medians of repeats), and the goal beside it.
This machine is noisy: ratios measured in the same run are what to compare, never one time.

Modules: ``common`` (settings, the result row, number formats, the shared artifacts),
``serving_bench`` (P5 and P9: the model server), ``explain_bench`` (P10 and P11: what
explanations cost), this one (P1-P4, P6-P8, the report, the CLI).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from .common import FULL, QUICK, Artifacts, Result, Settings, plain_number, rate_line
from .explain_bench import p10_faithfulness, p11_explanation_notebooks
from .serving_bench import p5_rest, p9_server_memory

__all__ = ["FULL", "QUICK", "Artifacts", "Result", "Settings", "plain_number", "rate_line", "main"]

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------
# P1..P4, P6..P8 (P5 and P9, the model server: benchmarks/serving_bench.py)
# --------------------------------------------------------------------------------------


def p1_record_sizes(a: Artifacts) -> Result:
    from pmlv_utils import tfrecords

    r = tfrecords.size_report(str(a.all_data), str(a.tfrecord_dir))
    return Result(
        "P1",
        "TFRecord bytes / source JPEG bytes",
        r["tfrecord_over_jpeg"],
        "× JPEG",
        "≤ 1.1×",
        r["tfrecord_over_jpeg"] <= 1.1,
        [
            f"{r['images']} images: JPEG {r['jpeg_bytes']:,} B, "
            f"our TFRecords {r['tfrecord_bytes']:,} B",
            f"book's float32 schema: {r['float32_bytes']:,} B = {r['float32_over_jpeg']:.1f}× JPEG "
            f"(the book measured ≈17× on the real photos)",
        ],
    )


def p2_ingest(a: Artifacts) -> Result:
    from pmlv_utils import ingest, timing

    s = a.s
    pattern = f"{a.tfrecord_dir}/*-of-*.gz"
    n = sum(ingest.check_shards(ingest.list_shards(pattern)).values())
    run = lambda ds: ingest.read_loop(ds, 1)  # noqa: E731
    results = {
        name: timing.time_it(
            run,
            s.repeats,
            progress=False,
            setup=lambda name=name: ingest.make_variant(name, pattern, s.ingest_img_size),
        )
        for name in ("plain", "+ batch 32 + prefetch")
    }
    image_bytes, labels = ingest.load_image_bytes(pattern)
    ceiling = timing.time_it(
        lambda ds: ingest.drain(ds),
        s.repeats,
        progress=False,
        setup=lambda: ingest.make_bytes_dataset(image_bytes, labels, img_size=s.ingest_img_size),
    )
    plain, best = results["plain"]["wall_s"], results["+ batch 32 + prefetch"]["wall_s"]
    ratio = plain / best
    of_ceiling = ceiling["wall_s"] / best
    return Result(
        "P2",
        "tf.data optimised / plain (read loop, wall)",
        ratio,
        "× plain",
        "≥ 3× plain and ≥ 0.8× ceiling (book: 1.5× read)",
        ratio >= 3 and of_ceiling >= 0.8,
        [
            f"{n} images at {s.ingest_img_size}px: plain {plain:.2f} s, optimised {best:.2f} s, "
            f"decode+resize ceiling {ceiling['wall_s']:.2f} s",
            f"optimised = {of_ceiling:.2f}× the ceiling's rate",
        ],
    )


def p3_grayscale(a: Artifacts) -> Result:
    from pmlv_utils import grayscale

    paths = grayscale.pick_paths(str(a.all_data), a.s.grayscale_images)
    images = grayscale.load_images(paths, 338, 600)
    times = grayscale.time_variants(images, repeats=a.s.repeats, progress=False)
    loop = (
        times["iterate"]["wall_s"] if "iterate" in times else next(iter(times.values()))["wall_s"]
    )
    batched_key = next(k for k in times if "batch" in k)
    batched = times[batched_key]["wall_s"]
    ratio = loop / batched
    return Result(
        "P3",
        "batched layer / python loop (grayscale, wall)",
        ratio,
        "× loop",
        "≥ 20× (book: 19.3×)",
        ratio >= 20,
        [
            f"{len(images)} images 338×600: "
            + ", ".join(f"{k} {v['wall_s']:.3f} s" for k, v in times.items())
        ],
    )


def p4_beam_predict(a: Artifacts) -> Result:
    from pmlv_utils import predict

    files = a.test_files(a.s.predict_images)
    naive_files = files[: max(4, len(files) // 8)]  # the naive job is slow: fewer images
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {
            mode: predict.run_batch_prediction(names, str(a.export_dir), f"{tmp}/{mode}", mode=mode)
            for mode, names in (("shared", files), ("naive", naive_files))
        }
        # count the rows written now: the outputs go with the temporary folder
        written = {mode: sum(job.output_counts().values()) for mode, job in jobs.items()}
    fast, fast_line = rate_line(
        "shared+batched", written["shared"], jobs["shared"].seconds, " (job start-up included)"
    )
    slow, slow_line = rate_line(
        "naive (model loaded per image)", written["naive"], jobs["naive"].seconds
    )
    ratio = fast / slow
    return Result(
        "P4",
        "Beam Shared+BatchElements / load-per-element (images/s)",
        ratio,
        "× naive",
        "≥ 20×",
        ratio >= 20,
        [fast_line, slow_line],
    )


def p6_tflite(a: Artifacts) -> Result:
    from pmlv_utils import tflite

    images, labels = tflite.load_split_images(a.tfrecord_dir, "test", a.s.img_size)
    calib, _ = tflite.load_split_images(a.tfrecord_dir, "train", a.s.img_size, limit=100)
    with tempfile.TemporaryDirectory() as tmp:
        paths = tflite.convert(a.export_dir, tmp, representative_images=calib)
        table = tflite.compare_with_savedmodel(a.export_dir, paths, images, labels)
    int8 = table.loc["tflite_int8"]
    size_ratio, drop = float(int8["size_vs_float32_tflite"]), -float(int8["accuracy_change_points"])
    details = [f"{len(images)} test images, calibrated on {len(calib)} training images"]
    details += ["  " + line for line in table.round(4).to_string().splitlines()]
    return Result(
        "P6",
        "TFLite int8 size / float32 TFLite size",
        size_ratio,
        "× float32",
        "≤ 0.3× size and accuracy drop ≤ 0.5 point",
        size_ratio <= 0.3 and drop <= 0.5,
        details + [f"int8 accuracy drop vs the SavedModel: {drop:.2f} points"],
    )


def p7_ig_gap(a: Artifacts) -> Result:
    from pmlv_utils import explain

    ex = explain.load_examples(
        a.data_dir, a.s.img_size, split="test", per_class=1, with_masks=False
    )
    model = explain.ExplainableModel.from_saved_model(a.export_dir)
    images = ex.images[: a.s.ig_images]
    targets = model.predict(images).argmax(axis=1)
    table = explain.gap_vs_steps(images, targets, model, steps_list=a.s.ig_steps)
    chosen = explain.steps_for_gap(table, 0.05)
    best = min((v for v in chosen.values() if v), default=float("nan"))
    summary = table.groupby(["integration", "steps"])["gap"].max().unstack(0)
    details = [f"{len(images)} images; max gap by steps and rule:"]
    details += ["  " + line for line in summary.round(4).to_string().splitlines()]
    details.append(f"smallest steps with gap ≤ 5% (every image): {chosen}")
    return Result(
        "P7",
        "IG steps needed for completeness gap ≤ 5%",
        best,
        "steps",
        "20–300 (IG paper)",
        bool(best == best and best <= 300),
        details,
    )


def p8_suite_time(a: Artifacts) -> Result:
    tsv = REPO / "build" / "notebook_timings.tsv"
    if not tsv.exists():
        return Result(
            "P8",
            "test suite: notebook time",
            float("nan"),
            "s",
            "whole suite ≤ 30 min",
            None,
            ["no build/notebook_timings.tsv: run `make test` first"],
        )
    rows = [line.split("\t") for line in tsv.read_text().splitlines()[1:] if line.strip()]
    total = sum(float(r[2]) for r in rows)
    details = [
        f"{r[0]}: {float(r[2]):.0f} s ({r[1]})" for r in sorted(rows, key=lambda r: -float(r[2]))
    ]
    return Result(
        "P8",
        "notebook harness, total",
        total,
        "s",
        "whole suite ≤ 1800 s",
        total <= 1800,
        [f"{len(rows)} notebooks (from the last `make test`)"] + details,
    )


BENCHMARKS: dict[str, Callable[[Artifacts], Result]] = {
    "P1": p1_record_sizes,
    "P2": p2_ingest,
    "P3": p3_grayscale,
    "P4": p4_beam_predict,
    "P5": p5_rest,
    "P6": p6_tflite,
    "P7": p7_ig_gap,
    "P8": p8_suite_time,
    "P9": p9_server_memory,
    "P10": p10_faithfulness,
    "P11": p11_explanation_notebooks,
}


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def machine_info() -> list[str]:
    import tensorflow as tf

    cpu = "unknown"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, "
        f"{platform.system()} {platform.machine()}",
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}",
        f"load average at start: {os.getloadavg()[0]:.2f}",
    ]


def write_report(
    results: list[Result],
    failures: dict[str, str],
    s: Settings,
    quick: bool,
    out: Path,
    seconds: float,
) -> None:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m benchmarks.run`). "
        "Ratios are measured in one process run; "
        "absolute times are medians of repeats on a shared, noisy machine. "
        "Goals come from the chapter issues; "
        "book figures from the book repository's saved outputs (T4 GPUs, real photos).",
        "",
    ]
    lines += [f"- {x}" for x in machine_info()]
    lines += [
        f"- mode: {'quick (CI check: numbers only, tiny settings)' if quick else 'full'}; "
        f"settings: {s}",
        f"- total time: {seconds:.0f} s",
        "",
        "| | comparison | ours | goal | goal |",
        "|---|---|---|---|---|",
    ]
    lines += [r.row() for r in results]
    lines += [f"| {k} | failed | — | — | error |" for k in failures]
    for r in results:
        lines += ["", f"## {r.key}: {r.title}", ""] + [
            f"- {d}" if not d.startswith("  ") else f"    {d}" for d in r.details
        ]
    for k, err in failures.items():
        lines += ["", f"## {k}: FAILED", "", "```", err.strip()[-2000:], "```"]
    for kept in ("INSTALL_TIMES.md", "NOTEBOOK_TIMES.md"):  # measured elsewhere, kept
        path = Path(__file__).with_name(kept)
        if path.is_file():
            lines += ["", path.read_text().strip()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run")
    ap.add_argument(
        "--quick", action="store_true", help="tiny settings: check every benchmark yields a number"
    )
    ap.add_argument("--only", default="", help="comma-separated keys, e.g. P1,P3")
    ap.add_argument(
        "--out", default=None, help="report path (default benchmarks/RESULTS.md; quick: build/)"
    )
    ap.add_argument(
        "--img-size", type=int, default=None, help="the model's image size (default: the mode's)"
    )
    ap.add_argument("--epochs", type=int, default=None, help="the model's epochs (ditto)")
    args = ap.parse_args(argv)
    s = QUICK if args.quick else FULL
    model = {"img_size": args.img_size, "epochs": args.epochs}
    s = dataclasses.replace(s, **{k: v for k, v in model.items() if v is not None})
    keys = [k.strip().upper() for k in args.only.split(",") if k.strip()] or list(BENCHMARKS)
    out = (
        Path(args.out)
        if args.out
        else (
            REPO / "build" / "BENCH_QUICK.md" if args.quick else REPO / "benchmarks" / "RESULTS.md"
        )
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    artifacts = Artifacts(s)
    results, failures = [], {}
    for key in tqdm(keys, desc="benchmarks"):
        t = time.perf_counter()
        try:
            r = BENCHMARKS[key](artifacts)
            results.append(r)
            print(
                f"{key}: {plain_number(r.figure)} {r.unit} (goal {r.goal}) "
                f"in {time.perf_counter() - t:.0f} s",
                flush=True,
            )
        except Exception:  # noqa: BLE001 - one failing benchmark must not hide the others
            failures[key] = traceback.format_exc()
            print(f"{key}: FAILED\n{failures[key]}", file=sys.stderr, flush=True)
    write_report(results, failures, s, args.quick, out, time.perf_counter() - start)
    print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
