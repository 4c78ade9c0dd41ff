"""The course's performance comparisons, side by side in one process run.

    python -m benchmarks.run            # full: learner-sized data, several repeats (~15-25 min)
    python -m benchmarks.run --quick    # CI: tiny settings, checks every benchmark yields a number
    python -m benchmarks.run --only P3,P7

Writes benchmarks/RESULTS.md (or --out): machine, date, and one line per comparison with the
ratio, the two absolute figures it comes from (medians of repeats), and the goal beside it.
This machine is noisy: ratios measured in the same run are what to compare, never one time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Settings:
    images_per_class: int
    seed: int
    img_size: int
    epochs: int
    repeats: int
    ingest_img_size: int
    grayscale_images: int
    predict_images: int
    load_requests: int
    ig_images: int
    ig_steps: tuple[int, ...]


# Each setting as (full, quick). The quick model settings are the notebook harness's, so a test
# run reuses its trained model.
_FULL_AND_QUICK = dict(
    images_per_class=(200, 60),
    seed=(42, 42),
    img_size=(64, 64),
    epochs=(15, 8),
    repeats=(3, 1),
    ingest_img_size=(224, 64),
    grayscale_images=(20, 3),
    predict_images=(200, 24),
    load_requests=(200, 24),
    ig_images=(5, 2),
    ig_steps=((8, 16, 32, 64, 128, 256), (8, 32)),
)
FULL = Settings(**{name: full for name, (full, _) in _FULL_AND_QUICK.items()})
QUICK = Settings(**{name: quick for name, (_, quick) in _FULL_AND_QUICK.items()})


@dataclass
class Result:
    key: str
    title: str
    figure: float  # the headline ratio (or number)
    unit: str  # how to read it, e.g. "x plain"
    goal: str  # the goal as text
    met: bool | None  # None: no goal to meet
    details: list[str] = field(default_factory=list)  # the absolute figures behind the ratio

    def row(self) -> str:
        verdict = {True: "met", False: "NOT met", None: "—"}[self.met]
        return (
            f"| {self.key} | {self.title} | {plain_number(self.figure)} {self.unit} "
            f"| {self.goal} | {verdict} |"
        )


def plain_number(x: float) -> str:
    """Three significant digits as a plain decimal, never in exponent form (1070 -> "1070")."""
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}" if x == 0 or abs(x) >= 1e-3 else f"{x:.6f}"


def rate_line(label: str, images: int, seconds: float, note: str = "") -> tuple[float, str]:
    """``(images/s, "<label>: N images in S s = R images/s (P s per image)<note>")``, three
    significant digits, so that a slow rate reads 0.0412 images/s, not 0.0. ValueError when
    nothing was measured (no image, or no time)."""
    if images <= 0 or not seconds > 0:
        raise ValueError(f"{label}: nothing measured ({images} images in {seconds} s)")
    rate = images / seconds
    return rate, (
        f"{label}: {images} images in {plain_number(seconds)} s = {plain_number(rate)} images/s "
        f"({plain_number(seconds / images)} s per image){note}"
    )


def median(values):
    return statistics.median(values)


# --------------------------------------------------------------------------------------
# Shared artifacts
# --------------------------------------------------------------------------------------


class Artifacts:
    def __init__(self, s: Settings):
        from pmlv_utils import workspace

        self.s, self.ws = s, workspace
        self.data_dir = workspace.ensure_dataset(s.images_per_class, s.seed)
        self.all_data, self.labels_file = workspace.dataset_files(self.data_dir)
        self.tfrecord_dir = workspace.ensure_tfrecords(s.images_per_class, s.seed)
        self._export = None

    @property
    def export_dir(self) -> Path:
        if self._export is None:
            self._export = self.ws.ensure_exported_model(
                images_per_class=self.s.images_per_class,
                seed=self.s.seed,
                img_size=self.s.img_size,
                epochs=self.s.epochs,
            )
        return self._export

    def test_files(self, n: int) -> list[str]:
        from pmlv_utils import predict

        files = [p for p, _ in predict.split_files(self.all_data, "test")]
        files += [p for p, _ in predict.split_files(self.all_data, "train")]
        return files[:n]


# --------------------------------------------------------------------------------------
# P1..P8
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


def p5_rest(a: Artifacts) -> Result:
    from pmlv_utils import predict, serving

    files = a.test_files(8)
    model = predict.LoadedModel(a.export_dir)
    memory = predict.time_in_memory(
        model, files * 4, batch_size=len(files), repeats=max(2, a.s.repeats)
    )
    server = serving.start_server(a.export_dir, allowed_roots=[a.data_dir])
    try:
        body = {"instances": [{"filenames": f} for f in files]}
        runs = {
            c: serving.load_test(
                server.url + "/v1/models/flowers:predict", body, c, a.s.load_requests
            )
            for c in (1, 4, 8)
        }
    finally:
        server.stop()
    ratio = runs[8]["images_per_s"] / memory["images_per_s"]
    details = [f"in-memory batched ({len(files)} per call): {memory['images_per_s']:.1f} images/s"]
    details += [
        f"{c} clients: {r['requests_per_s']} req/s = {r['images_per_s']} images/s, "
        f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, errors {r['errors']}"
        for c, r in runs.items()
    ]
    return Result(
        "P5",
        "REST at 8 clients / in-memory batched (images/s)",
        ratio,
        "× in-memory",
        "≥ 0.7×",
        ratio >= 0.7 and all(r["errors"] == 0 for r in runs.values()),
        details,
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
    args = ap.parse_args(argv)
    s = QUICK if args.quick else FULL
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
