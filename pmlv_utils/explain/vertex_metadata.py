"""Explanation signatures and explanation metadata (the book's 09f / chapter 10).

An explainer has to call the model on perturbed *preprocessed* images, so the export has two
signatures besides ``serving_default``: ``xai_preprocess`` (filenames -> ``input_images``) and
``xai_model`` (``input_images`` -> ``probability``). The explanation metadata tells a service
which signature input to perturb, which output to explain and from which baseline image to
integrate. It is written with Google's explainable-ai-sdk, as the book does:

    write_explanation_metadata(model_dir, baseline="random", seed=42)   # explanation_metadata.json
    config = read_explanation_metadata(model_dir)   # input name, output name, baseline array
    vertex_upload_commands(...)                     # what would deploy it on Vertex AI

``explanation_metadata.json`` is the legacy AI Platform format (next to the SavedModel);
:func:`vertex_explanation_metadata` gives the same content in the shape of Vertex AI's
``ExplanationMetadata`` (for ``gcloud ai models upload --explanation-metadata-file``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import tensorflow as tf
from explainable_ai_sdk.common.explain_metadata import ExplainMetadata
from explainable_ai_sdk.metadata.tf.v2 import SavedModelMetadataBuilder

from .adapters import ExplainableModel
from .api import Explanation, explain
from .checks import make_baseline

METADATA_FILE = "explanation_metadata.json"
# Vertex AI's prebuilt TF 2 prediction image (pick the one matching the exporting TF version).
VERTEX_TF_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


def _check_model_dir(model_dir) -> Path:
    folder = Path(model_dir)
    if not (folder / "saved_model.pb").is_file():
        raise FileNotFoundError(f"no SavedModel in {folder}: expected {folder / 'saved_model.pb'}")
    return folder


def _signature_input(model_dir: Path, signature: str) -> tuple[str, tuple[int, ...]]:
    loaded = tf.saved_model.load(str(model_dir))
    if signature not in loaded.signatures:
        raise KeyError(
            f"{model_dir} has no signature {signature!r}; it has {sorted(loaded.signatures)}"
        )
    _, inputs = loaded.signatures[signature].structured_input_signature
    if len(inputs) != 1:
        raise ValueError(
            f"signature {signature!r} must take one image input, it takes {sorted(inputs)}"
        )
    ((name, spec),) = inputs.items()
    if spec.shape.rank != 4 or None in spec.shape[1:]:
        raise ValueError(
            f"signature {signature!r} input {name!r} must be [None, H, W, 3], it is {spec.shape}"
        )
    return name, tuple(int(d) for d in spec.shape[1:])


def write_explanation_metadata(
    model_dir,
    baseline: str | np.ndarray = "random",
    seed: int = 42,
    signature: str = "xai_model",
    output_to_explain: str = "probability",
    decimals: int = 4,
) -> Path:
    """Write ``<model_dir>/explanation_metadata.json`` with explainable-ai-sdk; return its path.

    baseline: ``random`` / ``black`` / ``white`` (:func:`pmlv_utils.explain.make_baseline`,
    seeded by ``seed``) or an array
    [H, W, 3]; rounded to ``decimals`` digits to keep the JSON small.
    """
    folder = _check_model_dir(model_dir)
    input_name, image_shape = _signature_input(folder, signature)
    baseline = make_baseline(baseline, image_shape, seed)  # validates kind and shape
    builder = SavedModelMetadataBuilder(
        str(folder), signature_name=signature, outputs_to_explain=[output_to_explain]
    )
    builder.set_image_metadata(input_name, input_baselines=[np.round(baseline, decimals).tolist()])
    builder.save_metadata(str(folder))
    return folder / METADATA_FILE


# The names summary() shows for the fields (the others under their own name).
_SUMMARY_NAMES = {"input_name": "input", "output_name": "output"}


@dataclass
class ExplanationConfig:
    """What an explanation service needs from ``explanation_metadata.json``."""

    input_name: str
    input_tensor_name: str
    output_name: str
    output_tensor_name: str
    modality: str
    baseline: np.ndarray | None  # [H, W, 3], or None: the service's default (zeros)
    framework: str | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """The fields without the baseline pixels (for display)."""
        shown = {
            _SUMMARY_NAMES.get(f.name, f.name): getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("baseline", "source", "extra")
        }
        b = self.baseline
        shown["baseline_shape"] = None if b is None else list(b.shape)
        shown["baseline_mean"] = None if b is None else round(float(b.mean()), 3)
        return shown


def read_explanation_metadata(path) -> ExplanationConfig:
    """Parse ``explanation_metadata.json`` (a file, or the model folder holding it).

    Raises FileNotFoundError / ValueError naming the file and the field when it is not one
    image input with one output to explain.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no explanation metadata at {path} (write it with write_explanation_metadata)"
        )
    try:
        md = ExplainMetadata.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not valid explanation metadata: {err}") from err
    if len(md.inputs) != 1:
        raise ValueError(
            f"{path}: 'inputs' must hold exactly one image input, it has {len(md.inputs)}"
        )
    if len(md.outputs) != 1:
        raise ValueError(
            f"{path}: 'outputs' must hold exactly one output to explain, it has {len(md.outputs)}"
        )
    inp, out = md.inputs[0], md.outputs[0]
    if inp.modality != "image":
        raise ValueError(
            f"{path}: inputs.{inp.name}.modality is {inp.modality!r}, expected 'image'"
        )
    return ExplanationConfig(
        input_name=inp.name,
        input_tensor_name=inp.input_tensor_name,
        output_name=out.name,
        output_tensor_name=out.output_tensor_name,
        modality=inp.modality,
        baseline=_input_baseline(path, inp),
        framework=md.framework,
        source=str(path),
        extra=dict(baselines=len(inp.input_baselines or [])),
    )


def _input_baseline(path: Path, inp) -> np.ndarray | None:
    """The input's first baseline as a float32 [H, W, 3] array (None when it has none)."""
    if not inp.input_baselines:
        return None
    baseline = np.asarray(inp.input_baselines[0], np.float32)
    if baseline.ndim != 3 or baseline.shape[-1] != 3:
        raise ValueError(
            f"{path}: inputs.{inp.name}.input_baselines[0] has shape {baseline.shape}, "
            "expected [H, W, 3]"
        )
    return baseline


def explainable_model(model_dir, config: ExplanationConfig, signature: str = "xai_model"):
    """An :class:`pmlv_utils.explain.ExplainableModel` of the signature the metadata describes.

    Uses the metadata's output tensor name and checks its input tensor name against the signature.
    """
    folder = _check_model_dir(model_dir)
    input_name, _ = _signature_input(folder, signature)
    if input_name != config.input_tensor_name:
        raise ValueError(
            f"{config.source}: input_tensor_name {config.input_tensor_name!r} is not the "
            f"input of signature {signature!r} ({input_name!r})"
        )
    return ExplainableModel.from_saved_model(
        folder, signature=signature, output_key=config.output_tensor_name
    )


def explain_with_metadata(
    images,
    model_dir,
    target_classes=None,
    steps: int = 25,
    method: str = "ig",
    config: ExplanationConfig | None = None,
    model=None,
) -> Explanation:
    """IG (or XRAI) as the deployed service would run it: input, output and baseline from the
    metadata.

    Returns :class:`pmlv_utils.explain.Explanation`. With no baseline in the metadata the
    service default (black) is used.
    """
    if method not in ("ig", "xrai"):
        raise ValueError(f"explanation metadata configures 'ig' or 'xrai', not {method!r}")
    config = config or read_explanation_metadata(model_dir)
    model = model or explainable_model(model_dir, config)
    baseline = "black" if config.baseline is None else config.baseline
    if method == "ig":
        return explain(
            images, target_classes, method="ig", model=model, steps=steps, baseline=baseline
        )
    return explain(
        images, target_classes, method="xrai", model=model, steps=steps, baselines=(baseline,)
    )


def explain_request_body(
    instances: list,
    config: ExplanationConfig,
    steps: int = 25,
    method: str = "ig",
    target_classes: list | None = None,
) -> dict:
    """A ``:explain`` request for the local server (pmlv_utils.serving) with the metadata's
    settings.

    A managed service reads the baseline from the deployed metadata; our local server takes it
    in ``parameters``, so the request carries it (``baseline`` for IG, ``baselines`` for XRAI).
    """
    if method not in ("ig", "xrai"):
        raise ValueError(f"explanation metadata configures 'ig' or 'xrai', not {method!r}")
    parameters: dict = {"method": method, "steps": int(steps)}
    if config.baseline is not None:
        key = "baseline" if method == "ig" else "baselines"
        value = config.baseline.tolist()
        parameters[key] = value if method == "ig" else [value]
    if target_classes is not None:
        parameters["target_classes"] = list(target_classes)
    return {"instances": list(instances), "parameters": parameters}


def vertex_explanation_metadata(config: ExplanationConfig) -> dict:
    """The same metadata in Vertex AI's ``ExplanationMetadata`` JSON shape."""
    inp = {"inputTensorName": config.input_tensor_name, "modality": config.modality}
    if config.baseline is not None:
        inp["inputBaselines"] = [config.baseline.tolist()]
    return {
        "inputs": {config.input_name: inp},
        "outputs": {config.output_name: {"outputTensorName": config.output_tensor_name}},
    }


def write_vertex_metadata(config: ExplanationConfig, path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(vertex_explanation_metadata(config)))
    return path


def vertex_upload_commands(
    model_uri: str,
    metadata_file: str,
    project: str | None,
    region: str,
    display_name: str = "flowers-ig",
    method: str = "integrated-gradients",
    steps: int = 25,
    image: str = VERTEX_TF_IMAGE,
    local_dir: str = "<local model folder>",
) -> list[str]:
    """The gcloud commands that deploy the model with IG (or XRAI) explanations on Vertex AI.

    Printed by the notebooks (never run there); not tested against a live project.
    """
    if method not in ("integrated-gradients", "xrai"):
        raise ValueError(f"method must be 'integrated-gradients' or 'xrai', got {method!r}")
    project_flag = f"--project={project or '$PROJECT'}"
    return [
        f"gcloud storage cp -r {local_dir}/* {model_uri}/",
        " \\\n    ".join(
            [
                "gcloud ai models upload",
                f"--region={region}",
                project_flag,
                f"--display-name={display_name}",
                f"--artifact-uri={model_uri}",
                f"--container-image-uri={image}",
                f"--explanation-method={method}",
                f"--explanation-step-count={steps}",
                f"--explanation-metadata-file={metadata_file}",
            ]
        ),
        " \\\n    ".join(
            [
                "gcloud ai endpoints create",
                f"--region={region}",
                project_flag,
                f"--display-name={display_name}-endpoint",
            ]
        ),
        " \\\n    ".join(
            [
                "gcloud ai endpoints deploy-model ENDPOINT_ID",
                f"--region={region}",
                project_flag,
                "--model=MODEL_ID",
                f"--display-name={display_name}",
                "--machine-type=n1-standard-2",
            ]
        ),
        " \\\n    ".join(
            [
                "gcloud ai endpoints explain ENDPOINT_ID",
                f"--region={region}",
                project_flag,
                "--json-request=request.json",
            ]
        ),
    ]


def explainable_copy(export_dir, dest, overwrite: bool = True) -> Path:
    """Copy a SavedModel to ``dest`` (the folder one would upload), leaving the original
    untouched."""
    src = _check_model_dir(export_dir)
    dest = Path(dest)
    if dest.exists():
        if not overwrite:
            raise FileExistsError(f"{dest} exists")
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    return dest
