"""The pipeline in the cloud: Vertex AI Pipelines or a Kubeflow Pipelines cluster.

    cloud_parameters     pipeline parameters for a cloud run (data on GCS, Dataflow, an endpoint)
    submit               send the compiled YAML to Vertex AI (project + bucket) or Kubeflow (host)
    describe_submission  what submit would send, as text (when no project or host is set)

Every step then runs in the course image (``graph.BASE_IMAGE``, built from the repo's
Dockerfile). The Google Cloud SDK is imported only when a Vertex AI job is submitted (it is an
optional dependency and takes 10 s to import).
"""

import os

import kfp

from .. import workspace as ws
from .graph import COMPILED_PIPELINE, PIPELINE_NAME


def cloud_parameters(
    data_csv: str,
    bucket: str,
    project: str,
    region: str = "us-central1",
    runner: str = "DataflowRunner",
    **overrides,
) -> dict:
    """Pipeline parameters for a cloud run: data on GCS, Dataflow, a Vertex endpoint."""
    params = dict(data_csv=data_csv, runner=runner, project=project, region=region, deploy_dir="")
    params.update(overrides)
    return params


def submit(
    template_path: str | os.PathLike = COMPILED_PIPELINE,
    parameters: dict | None = None,
    project: str | None = None,
    region: str = "us-central1",
    bucket: str | None = None,
    kfp_host: str | None = None,
    enable_caching: bool = True,
):
    """Submit the compiled pipeline: to Vertex AI Pipelines (``project`` + ``bucket``) or to a
    Kubeflow Pipelines cluster (``kfp_host``). Returns the submitted job / run."""
    parameters = dict(parameters or {})
    if kfp_host:
        client = kfp.Client(host=kfp_host)
        return client.create_run_from_pipeline_package(
            str(template_path),
            arguments=parameters,
            experiment_name="flowers",
            enable_caching=enable_caching,
        )
    if not (project and bucket):
        raise ValueError(
            "submit needs project and bucket (Vertex AI Pipelines) or kfp_host (Kubeflow)"
        )
    from google.cloud import aiplatform  # the Vertex path only (see the module docstring)

    aiplatform.init(project=project, location=region, staging_bucket=f"gs://{bucket}")
    job = aiplatform.PipelineJob(
        display_name=PIPELINE_NAME,
        template_path=str(template_path),
        pipeline_root=f"gs://{bucket}/pipeline_root",
        parameter_values=parameters,
        enable_caching=enable_caching,
    )
    job.submit()
    return job


def describe_submission(
    template_path: str | os.PathLike = COMPILED_PIPELINE,
    parameters: dict | None = None,
    project: str | None = None,
    region: str = "us-central1",
    bucket: str | None = None,
    kfp_host: str | None = None,
) -> str:
    """What :func:`submit` would send, as text (for when no project or host is set)."""
    target = (
        f"Kubeflow Pipelines at {kfp_host}"
        if kfp_host
        else f"Vertex AI Pipelines in {project}/{region}, pipeline_root gs://{bucket}/pipeline_root"
        if project and bucket
        else "nowhere: set PROJECT and BUCKET (Vertex) or KFP_HOST (Kubeflow)"
    )
    lines = [
        f"pipeline file : {ws.display_path(template_path)}",
        f"target        : {target}",
        "parameters    :",
    ]
    lines += [f"  {k} = {v!r}" for k, v in sorted((parameters or {}).items())]
    return "\n".join(lines)
