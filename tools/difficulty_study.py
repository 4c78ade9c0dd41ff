"""How hard is the synthetic 5-flowers data? Generate, train the course's small CNN, tabulate.

For each difficulty and seed (the seed of the data AND of the model's initialisation and
shuffling), this script

1. generates the data set (``pmlv_utils.synthetic.generate_dataset``) and times it,
2. writes the TFRecords (``pmlv_utils.tfrecords.run_pipeline``),
3. trains with the course's trainer (``pmlv_utils.training.train_and_export``, no export),
4. fits the colour-histogram baseline (``pmlv_utils.baseline``) on the same train split,

and prints one row per run plus the mean and spread per difficulty. Data, TFRecords and
training results are reused when they already exist under ``--workdir`` (the data folder's
name holds a digest of the generator's code). Results also go to
``<workdir>/results.json``; ``--gallery PNG`` draws a few images of each class.

    PYTHONPATH=$PWD python tools/difficulty_study.py --difficulty hard --seeds 1 2
    PYTHONPATH=$PWD python tools/difficulty_study.py --difficulty easy hard --seeds 1 \\
        --images_per_class 60 --img_size 64 --epochs 8       # the quick-test settings
    PYTHONPATH=$PWD python tools/difficulty_study.py --gallery build/difficulty_examples.png \\
        --no_train
    PYTHONPATH=$PWD python tools/difficulty_study.py --difficulty hard easy --seeds 1 2 3 \\
        --markdown docs/DIFFICULTY.md                        # the figures of docs/DIFFICULTY.md

CPU seconds are those of this process (all its threads): on a machine shared with other
jobs the wall time grows but the CPU time does not, so CPU seconds / cores estimates the
wall time on an idle machine.
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import json
import statistics
import time
from pathlib import Path

from PIL import Image, ImageDraw

from pmlv_utils import baseline, dataset_files, synthetic

ROOT = Path(__file__).resolve().parents[1]


def source_digest() -> str:
    """A short digest of the generator's code (not its comments or docstrings): a changed
    generator gets new data folders."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "pmlv_utils" / "synthetic").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
        h.update(ast.dump(tree).encode())
    return h.hexdigest()[:8]


def make_data(workdir: Path, difficulty: str, seed: int, images_per_class: int) -> dict:
    """The data folder of one setting (generated once), with the generation speed."""
    version = f"{synthetic.GENERATOR_VERSION}_{source_digest()}"
    folder = workdir / f"data_{difficulty}_n{images_per_class}_s{seed}_v{version}"
    done = folder / "generation.json"
    if done.exists():
        return {"folder": folder, **json.loads(done.read_text())}
    wall, cpu = time.perf_counter(), time.process_time()
    result = synthetic.generate_dataset(
        folder, images_per_class, seed, difficulty=difficulty, progress=False
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stats = {
        "n_images": result["n_images"],
        "label_noise": result["label_noise"],
        "images_per_second": round(result["n_images"] / wall, 1),
        "images_per_cpu_second": round(result["n_images"] / cpu, 1),
    }
    done.write_text(json.dumps(stats))
    return {"folder": folder, **stats}


def make_tfrecords(data: Path) -> Path:
    from pmlv_utils import tfrecords

    out = data / "tfrecords"
    if not (out / "done").exists():
        photos = data / "flower_photos"
        tfrecords.run_pipeline(
            tfrecords.DatasetJobConfig(
                all_data=str(photos / "all_data.csv"),
                labels_file=str(photos / "dict.txt"),
                output_dir=str(out),
                verbose=False,
            )
        )
        (out / "done").write_text("ok\n")
    return out


def colour_baselines(data: Path, seed: int) -> dict:
    """Test accuracy of the colour baseline (logistic and forest), fitted on the train split."""
    rows = list(csv.reader(open(data / "flower_photos" / "all_data.csv")))
    split = {s: [r for r in rows if dataset_files.split_for(r[0]) == s] for s in ("train", "test")}
    out = {}
    for kind in ("logistic", "forest"):
        model = baseline.fit_colour_baseline(
            [r[0] for r in split["train"]], [r[1] for r in split["train"]], seed=seed, kind=kind
        )
        accuracy, _ = baseline.evaluate_colour_baseline(
            model, [r[0] for r in split["test"]], [r[1] for r in split["test"]]
        )
        out[kind] = round(accuracy, 4)
    return out


def train(data: Path, records: Path, args, seed: int) -> dict:
    from pmlv_utils import training

    config = training.TrainConfig(
        img_size=args.img_size,
        num_epochs=args.epochs,
        patience=args.patience,
        seed=seed,
        crop_ratio=args.crop_ratio,  # None: the learner default
        augment=not args.no_augment,
    )
    job_dir = data / (
        f"job_{args.img_size}px_e{args.epochs}_c{config.crop_ratio}_p{args.patience}"
        f"_t{training.TRAINER_VERSION}_s{seed}"
    )
    done = job_dir / "study.json"
    if done.exists():  # this run was measured before
        return json.loads(done.read_text())
    wall, cpu = time.perf_counter(), time.process_time()
    metrics = training.train_and_export(
        str(job_dir),
        str(records),
        str(data / "flower_photos" / "dict.txt"),
        config,
        export=False,
        verbose=0,
        log=lambda *a: None,
    )
    result = {
        "test_accuracy": metrics["test_accuracy"],
        "val_accuracy": metrics["val_accuracy"],
        "train_accuracy": metrics["train_accuracy"],
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "train_seconds": round(time.perf_counter() - wall, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "fit_seconds": metrics["fit_seconds"],
    }
    done.write_text(json.dumps(result))
    return result


def gallery(path: Path, data: Path, per_class: int = 8, cell: int = 160) -> None:
    """A grid of the first images of each class, captioned with their nuisances."""
    rows = list(csv.DictReader(open(data / "image_info.csv")))
    canvas = Image.new("RGB", (cell * per_class, (cell + 14) * 5), "white")
    draw = ImageDraw.Draw(canvas)
    for ci, label in enumerate(synthetic.CLASSES):
        for j, row in enumerate([r for r in rows if r["label"] == label][:per_class]):
            with Image.open(data / row["image"]) as im:
                im = im.convert("RGB")
                im.thumbnail((cell, cell))
                x, y = j * cell, ci * (cell + 14)
                canvas.paste(im, (x, y + 14))
            noise = f" ={row['true_label'][:4]}!" if row["label_noise"] == "True" else ""
            caption = f"{label[:5]} {row['variety'][:6]} {row['blur'][:3]} q{row['jpeg_quality']}"
            draw.text((x + 2, y), caption + noise, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    print(f"gallery: {path}")


def summary(results: list[dict]) -> None:
    head = (
        f"{'difficulty':<10} {'seed':>4} {'test acc':>8} {'colour lr/rf':>12} {'best ep':>7} "
        f"{'epochs':>6} {'train s':>8} {'cpu s':>7} {'img/s':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        acc = "-" if r.get("test_accuracy") is None else f"{r['test_accuracy']:.3f}"
        print(
            f"{r['difficulty']:<10} {r['seed']:>4} {acc:>8} "
            f"{r['colour']['logistic']:>5.3f}/{r['colour']['forest']:<5.3f} "
            f"{r.get('best_epoch', '-')!s:>7} {r.get('epochs_run', '-')!s:>6} "
            f"{r.get('train_seconds', '-')!s:>8} {r.get('cpu_seconds', '-')!s:>7} "
            f"{r['images_per_second']:>6}"
        )
    for difficulty in dict.fromkeys(r["difficulty"] for r in results):
        accs = [r["test_accuracy"] for r in results if r["difficulty"] == difficulty]
        accs = [a for a in accs if a is not None]
        if len(accs) >= 2:
            print(
                f"{difficulty}: test accuracy mean {statistics.mean(accs):.3f}, "
                f"sd {statistics.stdev(accs):.3f}, range {min(accs):.3f}..{max(accs):.3f} "
                f"({len(accs)} runs)"
            )


def trainer_version() -> str:
    from pmlv_utils import training

    return training.TRAINER_VERSION


def markdown(path: Path, args, results: list[dict]) -> None:
    """``path``: the study's settings and figures as a Markdown table (docs/DIFFICULTY.md)."""
    lines = [
        "# How hard is the synthetic data?",
        "",
        "Written by `tools/difficulty_study.py` (do not edit by hand): the course's small CNN",
        "trained from scratch by `pmlv_utils.training.train_and_export`, test accuracy on the",
        "test split; the colour-histogram baseline (`pmlv_utils.baseline`, logistic / forest)",
        "fitted on the same train split. Data and model share the seed.",
        "",
        f"Generator version {synthetic.GENERATOR_VERSION} (code digest {source_digest()});",
        f"{args.images_per_class} images per class, {args.img_size} px model input, training "
        f"crop ratio {args.crop_ratio or 'default'}, augmentation "
        f"{'off' if args.no_augment else 'on'}, trainer version {trainer_version()},",
        f"at most {args.epochs} epochs, early-stopping patience {args.patience}.",
        "",
        "| difficulty | seed | test acc | val acc | train acc | colour lr / rf | best epoch "
        "| epochs run | mislabelled | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        fig = {k: r.get(k) for k in ("test_accuracy", "val_accuracy", "train_accuracy")}
        fig = {k: "-" if v is None else f"{v:.3f}" for k, v in fig.items()}
        lines.append(
            f"| {r['difficulty']} | {r['seed']} | {fig['test_accuracy']} | {fig['val_accuracy']} "
            f"| {fig['train_accuracy']} | {r['colour']['logistic']:.3f} / "
            f"{r['colour']['forest']:.3f} | {r.get('best_epoch', '-')} | "
            f"{r.get('epochs_run', '-')} | {r['label_noise']} | {r.get('train_seconds', '-')} |"
        )
    lines.append("")
    for difficulty in dict.fromkeys(r["difficulty"] for r in results):
        accs = [r.get("test_accuracy") for r in results if r["difficulty"] == difficulty]
        accs = [a for a in accs if a is not None]
        if accs:
            spread = f", sd {statistics.stdev(accs):.3f}" if len(accs) >= 2 else ""
            lines.append(
                f"- {difficulty}: test accuracy mean {statistics.mean(accs):.3f}{spread} "
                f"over {len(accs)} run(s), range {min(accs):.3f}..{max(accs):.3f}."
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"table: {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--difficulty", nargs="+", default=["hard"], choices=synthetic.DIFFICULTIES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--images_per_class", type=int, default=200)
    parser.add_argument("--img_size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument(
        "--crop_ratio", type=float, default=None, help="training zoom crop (default: TrainConfig's)"
    )
    parser.add_argument("--no_augment", action="store_true")
    parser.add_argument("--workdir", default=str(ROOT / "build" / "difficulty_study"))
    parser.add_argument("--gallery", default=None, help="PNG of example images (first run's data)")
    parser.add_argument("--no_train", action="store_true", help="data, baseline and gallery only")
    parser.add_argument("--markdown", default=None, help="write the table here (docs/...)")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for difficulty in args.difficulty:
        for seed in args.seeds:
            data = make_data(workdir, difficulty, seed, args.images_per_class)
            if args.gallery and not results:
                gallery(Path(args.gallery), data["folder"])
            row = {"difficulty": difficulty, "seed": seed, **data}
            row["colour"] = colour_baselines(data["folder"], seed)
            if not args.no_train:
                row.update(train(data["folder"], make_tfrecords(data["folder"]), args, seed))
            row["folder"] = str(row["folder"])
            results.append(row)
            print(json.dumps(row), flush=True)
    (workdir / "results.json").write_text(json.dumps({"args": vars(args), "runs": results}))
    summary(results)
    if args.markdown:
        markdown(Path(args.markdown), args, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
