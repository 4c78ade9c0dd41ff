"""The SHAP image explainer as an MLflow pyfunc model: the hardened version of 10d's §5.

:class:`ShapImageExplainer` wraps ``shap.Explainer(f, shap.maskers.Image(masker, shape))`` (a
``PartitionExplainer``) around the ``xai_model`` signature of an exported SavedModel.
MLflow builds it from code (:mod:`pmlv_utils.tracking.explainer_model`), so nothing is pickled.

Input: a DataFrame with one string column ``image_b64`` (base64 JPEG/PNG bytes). A path column
is refused: a server that opens the paths its clients send lets any client read its files, so
batch jobs read their files themselves (on the trusted side) and send the bytes.
Output: one row per input row, in :data:`OUTPUT_COLUMNS` order, plain JSON types only:

- ``label``, ``probability``: the explained class (the predicted one) and its probability;
- ``base_value``: the model's expected output over fully masked images (SHAP's baseline);
- ``shap``: the SHAP values summed over RGB, averaged over blocks to at most ``map_size`` x
  ``map_size`` (a JSON array of arrays); ``shap_png_b64``: the same map as a base64 PNG;
- ``error``: ``""``, or why this row has no explanation. A bad row never fails the others and
  never holds NaN or None: strings ``""``, numbers ``0.0``, ``shap`` ``[]``. (Spark's
  ``spark_udf`` turns a None in a string column into the text "None", and ``NaN`` is not JSON.)
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import shap
import tensorflow as tf
from PIL import Image

from .. import image_limits
from ..export import read_model_info
from ..preprocess import preprocess_image

OUTPUT_COLUMNS = ("label", "probability", "base_value", "shap", "shap_png_b64", "error")
DEFAULT_CONFIG = {
    "masker": "blur(16,16)",
    "max_evals": 300,
    "batch_size": 100,
    "map_size": 32,
    "seed": 0,
    "max_pixels": image_limits.DEFAULT_MAX_PIXELS,
}


def decode_image_b64(text, img_size: int, max_pixels: int = image_limits.DEFAULT_MAX_PIXELS):
    """base64 JPEG/PNG -> float32 [H, W, 3] in [0, 1] through THE preprocessing function.

    Raises ValueError with a client-fit reason (not base64, not an image, too many pixels)."""
    if not isinstance(text, str) or not text:
        raise ValueError("image_b64 is empty")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("image_b64 is not valid base64") from None
    image_limits.check(raw, max_pixels)  # header only: a bomb never reaches the decoder
    try:
        return preprocess_image(tf.constant(raw), img_size, img_size).numpy()
    except tf.errors.InvalidArgumentError:
        raise ValueError("image_b64 does not hold a decodable JPEG/PNG image") from None


def block_map(values: np.ndarray, map_size: int) -> np.ndarray:
    """[H, W] -> block means, at most ``map_size`` per side (whole blocks; H, W kept if small)."""
    h, w = values.shape
    fy, fx = max(1, h // map_size), max(1, w // map_size)
    cropped = values[: h - h % fy, : w - w % fx]
    return cropped.reshape(h // fy, fy, w // fx, fx).mean(axis=(1, 3))


def map_to_png_b64(values: np.ndarray) -> str:
    """A signed map as a base64 PNG: red where SHAP values are positive, blue where negative."""
    top = float(np.abs(values).max()) or 1.0
    scaled = np.clip(values / top, -1.0, 1.0)
    rgb = np.full((*values.shape, 3), 255.0)
    rgb[..., 1] -= 255.0 * np.abs(scaled)
    rgb[..., 2] -= 255.0 * np.clip(scaled, 0, None)
    rgb[..., 0] -= 255.0 * np.clip(-scaled, 0, None)
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def error_row(reason: str) -> dict:
    """The output row of an input that could not be explained."""
    return dict(label="", probability=0.0, base_value=0.0, shap=[], shap_png_b64="", error=reason)


def significant(values: np.ndarray, digits: int = 4) -> list:
    """A map as nested lists of floats with ``digits`` significant digits (small JSON; tiny
    SHAP values of an untrained model do not round to 0 as fixed decimals would)."""
    return [[float(f"{x:.{digits}g}") for x in row] for row in np.asarray(values, np.float64)]


class ShapImageExplainer(mlflow.pyfunc.PythonModel):
    """pyfunc model: a SHAP partition explainer over an exported SavedModel (see module doc).

    Artifacts: ``saved_model`` (an export of :mod:`pmlv_utils.export`). Model config: the keys
    of :data:`DEFAULT_CONFIG`.
    """

    # The signature is explicit (tracking.explainer_signature): skip MLflow's type-hint check.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        self.config = {**DEFAULT_CONFIG, **dict(getattr(context, "model_config", None) or {})}
        export_dir = Path(context.artifacts["saved_model"])
        info = read_model_info(export_dir)
        self.img_size, self.labels = int(info["img_size"]), [str(x) for x in info["labels"]]
        self._loaded = tf.saved_model.load(str(export_dir))  # keep the functions alive
        self._forward = self._loaded.signatures["xai_model"]
        shape = (self.img_size, self.img_size, 3)
        masker = shap.maskers.Image(self.config["masker"], shape)
        self.explainer = shap.Explainer(self.probabilities, masker, output_names=self.labels)

    def probabilities(self, images) -> np.ndarray:
        """f(images [N, H, W, 3] in [0, 1]) -> probabilities [N, C], in model batches."""
        images = np.asarray(images, np.float32)
        step = int(self.config["batch_size"])
        parts = [
            self._forward(input_images=tf.constant(images[i : i + step]))["probability"].numpy()
            for i in range(0, len(images), step)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.labels)), np.float32)

    def explain(self, images: np.ndarray) -> shap.Explanation:
        """SHAP values of the predicted class: values [N, H, W, 3, 1], base_values [N, 1]."""
        np.random.seed(int(self.config["seed"]))
        return self.explainer(
            images,
            max_evals=int(self.config["max_evals"]),
            batch_size=int(self.config["batch_size"]),
            outputs=shap.Explanation.argsort.flip[:1],
            silent=True,
        )

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if "path" in frame or "image_b64" not in frame:
            raise ValueError(
                f"expected a column 'image_b64' (base64 image bytes; no paths), got {list(frame)}"
            )
        rows, images, good = [None] * len(frame), [], []
        for i, text in enumerate(frame["image_b64"].tolist()):
            try:
                images.append(decode_image_b64(text, self.img_size, self.config["max_pixels"]))
                good.append(i)
            except ValueError as err:
                rows[i] = error_row(str(err))
        if images:
            try:
                for i, row in zip(good, self.explained_rows(np.stack(images))):
                    rows[i] = row
            except Exception as err:  # noqa: BLE001 - a failed batch marks its rows only
                for i in good:
                    rows[i] = error_row(f"explainer failed: {type(err).__name__}: {err}"[:300])
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))

    def explained_rows(self, images: np.ndarray) -> list[dict]:
        """One output row per image (all explained in one SHAP call)."""
        values = self.explain(images)
        probs = self.probabilities(images)
        rows = []
        for j, p in enumerate(probs):
            k = int(p.argmax())  # the class SHAP explained: outputs=argsort.flip[:1]
            summed = block_map(np.asarray(values.values[j, ..., 0]).sum(axis=-1), self.map_size)
            rows.append(
                dict(
                    label=self.labels[k],
                    probability=float(p[k]),
                    base_value=float(np.ravel(values.base_values[j])[0]),
                    shap=significant(summed),
                    shap_png_b64=map_to_png_b64(summed),
                    error="",
                )
            )
        return rows

    @property
    def map_size(self) -> int:
        return int(self.config["map_size"])
