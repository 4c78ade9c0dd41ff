"""Explanations over the wire: a map as a base64 PNG (what a Vertex-style ``:explain`` response
carries), a server's response decoded back to arrays, and a REST ``:predict`` route wrapped as a
black-box predict function."""

from __future__ import annotations

import base64
import io
from typing import Callable

import numpy as np
import requests
from PIL import Image


def attribution_to_png_b64(attribution: np.ndarray, percentile: float = 99.0) -> str:
    """A base64 PNG (8-bit grey) of a map's positive part, scaled so the ``percentile``-th
    positive value is white: what the Vertex response carries for display."""
    a = np.clip(np.asarray(attribution, np.float64), 0, None)
    if a.ndim != 2:
        raise ValueError(f"attribution: expected an [H, W] map, got shape {list(a.shape)}")
    top = np.percentile(a[a > 0], percentile) if np.any(a > 0) else 1.0
    grey = np.clip(a / (top or 1.0) * 255.0, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def explanations_from_response(response: dict) -> dict:
    """The maps and numbers of a server's ``:explain`` response (see ``pmlv_utils.serving``):
    ``{"attributions": [N, H, W] float32, "approx_error": [N], "target_classes": [N],
    "png_maps": [N, H, W] in [0, 1] (the displayed PNGs), "method": str}``."""
    maps, errors, targets, pngs, method = [], [], [], [], None
    for i, row in enumerate(response.get("explanations", [])):
        try:
            att = row["attributions"][0]
            feature = att["featureAttributions"]["input_images"]
            raw = np.frombuffer(base64.b64decode(feature["b64"]), dtype="<f4").reshape(
                feature["shape"]
            )
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise ValueError(f"explanation {i}: not in the expected format ({err!r})") from None
        maps.append(raw)
        errors.append(
            np.nan if att.get("approximationError") is None else att["approximationError"]
        )
        targets.append(int(att["outputIndex"][0]))
        pngs.append(png_b64_to_array(feature["b64_png"]))
        method = att.get("method", method)
    if not maps:
        raise ValueError(f"no explanations in the response (keys: {sorted(response)})")
    return {
        "attributions": np.stack(maps),
        "approx_error": np.asarray(errors, np.float64),
        "target_classes": np.asarray(targets),
        "png_maps": np.stack(pngs),
        "method": method,
    }


def image_to_png_bytes(image: np.ndarray) -> bytes:
    """A float [H, W, 3] image in [0, 1] as 8-bit PNG bytes (what a client would upload)."""
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def rest_predict_fn(predict_url: str, timeout: float = 120.0) -> Callable[[np.ndarray], np.ndarray]:
    """A black-box ``fn(images) -> probabilities`` that POSTs PNG bytes to a ``:predict`` route
    (``{"instances": [{"img_bytes": {"b64": ...}}]}``), as one would call a cloud endpoint.

    Images travel as 8-bit PNGs, so the model sees them rounded to 1/255.
    """

    def predict(images: np.ndarray) -> np.ndarray:
        instances = [
            {"img_bytes": {"b64": base64.b64encode(image_to_png_bytes(x)).decode("ascii")}}
            for x in np.asarray(images)
        ]
        resp = requests.post(predict_url, json={"instances": instances}, timeout=timeout)
        if resp.status_code != 200:
            raise RuntimeError(f"{predict_url}: HTTP {resp.status_code}: {resp.text[:300]}")
        return np.asarray([row["probability"] for row in resp.json()["predictions"]], np.float32)

    return predict


def png_b64_to_array(b64: str) -> np.ndarray:
    """Decode :func:`attribution_to_png_b64` output to a float [H, W] map in [0, 1]."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))), np.float32) / 255.0
