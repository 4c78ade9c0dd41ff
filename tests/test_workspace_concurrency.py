"""Workspace artifacts under races and crashes (issue 12, item 9), with real processes.

Two processes building the same artifact end with one consistent artifact; a reader never
sees a half-built one; a killed build leaves nothing that blocks or pollutes the next one;
a deploy switches in one step; logs are capped.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pmlv_utils import workspace

REPO = Path(__file__).resolve().parents[1]
PARTS = 20

BUILDER = """
import os, sys, time
from pmlv_utils import workspace
ws, log, seconds, rebuild = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"

def build(folder):
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
    for i in range(PARTS):
        (folder / f"part{i:02d}.txt").write_text(str(os.getpid()))
        time.sleep(seconds / PARTS)

print(workspace.build_or_reuse("thing", {"n": 1}, build, workspace=ws, rebuild=rebuild,
                               verbose=False))
""".replace("PARTS", str(PARTS))


def _start(ws: Path, log: Path, seconds: float, rebuild: bool = False) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-c", BUILDER, str(ws), str(log), str(seconds), "1" if rebuild else "0"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_consistent(folder: Path) -> set[str]:
    """The artifact is complete and made by ONE build: returns the set of builder pids."""
    assert workspace.is_complete(folder), sorted(p.name for p in folder.iterdir())
    parts = sorted(folder.glob("part*.txt"))
    assert len(parts) == PARTS
    return {p.read_text() for p in parts}


def _read_snapshot(folder: Path) -> dict[str, str]:
    """The files of ``folder`` as one reader sees them: the folder opened once, its files read
    through that handle (a folder swapped in meanwhile is not mixed in)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        files = {}
        for name in os.listdir(fd):
            with open(os.open(name, os.O_RDONLY, dir_fd=fd)) as f:
                files[name] = f.read()
        return files
    finally:
        os.close(fd)


class Watcher(threading.Thread):
    """Looks at the artifact folder all the time: whenever it exists it must be complete and
    made by one build. (Files of a replaced artifact may vanish while it is read: that reader
    started on the old version, which a rebuild deletes.)"""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder, self.seen, self.problems, self.stop = folder, 0, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                files = _read_snapshot(self.folder)
            except FileNotFoundError:
                files = None
            if files is not None:
                self.seen += 1
                parts = {v for k, v in files.items() if k.startswith("part")}
                if workspace.MARKER not in files or len(parts) != 1:
                    self.problems.append(f"half-built or mixed: {sorted(files)}"[:200])
            time.sleep(0.005)


def _race(tmp_path: Path, rebuild: bool):
    log = tmp_path / "builds.log"
    folder = workspace.artifact_dir("thing", {"n": 1}, tmp_path)
    watcher = Watcher(folder)
    watcher.start()
    procs = [_start(tmp_path, log, 1.5, rebuild) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    watcher.stop.set()
    watcher.join()
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert {out.strip() for out, _ in outs} == {str(folder)}
    return folder, log.read_text().split(), watcher


def test_two_processes_build_one_artifact_once(tmp_path):
    folder, builders, watcher = _race(tmp_path, rebuild=False)
    assert len(builders) == 1  # the second process waited on the lock, then reused it
    assert _check_consistent(folder) == set(builders)
    assert watcher.seen > 0 and watcher.problems == []
    assert not list(tmp_path.glob(".thing-*.build-*"))


def test_two_processes_rebuilding_end_with_one_consistent_artifact(tmp_path):
    def first(folder):
        (folder / "old.txt").write_text("old")
        for i in range(PARTS):
            (folder / f"part{i:02d}.txt").write_text("first")

    workspace.build_or_reuse("thing", {"n": 1}, first, tmp_path, verbose=False)
    folder, builders, watcher = _race(tmp_path, rebuild=True)
    assert len(builders) == 2  # one after the other, never both at once
    assert _check_consistent(folder) == {builders[-1]}  # the last build, whole
    assert not (folder / "old.txt").exists()
    assert watcher.problems == []  # the replacement was one step: never missing, never mixed
    assert not list(tmp_path.glob(".thing-*.build-*")) + list(tmp_path.glob(".thing-*.old-*"))


def test_a_killed_build_does_not_block_or_pollute_the_next(tmp_path):
    log = tmp_path / "builds.log"
    victim = _start(tmp_path, log, 60.0)
    deadline = time.time() + 60
    while not (log.exists() and log.read_text().strip()) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert list(tmp_path.glob(".thing-*.build-*")), "the killed build left its temporary folder"
    folder = workspace.artifact_dir("thing", {"n": 1}, tmp_path)
    assert not folder.exists()  # nothing half-built under the artifact's name
    survivor = _start(tmp_path, log, 0.2)
    out, err = survivor.communicate(timeout=60)
    assert survivor.returncode == 0, err[-2000:]
    assert _check_consistent(folder) == {str(survivor.pid)}
    assert not list(tmp_path.glob(".thing-*.build-*"))  # the leftover was removed


def test_swap_in_switches_a_deploy_in_one_step(tmp_path):
    target = tmp_path / "deployed"
    versions = []
    for v in range(4):
        source = tmp_path / f"build{v}"
        source.mkdir()
        (source / "a.txt").write_text(f"v{v}")
        (source / "b.txt").write_text(f"v{v}")
        versions.append(source)
    target.mkdir()  # an old-style real folder is moved aside the first time
    (target / "a.txt").write_text("before")
    (target / "b.txt").write_text("before")
    seen, problems, stop = set(), [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                files = _read_snapshot(target)
            except FileNotFoundError as err:  # the target itself missing: never allowed
                problems.append(str(err))
                continue
            seen.add(files.get("a.txt"))
            if files.get("a.txt") != files.get("b.txt"):
                problems.append(files)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    for source in versions:
        workspace.swap_in(source, target)
        time.sleep(0.05)
    stop.set()
    reader.join()
    assert target.is_symlink() and (target / "a.txt").read_text() == "v3"
    assert problems == [] and {"v3"} <= seen
    releases = sorted(p.name for p in workspace.releases_dir(target).iterdir())
    assert len(releases) == workspace.KEEP_RELEASES  # older releases pruned


def test_prune_keeps_the_newest(tmp_path):
    for i in range(15):
        log = tmp_path / f"mlflow-serve-{8000 + i}.log"
        log.write_text("x")
        os.utime(log, (1_000_000 + i, 1_000_000 + i))
    (tmp_path / "other.txt").write_text("kept")
    removed = workspace.prune(tmp_path, "mlflow-serve-*.log", keep=10)
    assert len(removed) == 5 and (tmp_path / "other.txt").exists()
    kept = sorted(p.name for p in tmp_path.glob("mlflow-serve-*.log"))
    assert kept == [f"mlflow-serve-{8000 + i}.log" for i in range(5, 15)]
