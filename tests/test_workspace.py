"""The workspace builds an artifact once, reuses it, and redoes an interrupted build."""

import json
from pathlib import Path

import pytest

from pmlv_utils import workspace


def test_build_once_then_reuse(tmp_path):
    calls = []

    def build(folder: Path):
        calls.append(folder)
        (folder / "data.txt").write_text("x")

    a = workspace.build_or_reuse("thing", {"n": 1}, build, workspace=tmp_path, verbose=False)
    b = workspace.build_or_reuse("thing", {"n": 1}, build, workspace=tmp_path, verbose=False)
    assert a == b and len(calls) == 1 and (a / "data.txt").read_text() == "x"
    c = workspace.build_or_reuse("thing", {"n": 2}, build, workspace=tmp_path, verbose=False)
    assert c != a and len(calls) == 2


def test_interrupted_build_is_redone(tmp_path):
    def broken(folder: Path):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        workspace.build_or_reuse("thing", {"n": 1}, broken, workspace=tmp_path, verbose=False)
    folder = workspace.artifact_dir("thing", {"n": 1}, tmp_path)
    assert folder.exists() and not workspace.is_complete(folder)

    def good(folder: Path):
        assert not (folder / "half.txt").exists(), "a rebuild starts from an empty folder"
        (folder / "ok.txt").write_text("ok")

    again = workspace.build_or_reuse("thing", {"n": 1}, good, workspace=tmp_path, verbose=False)
    assert workspace.is_complete(again)


def test_settings_key_is_order_independent():
    assert workspace.settings_key({"a": 1, "b": 2}) == workspace.settings_key({"b": 2, "a": 1})


def test_display_path_hides_machine_paths_in_notebook_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("PMLV_WORKSPACE", str(tmp_path))
    monkeypatch.setenv(workspace.NOTEBOOK_PATHS_ENV, "1")
    shown = workspace.display_path(tmp_path / "flowers-abc" / "x.jpg")
    assert shown == "$PMLV_WORKSPACE/flowers-abc/x.jpg"
    assert workspace.display_path(workspace.REPO_ROOT / "README.md") == "./README.md"


def test_display_path_is_a_real_path_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("PMLV_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv(workspace.NOTEBOOK_PATHS_ENV, raising=False)
    image = tmp_path / "ws" / "flowers-abc" / "x.jpg"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert workspace.display_path(image) == "ws/flowers-abc/x.jpg"  # inside the current folder
    assert Path(workspace.display_path(image)).exists()
    monkeypatch.chdir(image.parent / "..")
    assert workspace.display_path(tmp_path) == str(tmp_path)  # outside it: absolute
    assert workspace.display_path(".") == "."


def test_import_has_no_side_effects():
    import subprocess
    import sys

    code = (
        "import pmlv_utils, pmlv_utils.workspace, sys; "
        "print(sorted(m for m in sys.modules if m.startswith('tensorflow'))[:1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]" and out.stderr == ""


def test_display_path_keeps_urls():
    assert (
        workspace.display_path("gs://bucket/flower_photos/all_data.csv")
        == "gs://bucket/flower_photos/all_data.csv"
    )


def test_easy_and_hard_datasets_never_share_a_folder(tmp_path):
    easy = workspace.ensure_dataset(2, 3, workspace=tmp_path, difficulty="easy")
    hard = workspace.ensure_dataset(2, 3, workspace=tmp_path, difficulty="hard")
    assert easy != hard
    default = workspace.ensure_dataset(2, 3, workspace=tmp_path)
    assert default == (hard if workspace.DEFAULT_DIFFICULTY == "hard" else easy)
    marker = json.loads((easy / workspace.MARKER).read_text())
    assert marker["difficulty"] == "easy"
    info = (hard / "image_info.csv").read_text().splitlines()
    assert "variety" in info[0] and len(info) == 1 + 5 * 2
    with pytest.raises(ValueError, match="difficulty must be one of"):
        workspace.ensure_dataset(2, 3, workspace=tmp_path, difficulty="medium")
    built = [p.name.split("-")[0] for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert built == ["flowers", "flowers"]  # (the dot files are the artifacts' locks)
