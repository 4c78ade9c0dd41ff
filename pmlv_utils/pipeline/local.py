"""Running the pipeline locally, in kfp's local runner, and reading what a run did.

    run_local          run it: every step a subprocess of this Python (no Docker needed)
    PipelineRun        what a run did: each step's status and time, outputs, the log
    StepResult         one step of a run: ran / cached / skipped / failed / not run
    PipelineStepError  a step failed: which one and why (the exception it raised)
    confusion_matrix   (labels, matrix) of a ClassificationMetrics artifact
    latest_runs        the run folders under a pipeline root
    default_root       <workspace>/pipeline

kfp's local runner reports through prints and log records only; ``_RunTracker`` reads them as
they come (step starts and ends, cache hits, the gate's skip) to report progress and to find the
exception a failed step raised.

Version notes (kfp 2.17): ``SubprocessRunner(use_venv=False)`` is the only local runner that
works here (the DockerRunner needs a Docker engine, which the course machines do not have); the
local cache (``enable_caching``, kfp >= 2.17) is keyed on input values only (hence the
fingerprints); kfp warns about a "non-Python base image" for every component (silenced).
"""

import contextlib
import inspect
import io
import logging
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
from kfp import local as kfp_local

from .. import workspace as ws
from .fingerprints import FINGERPRINT_OUTPUTS
from .gate import GateDecision, deploy_decision
from .graph import ALL_TASKS, LOCAL_PARAMETERS, STEPS, make_pipeline

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_CACHE_HIT = re.compile(r"Task (\S+) cache hit")
_SKIPPED = re.compile(r"Skipping conditional task (\S+)")
_EXCEPTION = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit)): (.+)$")


@dataclass
class StepResult:
    step: str
    status: str  # "ran", "cached", "skipped", "failed", "not run"
    seconds: float = 0.0
    note: str = ""


class PipelineStepError(RuntimeError):
    """A step of a local run failed; ``step`` and ``cause`` say which and why."""

    def __init__(self, step: str, cause: str, run: "PipelineRun"):
        self.step, self.cause, self.run = step, cause, run
        super().__init__(
            f"pipeline stopped at step '{step}': {cause} "
            f"(full log: {ws.display_path(run.log_path)})"
        )


@dataclass
class PipelineRun:
    """What a local run did: each step's status and time, the outputs, where things are."""

    root: Path
    log_path: Path
    parameters: dict
    steps: list[StepResult]
    seconds: float
    run_dir: Path | None = None
    outputs: dict = field(default_factory=dict)
    step_logs: dict = field(default_factory=dict)

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.step == name)

    @property
    def deployed(self) -> bool:
        return self.step("deploy-model").status == "ran"

    @property
    def deploy_dir(self) -> Path | None:
        return Path(self.parameters["deploy_dir"]) if self.parameters.get("deploy_dir") else None

    @property
    def accuracy(self) -> float | None:
        return self.outputs.get("accuracy")

    @property
    def background_share(self) -> float | None:
        """explain-check's number: the share of the IG evidence off the flowers (worst class)."""
        return self.outputs.get("background_share")

    @property
    def decision(self) -> GateDecision:
        """What the two gates decided on this run's numbers, and why (gate.deploy_decision)."""
        return deploy_decision(
            self.accuracy,
            self.background_share,
            self.parameters["accuracy_threshold"],
            self.parameters["background_threshold"],
        )

    @property
    def gate_message(self) -> str:
        return self.decision.reason

    @property
    def fingerprints(self) -> dict[str, str]:
        """The hashes ``fingerprint-inputs`` computed: data_version and each step's code."""
        return {k: self.outputs[k] for k in FINGERPRINT_OUTPUTS if k in self.outputs}

    def table(self):
        """The steps as a pandas DataFrame (step, status, seconds, note)."""
        return pd.DataFrame([vars(s) for s in self.steps]).set_index("step")

    def artifact_paths(self) -> dict[str, str]:
        """Where each output artifact is, as shown to a learner."""
        return {
            name: ws.display_path(value.path)
            for name, value in self.outputs.items()
            if hasattr(value, "uri")
        }


class _RunTracker(io.TextIOBase):
    """Sees what kfp's local runner prints (and logs): step starts, ends, cache hits, skips."""

    def __init__(self, log_file, progress, echo: bool):
        self.console = sys.stdout  # where this process printed before kfp's output was redirected
        self.log_file, self.progress = log_file, progress
        self.echo = self.console if echo else None
        self.results: dict[str, StepResult] = {}
        self.started: dict[str, float] = {}
        self.lines: dict[str, list[str]] = {}
        self.current: str | None = None
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log_file.write(text)
        if self.echo is not None:
            self.echo.write(text)
        self._partial += text
        *complete, self._partial = self._partial.split("\n")
        for line in complete:
            self._line(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log_file.flush()

    def _say(self, message: str) -> None:
        if callable(self.progress):
            self.progress(message)
        elif self.progress:
            self.console.write(message + "\n")
            self.console.flush()

    @staticmethod
    def _number(step: str) -> str:
        return f"[{ALL_TASKS.index(step)}/{len(STEPS)}]" if step in ALL_TASKS else "[-]"

    def _line(self, line: str) -> None:
        if m := _EXECUTING.search(line):
            self.current = m.group(1)
            self.started[self.current] = time.perf_counter()
            self.lines[self.current] = []
            self._say(f"{self._number(self.current)} {self.current}: running ...")
        elif m := _FINISHED.search(line):
            self._finished(m.group(1), m.group(2))
            self.current = None
        elif self.current is not None:
            self.lines[self.current].append(line)

    def _finished(self, step: str, state: str) -> None:
        seconds = time.perf_counter() - self.started.get(step, time.perf_counter())
        indent = " " * len(self._number(step))
        if state == "SUCCESS":
            self.results[step] = StepResult(step, "ran", seconds)
            self._say(f"{indent} {step}: done in {seconds:.1f} s")
            return
        causes = [
            f"{e.group(1)}: {e.group(2)}"
            for text in self.lines.get(step, [])
            if (e := _EXCEPTION.match(text))
        ]
        cause = causes[-1] if causes else f"the step exited with status {state}"
        self.results[step] = StepResult(step, "failed", seconds, cause)
        self._say(f"{indent} {step}: FAILED after {seconds:.1f} s: {cause}")

    def record(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.log_file.write(f"[kfp] {message}\n")
        if m := _CACHE_HIT.search(message):
            step = m.group(1)
            self.results[step] = StepResult(step, "cached", 0.0, "inputs unchanged: outputs reused")
            self._say(
                f"{self._number(step)} {step}: cached (inputs unchanged since an earlier run)"
            )
        elif (m := _SKIPPED.search(message)) and m.group(1).startswith("condition"):
            if "deploy-model" not in self.results:  # the outer gate, or the inner one
                self.results["deploy-model"] = StepResult(
                    "deploy-model", "skipped", 0.0, "a deploy gate did not pass"
                )
                self._say(f"{self._number('deploy-model')} deploy-model: skipped by a gate")


class _RecordHandler(logging.Handler):
    def __init__(self, tracker: _RunTracker):
        super().__init__(logging.INFO)
        self.tracker = tracker

    def emit(self, record: logging.LogRecord) -> None:
        self.tracker.record(record)


@contextlib.contextmanager
def _capture(tracker: _RunTracker):
    """Route kfp's prints (stdout) and log records (root logger, INFO) to ``tracker``."""
    root = logging.getLogger()
    handler = _RecordHandler(tracker)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(tracker):
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def default_root(workspace=None) -> Path:
    """Where local runs keep their outputs, cache and logs: ``<workspace>/pipeline``."""
    return ws.workspace_dir(workspace) / "pipeline"


def _local_parameters(flowers_pipeline, settings: dict) -> dict:
    """The pipeline parameters of a local run: ``settings`` (names from ``LOCAL_PARAMETERS``)
    over the pipeline's own defaults, each as its parameter's type (None or a Path: a string)."""
    unknown = sorted(set(settings) - set(LOCAL_PARAMETERS))
    if unknown:
        raise TypeError(f"run_local() got unexpected keyword arguments {unknown}")
    signature = inspect.signature(flowers_pipeline.pipeline_func, eval_str=True).parameters
    parameters = {}
    for name in LOCAL_PARAMETERS:
        value = settings.get(name, signature[name].default)
        kind = signature[name].annotation
        parameters[name] = kind(value or "") if kind is str else kind(value)
    return parameters


def _execute(
    root: Path, flowers_pipeline, parameters: dict, progress, echo_logs: bool
) -> PipelineRun:
    """One run of the pipeline in the (initialised) local runner, its log in ``root/logs``."""
    runs = root / "runs"
    (root / "logs").mkdir(exist_ok=True)
    log_path = root / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    before = set(runs.iterdir()) if runs.exists() else set()
    start = time.perf_counter()
    error, outputs = None, {}
    with open(log_path, "w") as log_file:
        tracker = _RunTracker(log_file, progress, echo_logs)
        with _capture(tracker):
            try:
                outputs = dict(flowers_pipeline(**parameters).outputs)
            except RuntimeError as exc:
                error = exc
    new_dirs = sorted(set(runs.iterdir()) - before) if runs.exists() else []
    steps = [tracker.results.get(s, StepResult(s, "not run")) for s in ALL_TASKS]
    run = PipelineRun(
        root=root,
        log_path=log_path,
        parameters=parameters,
        steps=steps,
        seconds=time.perf_counter() - start,
        run_dir=new_dirs[-1] if new_dirs else None,
        outputs=outputs,
        step_logs=tracker.lines,
    )
    if run.step("deploy-model").status == "skipped" and "accuracy" in outputs:
        decision = run.decision  # which gate, on which numbers
        run.step("deploy-model").note = f"{', '.join(decision.failed)}: {decision.reason}"
    if error is not None:
        failed = next((s for s in steps if s.status == "failed"), None)
        if failed is None:
            raise error
        raise PipelineStepError(failed.step, failed.note, run) from None
    return run


def run_local(
    pipeline_root: str | os.PathLike | None = None,
    *,
    workspace=None,
    deploy_dir: str | os.PathLike | None = None,
    enable_caching: bool = True,
    progress: bool | Callable[[str], None] = True,
    echo_logs: bool = False,
    **settings,
) -> PipelineRun:
    """Run the pipeline in kfp's local runner (every step a subprocess of this Python).

    ``settings``: the pipeline parameters of ``graph.LOCAL_PARAMETERS`` by name (data_csv,
    labels_file, images_per_class, seed, img_size, epochs, model_kind, accuracy_threshold,
    background_threshold, probe_dir, probe_per_class, difficulty: the synthetic data's, when
    data_csv is empty; also the probe set's, when probe_dir is empty); the
    ones not given take the pipeline's defaults.
    ``pipeline_root`` (default ``<workspace>/pipeline``) holds ``runs/`` (artifacts, one folder
    per run), ``cache/`` (kfp's cache entries), ``logs/`` (the full log of each run) and, unless
    ``deploy_dir`` says otherwise, ``deployed/`` (the folder the deploy step swaps a model into).
    ``progress``: print one line per step event (True), or pass each line to a callable;
    ``echo_logs`` also prints every step's own output (it is always in the run's log file).

    Returns a :class:`PipelineRun`. A failed step raises :class:`PipelineStepError` naming the
    step and the cause (the exception the step raised). A model that does not pass the gates
    (accuracy, or the explanations' background share) is not an error: ``run.deployed`` is
    False, the deploy step is "skipped" and ``run.gate_message`` says why.
    """
    flowers_pipeline = make_pipeline()
    parameters = _local_parameters(flowers_pipeline, settings)
    root = Path(pipeline_root) if pipeline_root else default_root(workspace)
    root.mkdir(parents=True, exist_ok=True)
    if deploy_dir is None:
        deploy_dir = root / "deployed"
    parameters.update(deploy_dir=str(deploy_dir or ""), workspace=str(ws.workspace_dir(workspace)))
    kfp_local.init(
        runner=kfp_local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root / "runs"),
        enable_caching=enable_caching,
        cache_root=str(root / "cache"),
        raise_on_error=True,
    )
    return _execute(root, flowers_pipeline, parameters, progress, echo_logs)


def confusion_matrix(artifact) -> tuple[list[str], list[list[int]]]:
    """(labels, matrix) of a kfp ClassificationMetrics artifact (rows: true, columns: predicted)."""
    cm = artifact.metadata["confusionMatrix"]
    labels = [spec["displayName"] for spec in cm["annotationSpecs"]]
    return labels, [[int(v) for v in row["row"]] for row in cm["rows"]]


def latest_runs(pipeline_root: str | os.PathLike) -> list[Path]:
    """The run folders under a local pipeline root, oldest first."""
    runs = Path(pipeline_root) / "runs"
    return (
        sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name)
        if runs.exists()
        else []
    )
