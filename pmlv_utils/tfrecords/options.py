"""Beam ``PipelineOptions`` for the job: a local DirectRunner run or a Dataflow submission.

Dataflow workers install this package (``pyproject.toml`` as ``--setup_file``) and a pinned
requirements file (:func:`requirements_for_workers`). DirectRunner settings
(``direct_running_mode``, ``direct_num_workers``) are checked here with clear errors.
"""

from __future__ import annotations

import os
import time
from importlib.metadata import version
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

LOCAL_RUNNERS = ("DirectRunner",)
RUNNERS = LOCAL_RUNNERS + ("DataflowRunner",)
# DirectRunner modes: multi_processing starts worker processes (~10 s of start-up).
RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
REPO_ROOT = Path(__file__).resolve().parents[2]


def requirements_for_workers() -> list[str]:
    """Pinned packages the Dataflow workers need beyond Beam (from this environment)."""
    return [f"tensorflow=={version('tensorflow')}", f"pillow=={version('pillow')}"]


def build_pipeline_options(
    runner: str = "DirectRunner",
    output_dir: str = "",
    project_id=None,
    region=None,
    job_name=None,
    num_workers=None,
    direct_num_workers=None,
    direct_running_mode=None,
    extra_args=None,
    requirements_dir=None,
) -> PipelineOptions:
    """PipelineOptions for a local run or a Dataflow submission (validated, with clear errors).

    Dataflow: project and region are required; ``output_dir`` must be ``gs://`` (temp and
    staging go under it); the workers install this package (``pyproject.toml``, as
    ``--setup_file``) and a pinned requirements file written to ``requirements_dir``.
    """
    args = [f"--runner={runner}"]
    if runner == "DataflowRunner":
        if direct_num_workers or direct_running_mode:
            _check_dataflow_target(output_dir, project_id, region)
            raise ValueError(
                "direct_num_workers / direct_running_mode only apply to the DirectRunner"
            )
        args += _dataflow_args(
            output_dir, project_id, region, job_name, num_workers, requirements_dir
        )
    elif runner in LOCAL_RUNNERS:
        args += _direct_args(num_workers, direct_num_workers, direct_running_mode)
    else:
        raise ValueError(f"runner must be one of {RUNNERS}, got {runner!r}")
    args += list(extra_args or [])
    return PipelineOptions(args)


def _check_dataflow_target(output_dir, project_id, region) -> None:
    if not project_id or not region:
        raise ValueError("DataflowRunner needs --project_id and --region")
    if not str(output_dir).startswith("gs://"):
        raise ValueError(
            "DataflowRunner writes from cloud workers: --output_dir must be gs://, "
            f"got {output_dir}"
        )


def _dataflow_args(output_dir, project_id, region, job_name, num_workers, requirements_dir):
    """The Dataflow flags: project, region, job name, temp/staging under ``output_dir``, what
    the workers install, the worker limit. Writes the requirements file."""
    _check_dataflow_target(output_dir, project_id, region)
    out = str(output_dir).rstrip("/")
    job_name = job_name or "flowers-tfrecords-" + time.strftime("%Y%m%d-%H%M%S")
    args = [
        f"--project={project_id}",
        f"--region={region}",
        f"--job_name={job_name}",
        f"--temp_location={out}/tmp",
        f"--staging_location={out}/staging",
    ]
    req_dir = Path(requirements_dir or os.environ.get("TMPDIR", "/tmp"))
    req_dir.mkdir(parents=True, exist_ok=True)
    req_file = req_dir / "dataflow_requirements.txt"
    req_file.write_text("\n".join(requirements_for_workers()) + "\n")
    args += [f"--requirements_file={req_file}", "--requirements_cache=skip"]
    if (REPO_ROOT / "pyproject.toml").exists():
        args.append(f"--setup_file={REPO_ROOT / 'pyproject.toml'}")
    if num_workers:
        args.append(f"--max_num_workers={int(num_workers)}")
    return args


def _direct_args(num_workers, direct_num_workers, direct_running_mode) -> list[str]:
    """The DirectRunner flags (validated)."""
    if num_workers:
        raise ValueError("num_workers is for Dataflow; use direct_num_workers locally")
    args = []
    if direct_running_mode is not None:
        if direct_running_mode not in RUNNING_MODES:
            raise ValueError(
                f"direct_running_mode must be one of {RUNNING_MODES}, got {direct_running_mode!r}"
            )
        args.append(f"--direct_running_mode={direct_running_mode}")
    if direct_num_workers:
        args.append(f"--direct_num_workers={int(direct_num_workers)}")
    return args
