"""MLflow "model from code" file: the explainer served by `mlflow models serve` (10d).

MLflow executes this file when it loads the model, so no pickled Python object is stored or
loaded. The package never imports it (``pmlv_utils.tracking.log_explainer`` points MLflow at it:
``tracking.explainer.MODEL_CODE``).
"""

import mlflow.pyfunc
import numpy as np
from mlflow.models import set_model

from pmlv_utils import explain
from pmlv_utils.tracking.explainer import decode_request_images


class ExplainerModel(mlflow.pyfunc.PythonModel):
    """pyfunc model: explains each image of a DataFrame (``image_b64``, optional ``target``).

    ``target`` is a label name or class index; empty means the predicted class. The model config
    chooses the method (``ig`` by default; any of explain.METHODS the model supports) and steps.
    """

    # The signature is given explicitly when logging (tracking.explainer_signature): skip MLflow's
    # type-hint validation, which would otherwise warn on every load that predict has no hints.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        config = dict(getattr(context, "model_config", None) or {})
        self.method = config.get("method", "ig")
        self.steps = int(config.get("steps", 64))
        self.model = explain.ExplainableModel.from_saved_model(context.artifacts["saved_model"])
        if self.method not in explain.METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {explain.METHODS}")

    def _targets(self, frame, probabilities: np.ndarray) -> np.ndarray:
        predicted = probabilities.argmax(axis=1)
        if "target" not in frame:
            return predicted
        labels = self.model.labels or []
        targets = []
        for i, value in enumerate(frame["target"].tolist()):
            if (
                value is None
                or (isinstance(value, float) and np.isnan(value))
                or str(value).strip() == ""
            ):
                targets.append(int(predicted[i]))
            elif str(value).strip().lstrip("-").isdigit():
                k = int(value)
                if not 0 <= k < probabilities.shape[1]:
                    raise ValueError(
                        f"row {i}: target class {k} out of range 0..{probabilities.shape[1] - 1}"
                    )
                targets.append(k)
            elif value in labels:
                targets.append(labels.index(value))
            else:
                raise ValueError(f"row {i}: unknown target {value!r}; labels are {labels}")
        return np.asarray(targets)

    def predict(self, context, model_input, params=None):
        if "image_b64" not in model_input:
            raise ValueError(f"input needs an 'image_b64' column (got {list(model_input.columns)})")
        images = decode_request_images(model_input["image_b64"].tolist(), self.model.img_size[0])
        probabilities = self.model.predict(images)
        targets = self._targets(model_input, probabilities)
        options = {"steps": self.steps} if self.method in ("ig", "xrai") else {}
        result = explain.explain(images, targets, method=self.method, model=self.model, **options)
        labels = self.model.labels or [str(k) for k in range(probabilities.shape[1])]
        rows = []
        for i, target in enumerate(targets):
            rows.append(
                {
                    "label": labels[int(target)],
                    "probability": float(probabilities[i, int(target)]),
                    "approx_error": float(result.approx_error[i])
                    if result.approx_error is not None
                    else float("nan"),
                    "attribution_png_b64": explain.attribution_to_png_b64(result.attributions[i]),
                    "attribution": np.round(result.attributions[i].astype(float), 6).tolist(),
                }
            )
        return rows


set_model(ExplainerModel())
