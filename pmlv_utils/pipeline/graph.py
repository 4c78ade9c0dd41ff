"""The pipeline graph: the components wired together, compiled to YAML, read back and drawn.

make_pipeline     the @dsl.pipeline function (components built on one base image)
compile_pipeline  -> 10_mlops/pipeline/flowers_pipeline.yaml (what Vertex / Kubeflow run)
load_compiled     the compiled YAML read back by kfp
pipeline_graph    (nodes, edges) of the compiled DAG, the two gates as nodes
pipeline_steps    its component tasks in dependency order
describe_steps    a table: inputs, outputs, cached or not, when each step runs
plot_pipeline     the DAG drawn left to right, coloured by what a local run did
"""

import os
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, NamedTuple

import matplotlib.pyplot as plt
import networkx as nx
import pandas as pd
from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Metrics, Model
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

from .. import workspace as ws
from . import components
from .fingerprints import FINGERPRINT_OUTPUTS
from .gate import (
    ACCURACY_GATE,
    DEFAULT_ACCURACY_THRESHOLD,
    DEFAULT_BACKGROUND_THRESHOLD,
    EXPLANATION_GATE,
)

if TYPE_CHECKING:
    from .local import PipelineRun

PIPELINE_NAME = "flowers-pipeline"
# The course image (docker build -t $BASE_IMAGE . && docker push $BASE_IMAGE): what every step
# runs in on Vertex / Kubeflow. Replace YOUR_PROJECT, or pass base_image= to make_pipeline().
BASE_IMAGE = "us-central1-docker.pkg.dev/YOUR_PROJECT/pmlv/practical-ml-vision:latest"
STEPS = (
    "create-dataset",
    "train-model",
    "export-model",
    "evaluate-model",
    "explain-check",
    "deploy-model",
)
FINGERPRINT_STEP = "fingerprint-inputs"
ALL_TASKS = (FINGERPRINT_STEP, *STEPS)
GATE_NAME = ACCURACY_GATE  # the outer gate; the explanation gate is inside it
GATES = (ACCURACY_GATE, EXPLANATION_GATE)
COMPILED_PIPELINE = ws.REPO_ROOT / "10_mlops" / "pipeline" / "flowers_pipeline.yaml"
DEFAULT_MODEL_KIND = "small_cnn"
# The pipeline parameters a local run sets (local.run_local), with the pipeline's defaults;
# runner, project, region and endpoint_name are for the cloud, deploy_dir and workspace the
# local run fills in itself.
LOCAL_PARAMETERS = (
    "data_csv",
    "labels_file",
    "images_per_class",
    "seed",
    "img_size",
    "epochs",
    "model_kind",
    "accuracy_threshold",
    "background_threshold",
    "probe_dir",
    "probe_per_class",
    "difficulty",
)
DEFAULT_PROBE_PER_CLASS = 20
DESCRIPTION = (
    "Flowers: create dataset (Beam) -> train -> export -> evaluate -> explain-check -> "
    "deploy when test accuracy and the explanations' background share pass the gates"
)

PipelineOutputs = NamedTuple(
    "PipelineOutputs",
    tfrecords=Dataset,
    trained=Model,
    exported=Model,
    metrics=Metrics,
    confusion=ClassificationMetrics,
    accuracy=float,
    explanation_metrics=Metrics,
    background_share=float,
    data_version=str,
    dataset_code=str,
    train_code=str,
    export_code=str,
    evaluate_code=str,
    explain_code=str,
)


def _outputs(versions, dataset, trained, exported, evaluated, checked) -> PipelineOutputs:
    return PipelineOutputs(
        dataset.outputs["tfrecords"],
        trained.outputs["trained"],
        exported.outputs["exported"],
        evaluated.outputs["metrics"],
        evaluated.outputs["confusion"],
        evaluated.outputs["Output"],
        checked.outputs["explanation_metrics"],
        checked.outputs["Output"],
        *(versions.outputs[k] for k in FINGERPRINT_OUTPUTS),
    )


def _components(base_image: str) -> SimpleNamespace:
    """The seven components, built on ``base_image``, as attributes named after their functions."""
    return SimpleNamespace(
        **{
            fn.__name__: dsl.component(fn, base_image=base_image, install_kfp_package=False)
            for fn in components.ALL_COMPONENTS
        }
    )


def _dataset_and_model(ops, p: SimpleNamespace):
    """The fingerprint, create-dataset, train and export tasks (``p``: the pipeline's
    parameters). Passing one task's output to another is what orders them."""
    versions = ops.fingerprint_inputs(data_csv=p.data_csv, labels_file=p.labels_file)
    versions.set_caching_options(False)  # it must look at the data and code every time
    dataset = ops.create_dataset(
        data_csv=p.data_csv,
        labels_file=p.labels_file,
        images_per_class=p.images_per_class,
        seed=p.seed,
        data_version=versions.outputs["data_version"],
        code_version=versions.outputs["dataset_code"],
        runner=p.runner,
        project=p.project,
        region=p.region,
        workspace=p.workspace,
        difficulty=p.difficulty,
    )
    trained = ops.train_model(
        tfrecords=dataset.outputs["tfrecords"],
        img_size=p.img_size,
        epochs=p.epochs,
        model_kind=p.model_kind,
        seed=p.seed,
        code_version=versions.outputs["train_code"],
    )
    exported = ops.export_model(
        trained=trained.outputs["trained"], code_version=versions.outputs["export_code"]
    )
    return versions, dataset, trained, exported


def _evaluate_check_and_gate(ops, p: SimpleNamespace, versions, tfrecords, exported):
    """The evaluate and explain-check tasks, and the deploy task behind both gates (nested
    ``dsl.If``: accuracy, then the explanations' background share; deploy is never cached)."""
    model = exported.outputs["exported"]
    evaluated = ops.evaluate_model(
        exported=model, tfrecords=tfrecords, code_version=versions.outputs["evaluate_code"]
    )
    checked = ops.explain_check(
        exported=model,
        probe_dir=p.probe_dir,
        images_per_class=p.images_per_class,
        seed=p.seed,
        workspace=p.workspace,
        difficulty=p.difficulty,
        probe_per_class=p.probe_per_class,
        code_version=versions.outputs["explain_code"],
    )
    checked.after(evaluated)  # one after the other: the DAG stays a chain
    # Each gate reads a single unnamed float output: kfp 2.17's local runner resolves a
    # condition on a task output only when it is "Output" (a NamedTuple field is not found).
    with dsl.If(evaluated.outputs["Output"] >= p.accuracy_threshold, name=ACCURACY_GATE):
        with dsl.If(checked.outputs["Output"] <= p.background_threshold, name=EXPLANATION_GATE):
            deploy = ops.deploy_model(
                exported=model,
                deploy_dir=p.deploy_dir,
                project=p.project,
                region=p.region,
                endpoint_name=p.endpoint_name,
            )
            deploy.set_caching_options(False)
    return evaluated, checked


def make_pipeline(base_image: str = BASE_IMAGE):
    """The pipeline function, its components built on ``base_image``. Passing one task's
    output to another is what orders them (kfp is never told the order)."""
    ops = _components(base_image)

    @dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)
    def flowers_pipeline(
        data_csv: str = "",
        labels_file: str = "",
        images_per_class: int = ws.DEFAULT_IMAGES_PER_CLASS,
        seed: int = ws.DEFAULT_SEED,
        img_size: int = ws.DEFAULT_IMG_SIZE,
        epochs: int = ws.DEFAULT_EPOCHS,
        model_kind: str = DEFAULT_MODEL_KIND,
        accuracy_threshold: float = DEFAULT_ACCURACY_THRESHOLD,
        background_threshold: float = DEFAULT_BACKGROUND_THRESHOLD,
        probe_dir: str = "",
        probe_per_class: int = DEFAULT_PROBE_PER_CLASS,
        runner: str = "DirectRunner",
        project: str = "",
        region: str = "us-central1",
        deploy_dir: str = "",
        endpoint_name: str = "flowers",
        workspace: str = "",
        difficulty: str = ws.DEFAULT_DIFFICULTY,
    ) -> PipelineOutputs:
        p = SimpleNamespace(**{k: v for k, v in locals().items() if k != "ops"})
        versions, dataset, trained, exported = _dataset_and_model(ops, p)
        tfrecords = dataset.outputs["tfrecords"]
        evaluated, checked = _evaluate_check_and_gate(ops, p, versions, tfrecords, exported)
        return _outputs(versions, dataset, trained, exported, evaluated, checked)

    return flowers_pipeline


def compile_pipeline(
    path: str | os.PathLike = COMPILED_PIPELINE, base_image: str = BASE_IMAGE
) -> Path:
    """Compile the pipeline to YAML (what Vertex AI Pipelines / Kubeflow run)."""
    from kfp import compiler  # not at the top: see the module docstring

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(make_pipeline(base_image), str(path))
    return path


def load_compiled(path: str | os.PathLike = COMPILED_PIPELINE):
    """The compiled pipeline read back by kfp: a component whose ``pipeline_spec`` is the DAG."""
    from kfp import components as kfp_components  # not at the top: see the module docstring

    if not Path(path).is_file():
        raise FileNotFoundError(f"no compiled pipeline at {path}: run pipeline.compile_pipeline()")
    return kfp_components.load_component_from_file(str(path))


def _is_group(spec, task) -> bool:
    """Whether a task of the spec is a condition group (``dsl.If``) rather than a component."""
    return spec.components[task.component_ref.name].WhichOneof("implementation") == "dag"


def pipeline_graph(
    path: str | os.PathLike = COMPILED_PIPELINE,
) -> tuple[list[str], list[tuple[str, str]]]:
    """(nodes, edges) of the compiled pipeline's DAG, read from its pipeline spec.

    Condition groups (``dsl.If``) appear as a node named after the group's display name, with
    an edge to each task inside it.
    """
    spec = load_compiled(path).pipeline_spec
    nodes: list[str] = []
    edges: list[tuple[str, str]] = []

    def walk(dag, prefix_parent: str | None) -> None:
        for name, task in dag.tasks.items():
            is_group = _is_group(spec, task)
            node = (task.task_info.name or name) if is_group else name
            nodes.append(node)
            for upstream in task.dependent_tasks:
                edges.append((upstream, node))
            if prefix_parent and not task.dependent_tasks:
                edges.append((prefix_parent, node))
            if is_group:
                walk(spec.components[task.component_ref.name].dag, node)

    walk(spec.root.dag, None)
    return nodes, edges


def _digraph(path) -> nx.DiGraph:
    nodes, edges = pipeline_graph(path)
    graph = nx.DiGraph(edges)
    graph.add_nodes_from(nodes)
    return graph


def pipeline_steps(path: str | os.PathLike = COMPILED_PIPELINE) -> list[str]:
    """The component tasks of the compiled pipeline, in an order that respects their edges."""
    graph = _digraph(path)
    spec = load_compiled(path).pipeline_spec
    dags = [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]
    groups = {t.task_info.name for dag in dags for t in dag.tasks.values() if _is_group(spec, t)}
    return [n for n in nx.lexicographical_topological_sort(graph) if n not in groups]


def describe_steps(path: str | os.PathLike = COMPILED_PIPELINE) -> pd.DataFrame:
    """A table of the compiled pipeline's steps: inputs, outputs, cached or not, when it runs."""
    spec = load_compiled(path).pipeline_spec
    rows = []

    def walk(dag, gate: str = "") -> None:
        for name, task in dag.tasks.items():
            component = spec.components[task.component_ref.name]
            if _is_group(spec, task):
                walk(component.dag, f"{gate} and {task.task_info.name}".removeprefix(" and "))
                continue
            inputs, outputs = component.input_definitions, component.output_definitions
            rows.append(
                dict(
                    step=name,
                    artifacts_in=", ".join(sorted(inputs.artifacts)),
                    parameters_in=", ".join(sorted(inputs.parameters)),
                    outputs=", ".join(sorted([*outputs.artifacts, *outputs.parameters])),
                    cached=bool(task.caching_options.enable_cache),
                    runs=f"if {gate} pass{'' if ' and ' in gate else 'es'}" if gate else "always",
                )
            )

    walk(spec.root.dag)
    return pd.DataFrame(rows).set_index("step").loc[pipeline_steps(path)]


_STATUS_COLOURS = {
    "ran": "#8fd18f",
    "cached": "#9ec9ef",
    "skipped": "#dddddd",
    "failed": "#f08c8c",
    "not run": "#ffffff",
}
_BOX_WIDTH, _BOX_HEIGHT = 1.5, 0.55


def _draw_node(ax, name: str, x: int, result) -> None:
    """One step as a rounded box at column ``x``; with a run's ``result``, its colour and time."""
    if result:
        colour = _STATUS_COLOURS.get(result.status, "#f5f5f5")
    else:
        colour = "#ffe9a8" if name in GATES else "#f5f5f5"
    ax.add_patch(
        FancyBboxPatch(
            (2 * x - _BOX_WIDTH / 2, -_BOX_HEIGHT / 2),
            _BOX_WIDTH,
            _BOX_HEIGHT,
            boxstyle="round,pad=0.04",
            fc=colour,
            ec="#555555",
        )
    )
    ax.text(2 * x, 0, name, ha="center", va="center", fontsize=8)
    if result:
        label = (
            f"{result.status} {result.seconds:.0f} s" if result.status == "ran" else result.status
        )
        ax.text(2 * x, -_BOX_HEIGHT / 2 - 0.18, label, ha="center", va="top", fontsize=7)


def _draw_edge(ax, start_column: int, end_column: int) -> None:
    """An arrow between two columns; one that skips columns arcs over the boxes."""
    span = end_column - start_column
    start, end = (2 * start_column + _BOX_WIDTH / 2, 0), (2 * end_column - _BOX_WIDTH / 2, 0)
    style = "arc3,rad=0" if span == 1 else f"arc3,rad={-0.2 if span % 2 else -0.25}"
    if span > 1:
        top = _BOX_HEIGHT / 2 + 0.04
        start, end = (2 * start_column, top), (2 * end_column, top)
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            connectionstyle=style,
            arrowstyle="-|>",
            mutation_scale=11,
            color="#555555",
            lw=1,
        )
    )


def _draw_legend(ax, run: "PipelineRun") -> None:
    used = [k for k in _STATUS_COLOURS if any(r.status == k for r in run.steps)]
    ax.legend(
        handles=[Patch(fc=_STATUS_COLOURS[k], ec="#555555", label=k) for k in used],
        loc="lower center",
        ncol=len(used),
        fontsize=7,
        frameon=False,
        bbox_to_anchor=(0.5, -0.08),
    )


def plot_pipeline(
    path: str | os.PathLike = COMPILED_PIPELINE, run: "PipelineRun | None" = None, ax=None
):
    """Draw the compiled DAG left to right; with ``run``, colour each step by what it did there
    (ran / cached / skipped / failed) and write its time under it."""
    graph = _digraph(path)
    layer = {n: i for i, names in enumerate(nx.topological_generations(graph)) for n in names}
    if ax is None:
        _, ax = plt.subplots(figsize=(1.9 * (max(layer.values()) + 1), 2.4))
    results = {s.step: s for s in run.steps} if run else {}
    for name, x in layer.items():
        _draw_node(ax, name, x, results.get(name))
    for a, b in graph.edges:
        _draw_edge(ax, layer[a], layer[b])
    if run:
        _draw_legend(ax, run)
    ax.set_xlim(-1, 2 * max(layer.values()) + 1)
    ax.set_ylim(-1.0, 0.45 + 0.27 * max(layer[b] - layer[a] for a, b in graph.edges))
    ax.set_aspect("equal")
    ax.set_axis_off()
    return ax
