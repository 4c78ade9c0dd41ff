"""Tests of the chapter-5 Beam job (pmlv_utils.tfrecords and 05_create_dataset/jpeg_to_tfrecord.py).

One small CSV mixes good images with every kind of bad line; the CLI runs on it once in a
subprocess, the library runs on it once more with two worker threads to compare the splits (the
multi-process mode gives the same result but costs ~10 s of worker start-up: the notebook shows it).
"""

import dataclasses
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pmlv_utils import dataset_files, tfrecords

REPO = Path(__file__).resolve().parents[1]
CLI_DIR = REPO / "05_create_dataset"
LABELS = ["daisy", "roses", "tulips"]


def _pixels(rng, h, w):
    """A smooth picture with a little noise (compresses like a photo, not like flat colour)."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w, y / h, (x + y) / (h + w)], axis=-1) * 200 + rng.integers(0, 40, 3)
    return np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def _jpeg(img, **kw):
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def make_mixed_dataset(root: Path, n_good: int = 15, seed: int = 0):
    """Write images + all_data.csv + dict.txt; return (csv, labels, expected) where expected
    maps each CSV line number to ('ok', path, label, shape) or ('bad', reason)."""
    rng = np.random.default_rng(seed)
    photos = root / "flower_photos"
    for label in LABELS:
        (photos / label).mkdir(parents=True, exist_ok=True)
    lines, expected = [], {}

    def add(text, outcome):
        lines.append(text)
        expected[len(lines)] = outcome

    for i in range(n_good):
        label = LABELS[i % len(LABELS)]
        h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        path = photos / label / f"good_{i:03d}.jpg"
        path.write_bytes(_jpeg(Image.fromarray(_pixels(rng, h, w)), quality=90))
        # one line uses a path relative to the CSV's folder
        text = f"{label}/{path.name},{label}" if i == 0 else f"{path},{label}"
        add(text, ("ok", str(path), label, (h, w, 3), None))
    gray = photos / "daisy" / "gray.jpg"
    gray.write_bytes(_jpeg(Image.fromarray(_pixels(rng, 50, 60)).convert("L")))
    add(f"{gray},daisy", ("ok", str(gray), "daisy", (50, 60, 3), "JPEG/L"))
    cmyk = photos / "roses" / "cmyk.jpg"
    cmyk.write_bytes(_jpeg(Image.fromarray(_pixels(rng, 45, 70)).convert("CMYK")))
    add(f"{cmyk},roses", ("ok", str(cmyk), "roses", (45, 70, 3), "JPEG/CMYK"))
    png = photos / "tulips" / "really_a_png.jpg"
    rgba = Image.fromarray(_pixels(rng, 30, 40)).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(png, "PNG")
    add(f"{png},tulips", ("ok", str(png), "tulips", (30, 40, 3), "PNG/RGBA"))

    truncated = photos / "daisy" / "truncated.jpg"
    whole = _jpeg(Image.fromarray(_pixels(rng, 64, 64)))
    truncated.write_bytes(whole[: len(whole) // 2])
    add(f"{truncated},daisy", ("bad", tfrecords.CORRUPT_IMAGE))
    text_file = photos / "roses" / "notes.jpg"
    text_file.write_text("this is not a picture\n")
    add(f"{text_file},roses", ("bad", tfrecords.NOT_AN_IMAGE))
    empty_file = photos / "roses" / "empty.jpg"
    empty_file.write_bytes(b"")
    add(f"{empty_file},roses", ("bad", tfrecords.EMPTY_FILE))
    add(f"{photos / 'tulips' / 'gone.jpg'},tulips", ("bad", tfrecords.MISSING_FILE))
    add("", ("bad", tfrecords.EMPTY_LINE))
    add(f"{photos / 'daisy' / 'good_000.jpg'},sunflowers", ("bad", tfrecords.UNKNOWN_LABEL))
    add("just-one-field", ("bad", tfrecords.MALFORMED_LINE))
    add(f"{photos / 'daisy' / 'x.jpg'},daisy,extra", ("bad", tfrecords.MALFORMED_LINE))
    add(f"{photos / 'daisy'},daisy", ("bad", tfrecords.READ_ERROR))  # a folder, not a file
    csv_file = photos / "all_data.csv"
    csv_file.write_text("\n".join(lines) + "\n")
    labels_file = photos / "dict.txt"
    labels_file.write_text("\n".join(LABELS) + "\n")
    return str(csv_file), str(labels_file), expected


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    csv_file, labels_file, expected = make_mixed_dataset(root / "data")
    return root, csv_file, labels_file, expected


@pytest.fixture(scope="module")
def cli_run(mixed):
    """The book's CLI, run once from 05_create_dataset/ in a subprocess."""
    root, csv_file, labels_file, expected = mixed
    out_dir, counts_file = root / "out_cli", root / "counts.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jpeg_to_tfrecord",
            "--all_data",
            csv_file,
            "--labels_file",
            labels_file,
            "--output_dir",
            str(out_dir),
            "--counts_json",
            str(counts_file),
        ],
        cwd=CLI_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, out_dir, json.loads(counts_file.read_text()) if counts_file.exists() else None


def _records_by_split(out_dir):
    return {
        s: tfrecords.read_records(dataset_files.split_pattern(out_dir, s), decode=True)
        for s in dataset_files.SPLITS
    }


def test_cli_exits_0_and_prints_counts(cli_run, mixed):
    proc, out_dir, counts = cli_run
    expected = mixed[3]
    assert proc.returncode == 0, proc.stderr[-3000:]
    n_ok = sum(1 for v in expected.values() if v[0] == "ok")
    assert counts["total_written"] == n_ok and counts["total_rejected"] == len(expected) - n_ok
    assert f"written {n_ok} records" in proc.stdout and "rejected" in proc.stdout
    names = sorted(p.name for p in out_dir.iterdir())
    assert "errors-00000-of-00001.jsonl" in names
    for split in dataset_files.SPLITS:
        assert f"{split}-00000-of-00001.gz" in names  # Beam's default shard naming, GZIP


def test_labels_are_written_beside_the_shards_for_the_trainer(cli_run, mixed):
    from pmlv_utils.training import cli

    _, out_dir, _ = cli_run
    labels = dataset_files.read_labels(mixed[2])
    assert (out_dir / "dict.txt").read_text() == "".join(f"{x}\n" for x in labels)
    # the trainer, given only --input_topdir, finds them there first
    assert cli.default_labels_file(str(out_dir)) == str(out_dir / "dict.txt")


def test_every_good_row_in_exactly_one_split_with_its_data(cli_run, mixed):
    _, out_dir, counts = cli_run
    expected = mixed[3]
    by_split = _records_by_split(out_dir)
    seen = [r["path"] for recs in by_split.values() for r in recs]
    good = {v[1]: v for v in expected.values() if v[0] == "ok"}
    assert sorted(seen) == sorted(good)  # each exactly once, nothing else
    for split, recs in by_split.items():
        assert counts["written"][split] == len(recs)
        for r in recs:
            _, path, label, shape, _ = good[r["path"]]
            assert split == dataset_files.split_for(path)
            assert (r["label"], r["label_int"]) == (label, LABELS.index(label))
            assert r["shape"] == shape == r["pixels"].shape  # decodes to the stored shape, RGB


def test_sources_converted_only_when_needed(cli_run, mixed):
    _, out_dir, counts = cli_run
    expected = mixed[3]
    converted = {v[4] for v in expected.values() if v[0] == "ok" and v[4]}
    assert counts["converted"] == {k: 1 for k in converted}
    recs = {r["path"]: r for recs in _records_by_split(out_dir).values() for r in recs}
    for _, path, _, _, source in (v for v in expected.values() if v[0] == "ok"):
        stored = recs[path]["image"]
        if source is None:  # already an RGB JPEG: the bytes are kept as they are
            assert stored == Path(path).read_bytes()
        else:
            assert Image.open(io.BytesIO(stored)).format == "JPEG"
            assert Image.open(io.BytesIO(stored)).mode == "RGB"
    gray = next(r for r in recs.values() if r["path"].endswith("gray.jpg"))["pixels"]
    assert (
        gray.shape[2] == 3 and np.abs(gray[..., 0].astype(int) - gray[..., 1]).max() <= 3
    )  # still gray


def test_every_bad_row_in_errors_with_its_reason(cli_run, mixed):
    _, out_dir, counts = cli_run
    expected = mixed[3]
    errors = tfrecords.read_errors(str(out_dir))
    assert {e["line"]: e["reason"] for e in errors} == {
        n: v[1] for n, v in expected.items() if v[0] == "bad"
    }
    assert len(errors) == len({e["line"] for e in errors})
    assert all(set(e) >= {"line", "path", "label", "reason"} for e in errors)
    assert sum(counts["rejected"].values()) == len(errors)
    unknown = next(e for e in errors if e["reason"] == tfrecords.UNKNOWN_LABEL)
    assert unknown["label"] == "sunflowers" and unknown["path"].endswith("good_000.jpg")
    malformed = [e for e in errors if e["reason"] == tfrecords.MALFORMED_LINE]
    assert any("just-one-field" in e["detail"] for e in malformed)


def test_records_are_compact(cli_run, mixed):
    _, out_dir, _ = cli_run
    report = tfrecords.size_report(mixed[1], str(out_dir))
    assert report["images"] == sum(1 for v in mixed[3].values() if v[0] == "ok")
    assert report["tfrecord_over_jpeg"] <= 1.1, report
    assert report["float32_over_jpeg"] > 5, report


def test_second_run_multithreaded_gives_identical_splits(cli_run, mixed, tmp_path):
    _, first_dir, first_counts = cli_run
    root, csv_file, labels_file, _ = mixed
    # leave a stale shard of an "earlier run" with another shard count: it must be removed
    (tmp_path / "train-00003-of-00004.gz").write_bytes(b"stale")
    counts = tfrecords.run_pipeline(
        tfrecords.DatasetJobConfig(
            csv_file,
            labels_file,
            str(tmp_path),
            direct_num_workers=2,
            direct_running_mode="multi_threading",
            verbose=False,
        )
    )
    assert not (tmp_path / "train-00003-of-00004.gz").exists()
    assert (
        counts["written"] == first_counts["written"]
        and counts["rejected"] == first_counts["rejected"]
    )
    for split in dataset_files.SPLITS:
        a = sorted(
            r["path"] for r in tfrecords.read_records(dataset_files.split_pattern(first_dir, split))
        )
        b = sorted(
            r["path"] for r in tfrecords.read_records(dataset_files.split_pattern(tmp_path, split))
        )
        assert a == b
        assert tfrecords.count_records(dataset_files.split_pattern(tmp_path, split)) == len(b)


def _load_cli():
    spec = importlib.util.spec_from_file_location(
        "jpeg_to_tfrecord", CLI_DIR / "jpeg_to_tfrecord.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "csv_text, labels_text, message",
    [
        ("", "daisy\nroses\n", "is empty"),
        ("\n\n", "daisy\nroses\n", "is empty"),
        ("daisy/a.jpg,daisy\n", "daisy\n", "at least 2"),
    ],
)
def test_empty_csv_or_one_label_exits_nonzero_with_message(
    tmp_path, capsys, csv_text, labels_text, message
):
    (tmp_path / "all_data.csv").write_text(csv_text)
    (tmp_path / "dict.txt").write_text(labels_text)
    status = _load_cli().main(
        [
            "--all_data",
            str(tmp_path / "all_data.csv"),
            "--labels_file",
            str(tmp_path / "dict.txt"),
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    assert status != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing started


def test_dataflow_options_are_built_correctly(tmp_path):
    options = tfrecords.build_pipeline_options(
        "DataflowRunner",
        "gs://bucket/flowers_tfrecords/",
        project_id="my-project",
        region="europe-west1",
        job_name="flowers-test",
        num_workers=5,
        requirements_dir=tmp_path,
    ).get_all_options()
    assert options["runner"] == "DataflowRunner"
    assert (options["project"], options["region"], options["job_name"]) == (
        "my-project",
        "europe-west1",
        "flowers-test",
    )
    assert options["temp_location"] == "gs://bucket/flowers_tfrecords/tmp"
    assert options["staging_location"] == "gs://bucket/flowers_tfrecords/staging"
    assert options["max_num_workers"] == 5
    assert options["setup_file"].endswith("pyproject.toml") and os.path.exists(
        options["setup_file"]
    )
    requirements = Path(options["requirements_file"]).read_text()
    assert "tensorflow==" in requirements and "pillow==" in requirements


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(runner="DataflowRunner", output_dir="gs://b/o", region="r"), "project_id"),
        (
            dict(runner="DataflowRunner", output_dir="/local/out", project_id="p", region="r"),
            "gs://",
        ),
        (dict(runner="SparkRunner", output_dir="/o"), "runner must be"),
        (
            dict(runner="DirectRunner", output_dir="/o", direct_running_mode="many_threads"),
            "direct_running_mode",
        ),
    ],
)
def test_bad_runner_options_raise(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        tfrecords.build_pipeline_options(requirements_dir=tmp_path, **kwargs)


def test_local_options_pass_direct_settings_and_extra_args():
    options = tfrecords.build_pipeline_options(
        "DirectRunner",
        "/o",
        direct_num_workers=2,
        direct_running_mode="multi_processing",
        extra_args=["--direct_embed_docker_python"],
    ).get_all_options()
    assert (
        options["direct_num_workers"] == 2 and options["direct_running_mode"] == "multi_processing"
    )


def test_dataflow_refuses_a_local_csv_before_starting(tmp_path):
    with pytest.raises(ValueError, match="local CSV"):
        tfrecords.run_pipeline(
            tfrecords.DatasetJobConfig(
                str(tmp_path / "all_data.csv"),
                str(tmp_path / "dict.txt"),
                "gs://b/o",
                runner="DataflowRunner",
                project_id="p",
                region="r",
            )
        )


def test_job_config_is_one_frozen_object():
    config = tfrecords.DatasetJobConfig(Path("a.csv"), "dict.txt", "out", extra_args=["--x=1"])
    assert (config.all_data, config.extra_args, config.local) == ("a.csv", ("--x=1",), True)
    assert (config.runner, config.fractions, config.wait, config.verbose) == (
        "DirectRunner",
        dataset_files.DEFAULT_FRACTIONS,
        None,
        True,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.runner = "DataflowRunner"
    other = dataclasses.replace(config, direct_running_mode="multi_threading")
    assert other.pipeline_options().get_all_options()["direct_running_mode"] == "multi_threading"
    with pytest.raises(TypeError, match="DatasetJobConfig"):
        tfrecords.run_pipeline("a.csv")


def test_make_and_parse_example_round_trip():
    jpeg = _jpeg(Image.fromarray(_pixels(np.random.default_rng(1), 20, 30)))
    serialized = tfrecords.make_example(
        jpeg, (20, 30, 3), "roses", 1, "gs://b/roses/x.jpg"
    ).SerializeToString()
    parsed = tfrecords.parse_example(serialized)
    assert parsed["image"].numpy() == jpeg
    assert list(parsed["shape"].numpy()) == [20, 30, 3]
    assert (parsed["label"].numpy(), int(parsed["label_int"])) == (b"roses", 1)
    assert parsed["path"].numpy() == b"gs://b/roses/x.jpg"
    assert tuple(tfrecords.decode_image(parsed["image"]).shape) == (20, 30, 3)


def test_shard_counts():
    assert tfrecords.shard_counts(None, 3670) == {"train": 15, "valid": 1, "test": 1}
    assert tfrecords.shard_counts(16, 10) == {
        "train": 16,
        "valid": 2,
        "test": 2,
    }  # the book's 16/2/2
    assert tfrecords.shard_counts(None, 5) == {"train": 1, "valid": 1, "test": 1}
    with pytest.raises(ValueError):
        tfrecords.shard_counts({"train": 2}, 10)


def test_bad_input_demo_matches_the_dead_letters(mixed, tmp_path):
    _, _, _, expected_fixture = mixed
    good = [(v[1], v[2]) for v in expected_fixture.values() if v[0] == "ok" and v[4] is None][:2]
    csv_file, labels_file, expected = tfrecords.write_bad_input_demo(
        str(tmp_path / "demo"), good, LABELS
    )
    counts = tfrecords.run_pipeline(
        tfrecords.DatasetJobConfig(
            csv_file, labels_file, str(tmp_path / "out"), fractions=(1.0, 0.0, 0.0), verbose=False
        )
    )
    errors = tfrecords.read_errors(str(tmp_path / "out"))
    assert counts["written"] == {"train": 5, "valid": 0, "test": 0}
    for split in ("valid", "test"):  # an empty split still gets its (empty) shard
        assert (tmp_path / "out" / f"{split}-00000-of-00001.gz").exists()
        assert tfrecords.count_records(dataset_files.split_pattern(tmp_path / "out", split)) == 0
    assert {e["line"]: e["reason"] for e in errors} == {
        n: r for n, r in expected.items() if not r.startswith("ok")
    }
    assert counts["total_written"] == sum(r.startswith("ok") for r in expected.values()) == 5
    assert counts["converted"] == {"JPEG/CMYK": 1, "JPEG/L": 1, "PNG/RGB": 1}
