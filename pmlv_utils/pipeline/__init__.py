"""The course as a Kubeflow pipeline (kfp v2): dataset -> train -> export -> evaluate -> deploy.

Lightweight Python components, each a thin wrapper around a ``*_step`` function (which calls the
rest of pmlv_utils), so the same code runs

* locally, in kfp's local runner (``kfp.local.SubprocessRunner(use_venv=False)``: every step is
  a subprocess of this Python; no Docker needed) -- :func:`run_local`;
* on Vertex AI Pipelines or a Kubeflow cluster, where every step runs in the course image
  (:data:`BASE_IMAGE`, built from the repo's Dockerfile) -- :func:`submit`.

Submodules:

    steps         what each step does (plain functions: create_dataset_step ... deploy_step)
    fingerprints  content hashes of the data and of each step's code (what the cache keys on)
    components    the kfp components (fingerprint_inputs, create_dataset ... deploy_model)
    gate          deploy_decision: accuracy AND background share, with the reason
    graph         make_pipeline, compile / load the YAML, the DAG as nodes and edges, its plot
    local         run_local in kfp's local runner, PipelineRun, StepResult, PipelineStepError
    cloud         submit to Vertex AI Pipelines or Kubeflow, describe_submission
    watch         the folder watcher that runs the pipeline when new data lands

Steps (task names in the compiled YAML):

    create-dataset  the chapter 5 Beam job (DirectRunner locally, DataflowRunner in the cloud):
                    all_data.csv -> TFRecords (train/valid/test + dead-letter errors-*.jsonl)
    train-model     the chapter 7 trainer -> trainer job dir (checkpoints, curves, metrics)
    export-model    the SavedModel with the serving signatures (chapter 7/9)
    evaluate-model  test accuracy + confusion matrix of the EXPORTED model (its ``xai_model``
                    signature on the test TFRecords): what is tested is what is shipped
    explain-check   the background share of the exported model's IG evidence on a probe set
                    with flower masks (the unbiased synthetic test split): the share, for the
                    worst class, that lies off the flowers inside the field of view (Metrics)
    deploy-model    only when accuracy >= accuracy_threshold AND background share <=
                    background_threshold (two nested ``dsl.If``, ``gate.deploy_decision``):
                    locally, a folder with the SavedModel and a float32 TFLite file, swapped
                    in atomically; with a project, also a Vertex AI model upload + endpoint

Caching. kfp's local runner caches (``kfp.local.init(enable_caching=True)``, kfp >= 2.17), as
Vertex AI does: a task whose component, image and input *values* are unchanged is not run again.
Values, not contents: the same CSV path with new lines in it, or an edited training module, would
be a cache hit. So a seventh, never-cached task, ``fingerprint-inputs``, hashes the data (the CSV,
its labels and every image it lists) and, for each step, the pmlv_utils modules that step runs;
each step takes its hashes as inputs. Unchanged data and code -> the same inputs -> cached.
One quirk of kfp 2.17's local cache: an entry whose output artifact has no file is treated as a
miss, so the steps that log Metrics also write them to the artifact's file. Deploy is never
cached (it has effects outside its artifact).
"""

from .cloud import cloud_parameters, describe_submission, submit
from .components import (
    create_dataset,
    deploy_model,
    evaluate_model,
    explain_check,
    export_model,
    fingerprint_inputs,
    train_model,
)
from .fingerprints import (
    FINGERPRINT_OUTPUTS,
    STEP_MODULES,
    code_fingerprint,
    data_fingerprint,
    folder_fingerprint,
    module_closure,
)
from .gate import (
    ACCURACY_GATE,
    DEFAULT_ACCURACY_THRESHOLD,
    DEFAULT_BACKGROUND_THRESHOLD,
    EXPLANATION_GATE,
    GateDecision,
    deploy_decision,
)
from .graph import (
    ALL_TASKS,
    BASE_IMAGE,
    COMPILED_PIPELINE,
    DEFAULT_MODEL_KIND,
    DEFAULT_PROBE_PER_CLASS,
    FINGERPRINT_STEP,
    GATE_NAME,
    GATES,
    PIPELINE_NAME,
    STEPS,
    compile_pipeline,
    describe_steps,
    load_compiled,
    make_pipeline,
    pipeline_graph,
    pipeline_steps,
    plot_pipeline,
)
from .local import (
    PipelineRun,
    PipelineStepError,
    StepResult,
    confusion_matrix,
    default_root,
    latest_runs,
    run_local,
)
from .steps import (
    LABELS_NAME,
    TFLITE_NAME,
    VERTEX_SERVING_IMAGE,
    create_dataset_step,
    deploy_step,
    deploy_to_vertex,
    evaluate_step,
    explain_check_step,
    export_step,
    probe_data_dir,
    train_step,
)
from .watch import add_new_images, make_data_folder, watch_folder

__all__ = [
    "ACCURACY_GATE",
    "ALL_TASKS",
    "BASE_IMAGE",
    "COMPILED_PIPELINE",
    "DEFAULT_ACCURACY_THRESHOLD",
    "DEFAULT_BACKGROUND_THRESHOLD",
    "DEFAULT_PROBE_PER_CLASS",
    "EXPLANATION_GATE",
    "DEFAULT_MODEL_KIND",
    "FINGERPRINT_OUTPUTS",
    "FINGERPRINT_STEP",
    "GATES",
    "GATE_NAME",
    "GateDecision",
    "LABELS_NAME",
    "PIPELINE_NAME",
    "STEPS",
    "STEP_MODULES",
    "TFLITE_NAME",
    "VERTEX_SERVING_IMAGE",
    "PipelineRun",
    "PipelineStepError",
    "StepResult",
    "add_new_images",
    "cloud_parameters",
    "code_fingerprint",
    "compile_pipeline",
    "confusion_matrix",
    "create_dataset",
    "create_dataset_step",
    "data_fingerprint",
    "default_root",
    "deploy_decision",
    "deploy_model",
    "deploy_step",
    "deploy_to_vertex",
    "describe_steps",
    "describe_submission",
    "evaluate_model",
    "evaluate_step",
    "explain_check",
    "explain_check_step",
    "export_model",
    "export_step",
    "fingerprint_inputs",
    "folder_fingerprint",
    "latest_runs",
    "load_compiled",
    "make_data_folder",
    "make_pipeline",
    "module_closure",
    "pipeline_graph",
    "pipeline_steps",
    "plot_pipeline",
    "probe_data_dir",
    "run_local",
    "submit",
    "train_model",
    "train_step",
    "watch_folder",
]
