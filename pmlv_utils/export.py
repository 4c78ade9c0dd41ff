"""Export a trained Keras 3 model as a SavedModel with the course's serving signatures.

Keras 3 refuses ``model.save(dir, signatures=...)``; ``keras.export.ExportArchive`` writes
several named endpoints (and the result converts to TFLite, see PLATFORM_NOTES). Every
endpoint that takes files or bytes calls :func:`pmlv_utils.preprocess.preprocess_image`,
the same function the training data went through.

| signature       | inputs                                | outputs                               |
|-----------------|---------------------------------------|---------------------------------------|
| serving_default | filenames: string [None]              | probability [None, K],                |
|                 |                                       | flower_type_int, flower_type_str      |
| from_bytes      | img_bytes: string [None]              | as serving_default                    |
| passthrough     | filenames: string, key: int64         | as serving_default + filename, key    |
| xai_preprocess  | filenames: string [None]              | input_images [None, H, W, 3]          |
| xai_model       | input_images: float32 [None, H, W, 3] | probability [None, K]                 |

``<export_dir>/assets.extra/labels.txt`` and ``model_info.json`` describe the model.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from .preprocess import RandomCropOrCenter, preprocess_image

SIGNATURES = ("serving_default", "from_bytes", "passthrough", "xai_preprocess", "xai_model")
EXTRA_DIR = "assets.extra"


def export_saved_model(
    model: keras.Model,
    export_dir: str,
    labels: list[str],
    img_size: int,
    model_kind: str = "small_cnn",
    extra_info: dict | None = None,
) -> str:
    """Write ``model`` with the signatures above to ``export_dir`` (replaced if it exists)."""
    labels = [str(label) for label in labels]
    num_classes = int(model.output_shape[-1])
    if len(labels) != num_classes:
        raise ValueError(f"{len(labels)} labels {labels} for a model with {num_classes} outputs")
    size = int(img_size)
    endpoints = signature_functions(model, labels, size)
    strings = tf.TensorSpec([None], tf.string)
    specs = {
        "serving_default": [strings],
        "from_bytes": [strings],
        "passthrough": [strings, tf.TensorSpec([None], tf.int64)],
        "xai_preprocess": [strings],
        "xai_model": [tf.TensorSpec([None, size, size, 3], tf.float32)],
    }
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name in SIGNATURES:
        archive.add_endpoint(name, endpoints[name], specs[name])
    export_dir = str(export_dir)
    _write_archive(archive, export_dir)
    info = {
        "img_size": size,
        "labels": labels,
        "model_kind": model_kind,
        "signatures": list(SIGNATURES),
        "field_of_view": inference_window(model, size),
        **(extra_info or {}),
    }
    extra = os.path.join(export_dir, EXTRA_DIR)
    tf.io.gfile.makedirs(extra)
    with tf.io.gfile.GFile(os.path.join(extra, "labels.txt"), "w") as f:
        f.write("\n".join(labels) + "\n")
    with tf.io.gfile.GFile(os.path.join(extra, "model_info.json"), "w") as f:
        f.write(json.dumps(info, indent=1))
    return export_dir


def inference_window(model: keras.Model, height: int, width: int | None = None) -> list[int]:
    """[top, left, height, width]: the window of a ``height`` x ``width`` input the model looks
    at in inference (its field of view): the centre crop of a :class:`RandomCropOrCenter`
    layer, else the whole image. Explanations draw and score their maps on this window only."""
    height = int(height)
    width = height if width is None else int(width)
    for layer in model.layers:
        if isinstance(layer, RandomCropOrCenter):
            top, left = (height - layer.height) // 2, (width - layer.width) // 2
            return [top, left, int(layer.height), int(layer.width)]
    return [0, 0, height, width]


def signature_functions(model: keras.Model, labels: list[str], size: int) -> dict:
    """``{signature name: function}`` of :data:`SIGNATURES` (inputs and outputs: see above);
    every function that takes files or bytes runs :func:`preprocess_image` on them."""
    label_table = tf.constant(labels)

    def classify(images):
        probability = model(images, training=False)
        flower_type_int = tf.argmax(probability, axis=1)
        return {
            "probability": probability,
            "flower_type_int": flower_type_int,
            "flower_type_str": tf.gather(label_table, flower_type_int),
        }

    def preprocess_all(tensors, read):
        return tf.map_fn(
            lambda t: preprocess_image(read(t), size, size),
            tensors,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
        )

    def preprocess_files(filenames):
        return preprocess_all(filenames, tf.io.read_file)

    def serving_default(filenames):
        return classify(preprocess_files(filenames))

    def from_bytes(img_bytes):
        return classify(preprocess_all(img_bytes, lambda b: b))

    def passthrough(filenames, key):
        return {**classify(preprocess_files(filenames)), "filename": filenames, "key": key}

    def xai_preprocess(filenames):
        return {"input_images": preprocess_files(filenames)}

    def xai_model(input_images):
        return {"probability": model(input_images, training=False)}

    return dict(
        serving_default=serving_default,
        from_bytes=from_bytes,
        passthrough=passthrough,
        xai_preprocess=xai_preprocess,
        xai_model=xai_model,
    )


def _write_archive(archive, export_dir: str) -> None:
    """``archive.write_out(export_dir)``, replacing an old export, without TF's INFO lines."""
    if tf.io.gfile.exists(export_dir):
        if tf.io.gfile.isdir(export_dir):
            tf.io.gfile.rmtree(export_dir)
        else:
            raise ValueError(f"{export_dir}: exists and is not a folder")
    logger = tf.get_logger()  # tf.saved_model.save logs "Assets written to: <path>" at INFO
    level = logger.level
    logger.setLevel("WARNING")
    try:
        archive.write_out(export_dir, verbose=False)
    finally:
        logger.setLevel(level)


def read_model_info(export_dir: str | os.PathLike, required: bool = True) -> dict:
    """``assets.extra/model_info.json`` of an exported model (labels from ``labels.txt`` if absent).

    With ``required=False`` a model without the file gives ``{}`` instead of FileNotFoundError.
    """
    extra = f"{str(export_dir).rstrip('/')}/{EXTRA_DIR}"
    info_path, labels_path = f"{extra}/model_info.json", f"{extra}/labels.txt"
    info: dict = {}
    if tf.io.gfile.exists(info_path):
        with tf.io.gfile.GFile(info_path) as f:
            info = json.load(f)
    elif required:
        raise FileNotFoundError(
            f"{info_path}: missing; is {export_dir} a model from export_saved_model()?"
        )
    if not info.get("labels") and tf.io.gfile.exists(labels_path):
        with tf.io.gfile.GFile(labels_path) as f:
            info["labels"] = f.read().split()
    return info


def model_labels(export_dir: str | os.PathLike) -> list[str]:
    """Class names of an exported model, in output order ([] when the model does not say)."""
    return list(read_model_info(export_dir, required=False).get("labels", []))


class Signatures(dict):
    """``{name: concrete function}`` of a loaded SavedModel; holds the loaded object
    (the functions need it alive for their variables) as ``.loaded``."""

    def __init__(self, loaded):
        super().__init__(loaded.signatures)
        self.loaded = loaded


def load_signatures(export_dir: str) -> Signatures:
    """The signatures of an exported model:
    ``load_signatures(d)["serving_default"](filenames=...)``."""
    if not tf.io.gfile.exists(os.path.join(str(export_dir), "saved_model.pb")):
        raise FileNotFoundError(f"{export_dir}: no saved_model.pb (not an exported SavedModel)")
    return Signatures(tf.saved_model.load(str(export_dir)))


def describe_signatures(export_dir: str) -> str:
    """The inputs and outputs of each signature, one per line (stable text, for notebooks)."""
    loaded = tf.saved_model.load(str(export_dir))
    lines = []
    for name in sorted(loaded.signatures):
        fn = loaded.signatures[name]
        ins = fn.structured_input_signature[1]
        outs = fn.structured_outputs
        fmt = lambda specs: ", ".join(
            f"{k}: {v.dtype.name}{list(v.shape)}"  # noqa: E731
            for k, v in sorted(specs.items())
        )
        lines.append(f"{name}({fmt(ins)}) -> {fmt(outs)}")
    return "\n".join(lines)
