"""The blog's black box: the exported model as an ONNX file and as a frozen TensorFlow graph.

The blog explains a model exported from a cloud vision service, a file it can only *run*. Here
the course's own export plays that part: its ``xai_model`` signature (images -> probabilities)
is converted

- to ONNX with ``tf2onnx`` and run with ``onnxruntime``;
- to a *frozen graph*: a GraphDef with the variables folded into constants (TensorFlow 1's
  deployment format), run with ``tf.compat.v1.wrap_function``.

Each gives a ``predict_fn`` for :meth:`ExplainableModel.from_predict_fn`, so LIME, KernelSHAP
and Anchors explain it exactly as they explain the model in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime
import tensorflow as tf
import tf2onnx
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

ONNX_OPSET = 17


def _signature(export_dir: str | Path):
    loaded = tf.saved_model.load(str(export_dir))
    fn = loaded.signatures["xai_model"]
    ((name, spec),) = fn.structured_input_signature[1].items()
    return loaded, fn, name, spec


def to_onnx(export_dir: str | Path, path: str | Path, opset: int = ONNX_OPSET) -> Path:
    """Convert the export's ``xai_model`` signature to an ONNX file at ``path``."""
    loaded, fn, name, spec = _signature(export_dir)  # loaded: keeps the variables alive
    wrapped = tf.function(lambda images: fn(**{name: images})["probability"])
    tf2onnx.convert.from_function(
        wrapped,
        input_signature=[tf.TensorSpec(spec.shape, tf.float32, name=name)],
        opset=int(opset),
        output_path=str(path),
    )
    return Path(path)


def onnx_predict_fn(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """images [N, H, W, 3] float32 -> probabilities [N, C], by onnxruntime on the CPU."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    return lambda x: session.run(None, {input_name: np.asarray(x, np.float32)})[0]


def to_frozen_graph(export_dir: str | Path, path: str | Path) -> Path:
    """The ``xai_model`` signature as a frozen GraphDef (variables as constants) at ``path``."""
    loaded, fn, name, spec = _signature(export_dir)
    frozen = convert_variables_to_constants_v2(fn)
    Path(path).write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return Path(path)


def frozen_graph_predict_fn(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """images -> probabilities, by the frozen graph's first input and its softmax output."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(path).read_bytes())
    inputs = [n.name for n in graph_def.node if n.op == "Placeholder"]
    if len(inputs) != 1:
        raise ValueError(f"{Path(path).name}: expected one input placeholder, found {inputs}")
    output = _probability_node(graph_def)

    def import_graph():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(import_graph, [])
    run = wrapped.prune(
        wrapped.graph.get_tensor_by_name(f"{inputs[0]}:0"),
        wrapped.graph.get_tensor_by_name(f"{output}:0"),
    )
    return lambda x: run(tf.constant(np.asarray(x, np.float32))).numpy()


def _probability_node(graph_def) -> str:
    """The name of the graph's output: the node nothing else reads (an Identity of the
    probabilities, in a converted signature)."""
    read = {i.split(":")[0].lstrip("^") for n in graph_def.node for i in n.input}
    ends = [n.name for n in graph_def.node if n.name not in read and n.op != "NoOp"]
    if len(ends) != 1:
        raise ValueError(f"frozen graph: expected one output node, found {ends}")
    return ends[0]
