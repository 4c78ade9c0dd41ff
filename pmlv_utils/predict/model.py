"""The exported SavedModel in memory: :class:`LoadedModel` (signatures, labels, image size)."""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf

from .. import export

DEFAULT_SIGNATURE = "serving_default"


class LoadedModel:
    """An exported SavedModel loaded in memory, with its labels and image size.

    A plain Python object, so it can be weak-referenced (``Shared.acquire`` needs that; the
    object ``tf.saved_model.load`` returns cannot be). ``call`` runs any signature on numpy /
    Python inputs and returns numpy outputs.
    """

    def __init__(self, export_dir: str | os.PathLike):
        self.export_dir = str(export_dir)
        if not tf.io.gfile.isdir(self.export_dir):
            raise FileNotFoundError(f"no exported model folder at {self.export_dir}")
        self._loaded = tf.saved_model.load(self.export_dir)
        self.signatures = dict(self._loaded.signatures)
        self.info = export.read_model_info(self.export_dir, required=False)
        self.labels: list[str] = list(self.info.get("labels", []))
        self.img_size = self.info.get("img_size")

    def input_specs(self, signature: str = DEFAULT_SIGNATURE) -> dict:
        """``{input name: tf.TensorSpec}`` of a signature."""
        return dict(self._signature(signature).structured_input_signature[1])

    def output_specs(self, signature: str = DEFAULT_SIGNATURE) -> dict:
        return dict(self._signature(signature).structured_outputs)

    def describe(self) -> dict[str, dict]:
        """Every signature's inputs and outputs as plain JSON (name -> dtype and shape)."""

        def spec_json(specs):
            return {
                k: {
                    "dtype": v.dtype.name,
                    "shape": v.shape.as_list() if v.shape.rank is not None else None,
                }
                for k, v in sorted(specs.items())
            }

        return {
            name: {
                "inputs": spec_json(self.input_specs(name)),
                "outputs": spec_json(self.output_specs(name)),
            }
            for name in sorted(self.signatures)
        }

    def call(self, signature: str = DEFAULT_SIGNATURE, **inputs: Any) -> dict[str, Any]:
        """Run a signature; inputs are lists / numpy arrays, converted to the signature's dtypes."""
        specs = self.input_specs(signature)
        missing, unknown = set(specs) - set(inputs), set(inputs) - set(specs)
        if missing or unknown:
            raise ValueError(
                f"signature {signature!r} takes inputs {sorted(specs)}; "
                f"missing {sorted(missing)}, unexpected {sorted(unknown)}"
            )
        tensors = {k: tf.convert_to_tensor(v, dtype=specs[k].dtype) for k, v in inputs.items()}
        outputs = self._signature(signature)(**tensors)
        return {k: v.numpy() for k, v in outputs.items()}

    def _signature(self, name: str):
        try:
            return self.signatures[name]
        except KeyError:
            raise KeyError(
                f"the model has no signature {name!r}; it has {sorted(self.signatures)}"
            ) from None


def load_model(export_dir: str | os.PathLike) -> LoadedModel:
    """Load an exported SavedModel (see :class:`LoadedModel`)."""
    return LoadedModel(export_dir)
