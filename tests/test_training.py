"""pmlv_utils.training (and its CLI, pmlv_utils.train): artifacts, best-weights export, resume,
errors.

The data is a tiny colour-coded 5-class set (one hue per class on a dark noisy
background) written as GZIP TFRecords in the course's schema, small enough that a
2-epoch run on 28-pixel images takes seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
Image = pytest.importorskip("PIL.Image")

from pmlv_utils import dataset_files, tfrecords, training  # noqa: E402

CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
HUES = np.array([[230, 230, 230], [230, 205, 25], [205, 25, 50], [230, 128, 0], [150, 25, 150]])
FAST = dict(img_size=28, batch_size=8, verbose=0, log=lambda *a, **k: None)
RUN_OPTIONS = ("resume", "pattern", "export", "tensorboard", "strategy", "verbose", "log")


def make_tiny_flowers(folder, per_class=10, seed=0) -> dict:
    """JPEGs + dict.txt + train/valid/test GZIP shards; returns {split: [(path, label_int)]}."""
    rng = np.random.default_rng(seed)
    folder = str(folder)
    with open(os.path.join(folder, "dict.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    rows = {"train": [], "valid": [], "test": []}
    for k, label in enumerate(CLASSES):
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        for i in range(per_class):
            h, w = 30 + int(rng.integers(0, 8)), 30 + int(rng.integers(0, 15))
            img = rng.uniform(0, 90, (h, w, 3))
            top, left = rng.integers(0, h // 3), rng.integers(0, w // 3)
            img[top : top + h // 2, left : left + w // 2] = HUES[k] + rng.normal(0, 10, 3)
            path = os.path.join(folder, label, f"{i}.jpg")
            Image.fromarray(np.clip(img, 0, 255).astype("uint8")).save(path, quality=92)
            split = "test" if i % 5 == 0 else "valid" if i % 5 == 1 else "train"
            rows[split].append((path, k, (h, w, 3)))
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for split, items in rows.items():
        name = os.path.join(folder, f"{split}-00000-of-00001.gz")
        with tf.io.TFRecordWriter(name, options) as writer:
            for path, k, shape in items:
                with open(path, "rb") as f:
                    example = tfrecords.make_example(f.read(), shape, CLASSES[k], k, path)
                writer.write(example.SerializeToString())
    return {s: [(p, k) for p, k, _ in items] for s, items in rows.items()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    rows = make_tiny_flowers(folder)
    return folder, rows


def run(job_dir, folder, **kwargs):
    """train_and_export with FAST settings; ``kwargs`` are TrainConfig fields or run options."""
    args = dict(FAST, num_epochs=2)
    args.update(kwargs)
    options = {k: args.pop(k) for k in RUN_OPTIONS if k in args}
    config = training.TrainConfig(**args)
    return training.train_and_export(
        str(job_dir), str(folder), str(folder / "dict.txt"), config, **options
    )


def test_cli_writes_every_artifact(tiny, tmp_path):
    folder, rows = tiny
    job = tmp_path / "job"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pmlv_utils.train",
            "--job-dir",
            str(job),
            "--input_topdir",
            str(folder),
            "--pattern=-*",
            "--num_epochs",
            "2",
            "--batch_size",
            "8",
            "--img_size",
            "28",
            "--with_color_distort",
            "False",
            "--lrate",
            "0.003",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in (
        "checkpoints/best.keras",
        "checkpoints/last.keras",
        "checkpoints/state.json",
        "export/saved_model.pb",
        "export/assets.extra/labels.txt",
        "export/assets.extra/model_info.json",
        "training_curves.png",
        "metrics.json",
        "hypertune.json",
    ):
        assert (job / name).exists(), name
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["num_images"] == {"train": 30, "valid": 10, "test": 10}
    assert metrics["epochs_run"] == 2 and summary["epochs_run"] == 2
    assert metrics["settings"]["with_color_distort"] is False
    assert metrics["settings"]["lrate"] == 0.003
    assert len(metrics["test_confusion_matrix"]) == 5
    assert sum(map(sum, metrics["test_confusion_matrix"])) == 10
    hyper = json.loads((job / "hypertune.json").read_text())
    assert hyper["hyperparameter_metric_tag"] == "accuracy"
    assert hyper["metric_value"] == max(metrics["history"]["val_accuracy"])


def test_export_holds_the_best_epoch_not_the_last(tiny, tmp_path):
    folder, _ = tiny
    m = run(tmp_path / "job", folder, num_epochs=4, lrate=0.01, patience=10)
    history = m["history"]["val_accuracy"]
    # best = highest val_accuracy, ties broken by the lowest val_loss
    ranked = sorted(range(len(history)), key=lambda i: (-history[i], m["history"]["val_loss"][i]))
    assert m["best_epoch"] == ranked[0] + 1
    valid = dataset_files.split_pattern(str(folder), "valid")
    # the exported model scores exactly the recorded val accuracy of the best checkpoint
    assert training.evaluate(str(tmp_path / "job" / "export"), valid, 28)[
        "accuracy"
    ] == pytest.approx(m["val_accuracy"])
    assert m["val_accuracy"] == pytest.approx(history[m["best_epoch"] - 1], abs=1e-6)


def test_training_learns_the_tiny_set(tiny, tmp_path):
    folder, _ = tiny
    m = run(
        tmp_path / "job", folder, num_epochs=8, lrate=0.01, with_color_distort=False, export=False
    )
    assert m["val_accuracy"] >= 0.6  # chance is 0.2


def test_resume_continues_from_the_saved_epoch(tiny, tmp_path):
    folder, _ = tiny
    job = tmp_path / "job"
    first = run(job, folder, num_epochs=2, export=False)
    state = training.load_state(job)
    assert state["epochs_done"] == 2
    messages = []
    second = run(job, folder, num_epochs=3, resume=True, export=False, log=messages.append)
    assert any("resuming after epoch 2" in m for m in messages)
    assert second["epochs_run"] == 3
    for key in ("loss", "val_accuracy"):
        assert len(second["history"][key]) == 3
        assert second["history"][key][:2] == first["history"][key]  # earlier epochs kept
    import keras

    steps = 30 // 8 + 1
    last = keras.models.load_model(job / "checkpoints" / "last.keras")
    assert int(last.optimizer.iterations.numpy()) == 3 * steps  # 2 epochs + 1 more, not 1


def test_without_resume_starts_over(tiny, tmp_path):
    folder, _ = tiny
    job = tmp_path / "job"
    run(job, folder, num_epochs=2, export=False)
    again = run(job, folder, num_epochs=1, export=False)
    assert again["epochs_run"] == 1


def test_resume_refuses_other_settings(tiny, tmp_path):
    folder, _ = tiny
    job = tmp_path / "job"
    run(job, folder, num_epochs=1, export=False)
    with pytest.raises(ValueError, match="settings differ"):
        run(job, folder, num_epochs=2, resume=True, num_hidden=8, export=False)


def test_resume_after_finishing_trains_no_more(tiny, tmp_path):
    folder, _ = tiny
    job = tmp_path / "job"
    run(job, folder, num_epochs=1, export=False)
    messages = []
    m = run(job, folder, num_epochs=1, resume=True, export=False, log=messages.append)
    assert m["epochs_run"] == 1 and any("already finished" in s for s in messages)


def test_pattern_matching_nothing_names_the_pattern(tiny, tmp_path):
    folder, _ = tiny
    with pytest.raises(FileNotFoundError, match="train-nothing"):
        run(tmp_path / "job", folder, pattern="-nothing*")
    assert not (tmp_path / "job" / "checkpoints").exists()


def test_unreadable_shard_names_the_file(tiny, tmp_path):
    folder, _ = tiny
    broken = tmp_path / "broken"
    broken.mkdir()
    for split in ("train", "valid", "test"):
        (broken / f"{split}-00000-of-00001.gz").write_bytes(
            (folder / f"{split}-00000-of-00001.gz").read_bytes()
        )
    (broken / "dict.txt").write_text((folder / "dict.txt").read_text())
    (broken / "valid-00000-of-00001.gz").write_bytes(b"this is not gzip")
    with pytest.raises(ValueError, match="valid-00000-of-00001.gz"):
        run(tmp_path / "job", broken)


def test_evaluate_confusion_matrix(tiny, tmp_path):
    folder, rows = tiny
    from pmlv_utils.model import build_model

    model = build_model(img_size=28)
    result = training.evaluate(model, dataset_files.split_pattern(str(folder), "test"), 28, CLASSES)
    cm = np.array(result["confusion_matrix"])
    assert cm.shape == (5, 5) and cm.sum() == result["n"] == len(rows["test"])
    assert result["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    np.testing.assert_array_equal(cm.sum(axis=1), [2, 2, 2, 2, 2])  # true labels per class


def test_search_space_samples_stay_in_range():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = training.sample_hparams(training.BOOK_SEARCH_SPACE, rng)
        assert 0.0 <= p["l2"] <= 0.2 and 0.5 <= p["crop_ratio"] <= 0.8
        assert p["batch_size"] in (16, 32, 64) and p["num_hidden"] in (8, 16, 24)
        assert p["with_color_distort"] in (False, True)
    with pytest.raises(ValueError, match="unknown search-space kind"):
        training.sample_hparams({"x": ("normal", 0, 1)}, rng)


def test_hparam_search_ranks_trials_by_validation(tiny, tmp_path):
    folder, _ = tiny
    trials = training.hparam_search(
        str(tmp_path / "hp"),
        str(folder),
        str(folder / "dict.txt"),
        training.TrainConfig(seed=1, num_epochs=1, img_size=28),
        num_trials=2,
        log=lambda *a: None,
    )
    assert len(trials) == 2
    assert trials[0]["val_accuracy"] >= trials[1]["val_accuracy"]
    assert json.loads((tmp_path / "hp" / "hparam_trials.json").read_text()) == trials
    assert not (tmp_path / "hp" / "trial_0" / "export").exists()


def test_vertex_configs_render_and_parse(tmp_path):
    yaml = pytest.importorskip("yaml")
    from pmlv_utils.training import cli

    for name in cli.VERTEX_CONFIGS:
        path = cli.render_vertex_config(name, "my-bucket", str(tmp_path / f"{name}.yaml"))
        spec = yaml.safe_load(open(path))
        text = open(path).read()
        assert "${BUCKET}" not in text and "gs://my-bucket/" in text
        pools = (spec.get("trialJobSpec") or spec)["workerPoolSpecs"]
        for pool in pools:
            assert pool["pythonPackageSpec"]["pythonModule"] == "pmlv_utils.train"
            # every flag in the spec is one the trainer's parser accepts
            cli.build_parser().parse_args(["--job-dir", "x"] + pool["pythonPackageSpec"]["args"])
        cmd = cli.vertex_submit_command(name, path, "proj", "us-central1")
        assert cmd[:3] == ["gcloud", "ai", "hp-tuning-jobs" if name == "hparam" else "custom-jobs"]
    multi = yaml.safe_load(open(tmp_path / "gpus_multiple_machines.yaml"))["workerPoolSpecs"]
    assert len(multi) == 2  # chief pool + worker pool
    with pytest.raises(ValueError, match="bare bucket"):
        cli.render_vertex_config("cpu", "gs://b", str(tmp_path / "x.yaml"))


def test_job_dir_mapping(monkeypatch):
    from pmlv_utils.training import cli

    assert cli.local_job_dir("/tmp/job") == "/tmp/job"
    if not os.path.isdir("/gcs"):
        with pytest.raises(ValueError, match="FUSE"):
            cli.local_job_dir("gs://b/job")
    monkeypatch.setenv("AIP_MODEL_DIR", "/tmp/from_vertex")
    assert cli.build_parser().parse_args(["--input_topdir", "x"]).job_dir == "/tmp/from_vertex"


def test_train_config_is_frozen_and_checked():
    import dataclasses

    from pmlv_utils.training import cli

    config = training.TrainConfig(img_size="28", crop_ratio=None)
    assert config.img_size == 28 and config.crop_ratio == 0.75  # the model's default crop
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.img_size = 32
    assert config.replace(num_epochs=3).num_epochs == 3 and config.num_epochs == 15
    assert training.TrainConfig.from_dict({**config.to_dict(), "labels": ["a"]}) == config
    with pytest.raises(ValueError, match="training_loop"):
        training.TrainConfig(training_loop="fast")
    # the CLI's defaults are TrainConfig's
    flags = ["--job-dir", "x", "--input_topdir", "y", "--l2", "0.1", "--with_color_distort", "F"]
    args = cli.build_parser().parse_args(flags)
    assert cli.config_from_args(args) == training.TrainConfig(l2=0.1, with_color_distort=False)


def test_book_command_line_with_dash_pattern():
    import shlex

    from pmlv_utils.training import cli

    # the book's spelling: the shell passes -* as a word of its own, which argparse takes
    # for an option unless the parser joins it to --pattern
    book = (
        "python3 -m pmlv_utils.train --job-dir /tmp/flowers --input_topdir /tmp/tfr "
        '--pattern "-*" --num_epochs 3 --distribute cpu'
    )
    args = cli.build_parser().parse_args(shlex.split(book)[3:])
    assert args.pattern == "-*" and args.num_epochs == 3 and args.job_dir == "/tmp/flowers"
    for spelling in (["--pattern=-*"], ["--pattern", "-*"], ["--pattern", '"-*"']):
        args = cli.build_parser().parse_args(["--input_topdir", "x", *spelling])
        assert args.pattern == "-*", spelling
    assert cli.join_dash_values(["--pattern", "-0000*", "--resume"]) == [
        "--pattern=-0000*",
        "--resume",
    ]
    with pytest.raises(SystemExit):  # a flag is not taken as the pattern
        cli.build_parser().parse_args(["--input_topdir", "x", "--pattern", "--resume"])


def test_metrics_record_early_stopping(tiny, tmp_path, monkeypatch):
    folder, _ = tiny
    # only the first epoch counts as progress, so patience 1 stops after epoch 2
    monkeypatch.setattr(
        training.CheckpointAndEarlyStop,
        "_is_better",
        lambda self, logs: self.state["best_epoch"] is None,
    )
    m = run(tmp_path / "job", folder, num_epochs=6, patience=1, export=False)
    saved = json.loads((tmp_path / "job" / "metrics.json").read_text())
    for metrics in (m, saved):
        assert metrics["stopped_early"] is True
        assert metrics["best_epoch"] == 1 and metrics["epochs_run"] == 2
        assert metrics["patience"] == 1
        assert "early stop after epoch 2" in metrics["stop_reason"]
    full = run(tmp_path / "job2", folder, num_epochs=2, export=False, tensorboard=False)
    assert full["stopped_early"] is False and "ran all 2 epochs" in full["stop_reason"]
    assert not (tmp_path / "job2" / "tensorboard").exists()


@pytest.mark.parametrize("training_loop", ["fit", "custom"])
def test_tensorboard_logs(tiny, tmp_path, training_loop):
    folder, _ = tiny
    job = tmp_path / "job"
    m = run(job, folder, num_epochs=2, export=False, training_loop=training_loop)
    log_dir = training.tensorboard_dir(job)
    assert training.tensorboard.event_files(log_dir), "no event file"
    scalars = training.read_scalars(log_dir)
    for run_name, prefix in (("train", ""), ("validation", "val_")):
        for metric in ("loss", "accuracy"):
            steps = scalars[run_name][f"epoch_{metric}"]
            assert [s for s, _ in steps] == [0, 1]
            np.testing.assert_allclose(
                [v for _, v in steps], m["history"][f"{prefix}{metric}"], rtol=1e-5
            )
    tags = training.tensorboard.read_tags(log_dir)
    assert tags["train"]["input_images"] == "images"
    assert tags["train"]["augmented_views"] == "images"
    assert tags["validation"]["confusion_matrix"] == "images"
    if training_loop == "fit":
        assert "__graph__" in tags["train"]  # the Keras train graph
    assert set(m["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_tensorboard_server_serves_the_scalars(tiny, tmp_path):
    from pmlv_utils.training import tensorboard as tb

    try:
        tb.tensorboard_command()
    except FileNotFoundError:
        pytest.skip("the tensorboard package is not installed")
    import urllib.request

    folder, _ = tiny
    job = tmp_path / "job"
    run(job, folder, num_epochs=1, export=False)
    with tb.start_tensorboard(tb.tensorboard_dir(job)) as server:
        deadline = time.monotonic() + 60
        while True:  # TensorBoard loads the logs in the background
            with urllib.request.urlopen(server.url + "/data/plugin/scalars/tags") as response:
                tags = json.loads(response.read())
            if tags.get("train") or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert "epoch_accuracy" in tags["train"] and "epoch_accuracy" in tags["validation"]
    assert server.process.poll() is not None  # stopped


def test_ablation_variants_switch_one_augmentation_each():
    from pmlv_utils.training import ablation

    base = training.TrainConfig()
    configs = {n: ablation.variant_config(base, c) for n, c in training.ABLATION_VARIANTS.items()}
    assert configs["no augmentation"].augment is False
    flip, crop, colour = configs["flip only"], configs["crop only"], configs["colour only"]
    assert (flip.flip, flip.crop_ratio, flip.with_color_distort) == (True, 1.0, False)
    assert (crop.flip, crop.crop_ratio, crop.with_color_distort) == (False, 0.75, False)
    assert (colour.flip, colour.crop_ratio, colour.with_color_distort) == (False, 1.0, True)
    assert configs["all"] == base
    # "crop" keeps a crop when the base config has none
    assert ablation.variant_config(base.replace(crop_ratio=1.0), {"crop": True}).crop_ratio == 0.75


def test_augmentation_ablation_table(tiny, tmp_path):
    folder, _ = tiny
    variants = {k: training.ABLATION_VARIANTS[k] for k in ("no augmentation", "all")}
    runs = training.augmentation_ablation(
        str(tmp_path / "abl"),
        str(folder),
        str(folder / "dict.txt"),
        training.TrainConfig(img_size=28, batch_size=8, num_epochs=2),
        seeds=(1, 2),
        variants=variants,
        log=lambda *a: None,
    )
    assert list(runs["variant"]) == ["no augmentation"] * 2 + ["all"] * 2
    assert runs["test_accuracy"].between(0, 1).all() and (runs["epochs_run"] == 2).all()
    saved = json.loads((tmp_path / "abl" / "ablation_runs.json").read_text())
    assert len(saved) == 4 and saved[0]["history"]["val_accuracy"]
    assert (tmp_path / "abl" / "no_augmentation" / "seed_2" / "metrics.json").exists()
    summary = training.ablation_summary(runs)
    assert list(summary.index) == ["no augmentation", "all"]
    row = summary.loc["all"]
    assert row["seeds"] == 2 and row["test_min"] <= row["test_mean"] <= row["test_max"]
    assert "±" in row["test_accuracy"]
    fig = training.plot_overfitting(runs)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) >= 4


def test_learner_defaults_feed_the_model_at_least_128_px():
    import inspect

    from pmlv_utils import course, workspace

    assert workspace.DEFAULT_IMG_SIZE >= 128
    assert training.TrainConfig().img_size == workspace.DEFAULT_IMG_SIZE
    args = training.cli.build_parser().parse_args(["--input_topdir", "x"])
    assert args.img_size == workspace.DEFAULT_IMG_SIZE
    for fn in (course.run_course, workspace.ensure_trained_model):
        assert inspect.signature(fn).parameters["img_size"].default == workspace.DEFAULT_IMG_SIZE
