"""The kfp pipeline: compiled YAML, content fingerprints, the watcher, and local runs on tiny data.

The local runs share one workspace (with tests/test_course.py) so that only the first one
trains; later ones exercise kfp's cache.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pmlv_utils import pipeline

# --------------------------------------------------------------------------------------
# Compiled pipeline
# --------------------------------------------------------------------------------------


def test_compiled_yaml_loads_and_lists_the_steps(tmp_path):
    path = pipeline.compile_pipeline(tmp_path / "flowers_pipeline.yaml")
    component = pipeline.load_compiled(path)
    assert component.name == pipeline.PIPELINE_NAME
    assert pipeline.pipeline_steps(path) == [pipeline.FINGERPRINT_STEP, *pipeline.STEPS]
    nodes, edges = pipeline.pipeline_graph(path)
    assert (pipeline.EXPLANATION_GATE, "deploy-model") in edges  # deploy only behind the gates
    assert ("evaluate-model", pipeline.GATE_NAME) in edges
    inputs = set(component.component_spec.inputs)
    assert {"data_csv", "epochs", "img_size", "accuracy_threshold", "images_per_class"} <= inputs
    text = path.read_text()
    assert pipeline.BASE_IMAGE in text and "/tmp/" not in text and "/work/" not in text


def test_committed_yaml_is_current(tmp_path):
    """10_mlops/pipeline/flowers_pipeline.yaml is what the code compiles to (recompile if not)."""
    fresh = pipeline.compile_pipeline(tmp_path / "fresh.yaml").read_text()
    assert pipeline.COMPILED_PIPELINE.is_file(), (
        "run pipeline.compile_pipeline() and commit the YAML"
    )
    assert pipeline.COMPILED_PIPELINE.read_text() == fresh, (
        "the committed pipeline YAML is stale: run pipeline.compile_pipeline() (or notebook 10a)"
    )
    assert pipeline.pipeline_steps(pipeline.COMPILED_PIPELINE)[1:] == list(pipeline.STEPS)


def test_package_imports_in_a_steps_process():
    """Each step's process imports pmlv_utils.pipeline in kfp's runtime mode (a reduced kfp.dsl)."""
    code = (
        "import sys, kfp.dsl.executor_main; import pmlv_utils.pipeline; "
        "print('tensorflow' in sys.modules)"
    )
    env = {**os.environ, "_KFP_RUNTIME": "true"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"  # and it stays free of TensorFlow (15 s to import)


def test_load_compiled_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no compiled pipeline"):
        pipeline.load_compiled(tmp_path / "nope.yaml")


def test_compiled_gates_are_nested_accuracy_then_explanations(tmp_path):
    path = pipeline.compile_pipeline(tmp_path / "flowers_pipeline.yaml")
    nodes, edges = pipeline.pipeline_graph(path)
    assert ("evaluate-model", "explain-check") in edges
    assert (pipeline.ACCURACY_GATE, pipeline.EXPLANATION_GATE) in edges
    assert (pipeline.EXPLANATION_GATE, "deploy-model") in edges
    assert (pipeline.ACCURACY_GATE, "deploy-model") not in edges  # not past one gate alone
    table = pipeline.describe_steps(path)
    assert table.loc["deploy-model", "runs"] == "if accuracy-gate and explanation-gate pass"
    assert "explanation_metrics" in table.loc["explain-check", "outputs"]
    inputs = set(pipeline.load_compiled(path).component_spec.inputs)
    assert {"background_threshold", "probe_dir", "probe_per_class"} <= inputs


# --------------------------------------------------------------------------------------
# The deploy gate's decision (fast)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accuracy, share, deploy, failed",
    [
        (0.90, 0.40, True, ()),
        (0.70, 0.55, True, ()),  # both limits are inclusive
        (0.69, 0.40, False, ("accuracy-gate",)),
        (0.95, 0.56, False, ("explanation-gate",)),  # accurate, but looks at the background
        (0.50, 0.80, False, ("accuracy-gate", "explanation-gate")),
    ],
)
def test_deploy_decision_needs_accuracy_and_a_low_background_share(accuracy, share, deploy, failed):
    decision = pipeline.deploy_decision(accuracy, share, 0.7, 0.55)
    assert decision.deploy is deploy and decision.failed == failed
    assert decision.reason.startswith("deployed: " if deploy else "refused: ")


def test_deploy_decision_reason_names_the_numbers():
    refused = pipeline.deploy_decision(0.91, 0.612, 0.5, 0.55).reason
    assert refused == (
        "refused: background share 0.612 > threshold 0.55 (test accuracy 0.910 >= 0.5 passed)"
    )
    low = pipeline.deploy_decision(0.4, 0.3, 0.5, 0.55).reason
    assert "test accuracy 0.400 < threshold 0.5" in low and "background share 0.300 <= 0.55" in low
    assert "no background share" in pipeline.deploy_decision(0.9, None, 0.5, 0.55).reason
    assert not pipeline.deploy_decision(None, 0.1, 0.5, 0.55).deploy
    with pytest.raises(ValueError, match="nan"):
        pipeline.deploy_decision(0.9, float("nan"), 0.5, 0.55)


def test_explain_check_step_on_a_tiny_model(tiny_assets, tmp_path):
    """The step on an untrained 32 px model and a small probe set with masks."""
    import numpy as np

    from pmlv_utils import explain

    probe = pipeline.probe_data_dir("", 12, 3, str(tmp_path), "easy")
    result = pipeline.explain_check_step(str(tiny_assets["export"]), probe, per_class=2)
    assert set(result["by_class"]) == set(tiny_assets["labels"])
    assert result["background_share"] == max(result["by_class"].values())
    assert result["by_class"][result["worst_class"]] == result["background_share"]
    assert 0.0 < result["background_area"] < 1.0 and result["probe_images"] <= 10
    model = explain.ExplainableModel.from_saved_model(tiny_assets["export"])
    probes = explain.load_examples(probe, 32, "test", per_class=2)
    maps = explain.explain(probes.images, np.full(len(probes.images), 4), "ig", model, steps=16)
    direct = explain.pooled_background_share(maps.attributions, probes.masks, model.field_of_view)
    assert result["by_class"]["tulips"] == pytest.approx(direct, abs=1e-6)


def test_explain_check_refuses_a_probe_set_with_other_labels(tiny_assets, tmp_path):
    probe = pipeline.probe_data_dir("", 12, 3, str(tmp_path), "easy")
    labels = probe / "flower_photos" / "dict.txt"
    labels.write_text("\n".join(reversed(labels.read_text().split())) + "\n")  # other ids
    with pytest.raises(ValueError, match="the probe set's labels .* are not the model's"):
        pipeline.explain_check_step(str(tiny_assets["export"]), probe, per_class=2)


# --------------------------------------------------------------------------------------
# Fingerprints and the watcher (fast)
# --------------------------------------------------------------------------------------


def _tiny_csv(folder: Path, n: int = 3) -> Path:
    (folder / "daisy").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        (folder / "daisy" / f"{i}.jpg").write_bytes(b"fake jpeg %d" % i)
        lines.append(f"daisy/{i}.jpg,daisy")
    (folder / "dict.txt").write_text("daisy\ntulips\n")
    csv = folder / "all_data.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def test_data_fingerprint_follows_contents_not_names(tmp_path):
    csv = _tiny_csv(tmp_path)
    first = pipeline.data_fingerprint(str(csv))
    assert first == pipeline.data_fingerprint(str(csv))
    (tmp_path / "daisy" / "1.jpg").write_bytes(b"another image, same name")
    second = pipeline.data_fingerprint(str(csv))
    assert second != first
    with csv.open("a") as f:
        f.write("daisy/0.jpg,tulips\n")
    assert pipeline.data_fingerprint(str(csv)) not in (first, second)
    assert pipeline.data_fingerprint(str(tmp_path / "missing.csv")) == "missing"


def _closure_modules(step: str) -> set[str]:
    """The pmlv_utils modules (or packages) whose files a step's code fingerprint covers."""
    root = pipeline.fingerprints.PACKAGE_ROOT
    paths = pipeline.module_closure(pipeline.STEP_MODULES[step])
    return {p.relative_to(root).parts[0].removesuffix(".py") for p in paths}


def test_code_fingerprint_covers_each_steps_modules():
    closure = _closure_modules("create-dataset")
    assert {"tfrecords", "dataset_files", "synthetic", "workspace"} <= closure
    assert "training" not in closure  # editing the trainer keeps the dataset step cached
    train = _closure_modules("train-model")
    assert {"training", "model", "preprocess", "ingest"} <= train
    values = {s: pipeline.code_fingerprint(s) for s in pipeline.STEP_MODULES}
    assert values == {s: pipeline.code_fingerprint(s) for s in pipeline.STEP_MODULES}
    assert len(set(values.values())) == len(values)


def test_module_closure_hashes_packages_whole(tmp_path, monkeypatch):
    root = tmp_path / "pmlv_utils"
    files = {
        "alpha/__init__.py": "from .core import run\n",
        "alpha/core.py": "def run():\n    from .. import beta  # inside a function\n",
        "beta.py": "from pmlv_utils.gamma import thing\nimport numpy\n",
        "gamma/__init__.py": "",
        "gamma/sub/__init__.py": "",
        "gamma/sub/deep.py": "from ... import delta\nfrom ...delta import f\n",
        "delta.py": "from . import workspace\n",
        "workspace.py": "from . import omega  # opaque: not followed\n",
        "omega.py": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.setattr(pipeline.fingerprints, "PACKAGE_ROOT", root)
    closure = {p.relative_to(root).as_posix() for p in pipeline.module_closure(["alpha"])}
    assert closure == set(files) - {"omega.py"}


def test_watch_folder_runs_once_when_new_data_has_settled(tmp_path):
    _tiny_csv(tmp_path)
    known = pipeline.folder_fingerprint(tmp_path)
    runs = []

    def new_images_land_at_poll_2(seconds, polls=iter(range(1, 100))):
        if next(polls) == 2:
            (tmp_path / "daisy" / "new.jpg").write_bytes(b"new image")

    events = pipeline.watch_folder(
        tmp_path,
        on_change=lambda folder: runs.append(folder) or "ran",
        known=known,
        poll_seconds=0,
        max_polls=8,
        sleep=new_images_land_at_poll_2,
    )
    actions = [e["action"] for e in events]
    assert actions[:2] == ["no change", "no change"]
    assert actions[2].startswith("new data: wait")
    assert actions[3].startswith("new data, stable") and events[3]["result"] == "ran"
    assert runs == [tmp_path] and len(events) == 4  # stops after max_triggers=1


def test_watch_folder_without_change_never_runs(tmp_path):
    _tiny_csv(tmp_path)
    events = pipeline.watch_folder(
        tmp_path,
        on_change=lambda f: pytest.fail("ran"),
        poll_seconds=0,
        max_polls=3,
        sleep=lambda s: None,
    )
    assert [e["action"] for e in events] == ["no change"] * 3


def test_describe_submission_without_project_says_why(tmp_path):
    text = pipeline.describe_submission(pipeline.COMPILED_PIPELINE, {"epochs": 3})
    assert "nowhere: set PROJECT and BUCKET" in text and "epochs = 3" in text
    with pytest.raises(ValueError, match="project and bucket"):
        pipeline.submit(pipeline.COMPILED_PIPELINE, {}, project=None)


# --------------------------------------------------------------------------------------
# Local runs (kfp local runner, subprocesses)
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_local_run_deploys_then_rerun_reuses_the_cached_dataset(tiny_ws, tiny_pipeline_settings):
    root = pipeline.default_root(tiny_ws)
    gates_off = dict(accuracy_threshold=0.0, background_threshold=1.0)
    first = pipeline.run_local(root, workspace=tiny_ws, **gates_off, **tiny_pipeline_settings)
    status = {s.step: s.status for s in first.steps}
    assert status["fingerprint-inputs"] == "ran" and status["deploy-model"] == "ran"
    assert all(v in ("ran", "cached") for v in status.values()), status
    assert first.deployed and 0.0 <= first.accuracy <= 1.0
    assert 0.0 <= first.background_share <= 1.0
    logged = first.outputs["explanation_metrics"].metadata
    assert logged["background_share"] == pytest.approx(first.background_share)
    assert {f"background_share_{c}" for c in ("daisy", "tulips")} <= set(logged)
    assert first.gate_message.startswith("deployed: ")
    deployed = first.deploy_dir
    assert (deployed / "saved_model" / "saved_model.pb").is_file()
    assert (deployed / pipeline.TFLITE_NAME).stat().st_size > 1000
    counts = first.outputs["tfrecords"].metadata
    assert (
        counts["train"] > 0
        and counts["train"] + counts["valid"] + counts["test"]
        == 5 * tiny_pipeline_settings["images_per_class"]
    )
    dataset_code = pipeline.code_fingerprint("create-dataset")

    second = pipeline.run_local(root, workspace=tiny_ws, **gates_off, **tiny_pipeline_settings)
    status = {s.step: s.status for s in second.steps}
    assert status["fingerprint-inputs"] == "ran"  # never cached: it must look at the data
    assert status["deploy-model"] == "ran"  # never cached: it has effects outside its artifact
    if (
        pipeline.code_fingerprint("create-dataset") == dataset_code
    ):  # nobody edited its code meanwhile
        assert status["create-dataset"] == "cached"
        assert second.outputs["tfrecords"].uri == first.outputs["tfrecords"].uri
        assert second.step("create-dataset").seconds == 0.0
    else:
        assert status["create-dataset"] == "ran"
    assert second.accuracy == pytest.approx(first.accuracy) or status["train-model"] == "ran"
    assert second.table().loc["deploy-model", "status"] == "ran"


@pytest.mark.slow
def test_impossible_threshold_stops_at_the_gate_with_nothing_deployed(
    tiny_ws, tmp_path, tiny_pipeline_settings
):
    deploy_dir = tmp_path / "endpoint"
    run = pipeline.run_local(
        pipeline.default_root(tiny_ws),
        workspace=tiny_ws,
        accuracy_threshold=1.01,
        deploy_dir=deploy_dir,
        progress=False,
        **tiny_pipeline_settings,
    )
    assert not run.deployed
    assert run.step("deploy-model").status == "skipped"
    assert pipeline.GATE_NAME in run.step("deploy-model").note
    assert run.step("evaluate-model").status in ("ran", "cached")
    assert "refused: test accuracy" in run.gate_message and "< threshold 1.01" in run.gate_message
    assert run.step("deploy-model").note == f"{pipeline.GATE_NAME}: {run.gate_message}"
    assert not deploy_dir.exists()


@pytest.mark.slow
def test_explanation_gate_refuses_an_accurate_enough_model(
    tiny_ws, tmp_path, tiny_pipeline_settings
):
    """Accuracy passes (threshold 0), the background share cannot be <= 0: refused, and the
    reason is the explanation check's number (every step but the deploy comes from the cache)."""
    deploy_dir = tmp_path / "endpoint"
    run = pipeline.run_local(
        pipeline.default_root(tiny_ws),
        workspace=tiny_ws,
        accuracy_threshold=0.0,
        background_threshold=0.0,
        deploy_dir=deploy_dir,
        progress=False,
        **tiny_pipeline_settings,
    )
    assert not run.deployed and run.step("deploy-model").status == "skipped"
    assert run.decision.failed == (pipeline.EXPLANATION_GATE,)
    assert run.step("deploy-model").note.startswith(f"{pipeline.EXPLANATION_GATE}: refused")
    assert run.gate_message.startswith(
        f"refused: background share {run.background_share:.3f} > threshold 0.0"
    )
    assert run.step("explain-check").status in ("ran", "cached")
    assert not deploy_dir.exists()


@pytest.mark.slow
def test_missing_csv_stops_at_the_dataset_step(tmp_path, tiny_pipeline_settings):
    missing = tmp_path / "no_such_folder" / "all_data.csv"
    deploy_dir = tmp_path / "endpoint"
    with pytest.raises(pipeline.PipelineStepError) as info:
        pipeline.run_local(
            tmp_path / "pipeline",
            workspace=tmp_path,
            data_csv=str(missing),
            deploy_dir=deploy_dir,
            progress=False,
            **tiny_pipeline_settings,
        )
    err = info.value
    assert err.step == "create-dataset"
    assert "FileNotFoundError" in err.cause and "data CSV does not exist" in err.cause
    assert str(missing) in err.cause
    status = {s.step: s.status for s in err.run.steps}
    assert status["create-dataset"] == "failed"
    assert all(status[s] == "not run" for s in pipeline.STEPS[1:])
    assert not deploy_dir.exists()
    assert "create-dataset" in err.run.log_path.read_text()


@pytest.mark.slow
def test_empty_csv_stops_at_the_dataset_step(tmp_path, tiny_pipeline_settings):
    data = tmp_path / "data"
    data.mkdir()
    (data / "all_data.csv").write_text("")
    (data / "dict.txt").write_text("daisy\ntulips\n")
    with pytest.raises(pipeline.PipelineStepError, match="no usable line") as info:
        pipeline.run_local(
            tmp_path / "pipeline",
            workspace=tmp_path,
            data_csv=str(data / "all_data.csv"),
            deploy_dir=tmp_path / "endpoint",
            progress=False,
            **tiny_pipeline_settings,
        )
    assert info.value.step == "create-dataset"
    assert not (tmp_path / "endpoint").exists()
