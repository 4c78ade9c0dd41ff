"""The pipeline in the cloud: Vertex AI Pipelines or a Kubeflow Pipelines cluster.

    cloud_parameters     pipeline parameters for a cloud run (data on GCS, Dataflow, an endpoint)
    submit               send the compiled YAML to Vertex AI (project + bucket) or Kubeflow (host)
    describe_submission  what submit would send, as text (when no project or host is set)
    Submission           the arguments of both: what to send and where (send, describe)

Every step then runs in the course image (``graph.BASE_IMAGE``, built from the repo's
Dockerfile). The Google Cloud SDK is imported only when a Vertex AI job is submitted (it is an
optional dependency and takes 10 s to import).
"""

import os
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Submission:
    """What :func:`submit` sends and where: to Vertex AI Pipelines (``project`` + ``bucket``) or
    to a Kubeflow Pipelines cluster (``kfp_host``, which wins when both are set)."""

    template_path: str | os.PathLike = COMPILED_PIPELINE
    parameters: dict | None = None
    project: str | None = None
    region: str = "us-central1"
    bucket: str | None = None
    kfp_host: str | None = None
    enable_caching: bool = True

    def target(self) -> str:
        """Where it goes, as text."""
        if self.kfp_host:
            return f"Kubeflow Pipelines at {self.kfp_host}"
        if self.project and self.bucket:
            return (
                f"Vertex AI Pipelines in {self.project}/{self.region}, "
                f"pipeline_root gs://{self.bucket}/pipeline_root"
            )
        return "nowhere: set PROJECT and BUCKET (Vertex) or KFP_HOST (Kubeflow)"

    def send(self):
        """Submit it; returns the submitted job / run."""
        parameters = dict(self.parameters or {})
        if self.kfp_host:
            client = kfp.Client(host=self.kfp_host)
            return client.create_run_from_pipeline_package(
                str(self.template_path),
                arguments=parameters,
                experiment_name="flowers",
                enable_caching=self.enable_caching,
            )
        if not (self.project and self.bucket):
            raise ValueError(
                "submit needs project and bucket (Vertex AI Pipelines) or kfp_host (Kubeflow)"
            )
        from google.cloud import aiplatform  # the Vertex path only (see the module docstring)

        aiplatform.init(
            project=self.project, location=self.region, staging_bucket=f"gs://{self.bucket}"
        )
        job = aiplatform.PipelineJob(
            display_name=PIPELINE_NAME,
            template_path=str(self.template_path),
            pipeline_root=f"gs://{self.bucket}/pipeline_root",
            parameter_values=parameters,
            enable_caching=self.enable_caching,
        )
        job.submit()
        return job

    def describe(self) -> str:
        """What :meth:`send` would send, as text."""
        lines = [
            f"pipeline file : {ws.display_path(self.template_path)}",
            f"target        : {self.target()}",
            "parameters    :",
        ]
        lines += [f"  {k} = {v!r}" for k, v in sorted((self.parameters or {}).items())]
        return "\n".join(lines)


def submit(*args, **kwargs):
    """Submit the compiled pipeline: to Vertex AI Pipelines (``project`` + ``bucket``) or to a
    Kubeflow Pipelines cluster (``kfp_host``). Returns the submitted job / run.

    Arguments: those of :class:`Submission` (template_path, parameters, project, region, bucket,
    kfp_host, enable_caching), positional or by name.
    """
    return Submission(*args, **kwargs).send()


def describe_submission(*args, **kwargs) -> str:
    """What :func:`submit` would send, as text (for when no project or host is set); same
    arguments as :func:`submit`."""
    return Submission(*args, **kwargs).describe()
