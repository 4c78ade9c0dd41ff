"""The perturbation methods over superpixels: LIME, KernelSHAP and Anchors (they work on black
boxes: they only call the model's ``predict``).

Each image is cut into SLIC superpixels; a method switches some of them off (see
:func:`hidden_image`) and watches the model's probability of the target class. The algorithms
come from ``lime`` (``lime_image``), ``shap`` (``KernelExplainer`` over superpixels) and
``alibi`` (``AnchorImage``). The ``run_*`` functions are what :func:`pmlv_utils.explain.explain`
dispatches to.
"""

from __future__ import annotations

import contextlib

import numpy as np
import shap
from alibi.explainers import AnchorImage
from lime import lime_image
from skimage.segmentation import slic


def superpixels(image: np.ndarray, n_segments: int = 40, compactness: float = 30.0) -> np.ndarray:
    """SLIC superpixels of one image, labelled 0..M-1 ([H, W] int). Deterministic.

    When SLIC finds almost no structure (noise, a flat image) it returns a handful of
    segments; then a regular grid of about ``n_segments`` squares is used instead.
    """
    image = np.asarray(image, np.float64)
    seg = slic(
        image,
        n_segments=int(n_segments),
        compactness=compactness,
        sigma=0.5,
        start_label=0,
        channel_axis=-1,
    )
    if len(np.unique(seg)) < max(4, int(n_segments) // 4):
        h, w = image.shape[:2]
        side = max(1, int(round(np.sqrt(h * w / int(n_segments)))))
        rows, cols = np.arange(h)[:, None] // side, np.arange(w)[None, :] // side
        seg = rows * (int(np.ceil(w / side))) + cols
    return np.unique(seg, return_inverse=True)[1].reshape(seg.shape)


def segment_means(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """The image with every superpixel filled with its mean colour (the 'switched off' image)."""
    flat = segments.ravel()
    counts = np.bincount(flat)
    means = np.stack(
        [np.bincount(flat, weights=image[..., c].ravel()) / counts for c in range(3)], axis=1
    )
    return means[segments].astype(np.float32)


HIDE_MODES = ("mean", "grey", "black")  # how a switched-off superpixel is filled
_HIDE_VALUES = {"grey": 0.5, "black": 0.0}


def hidden_image(image: np.ndarray, segments: np.ndarray, hide: str = "mean") -> np.ndarray:
    """The image with every superpixel switched off: its mean colour (LIME's and alibi's
    default), or a constant grey or black."""
    if hide == "mean":
        return segment_means(image, segments)
    if hide in _HIDE_VALUES:
        return np.full(image.shape, _HIDE_VALUES[hide], np.float32)
    raise ValueError(f"hide: unknown {hide!r}; choose one of {HIDE_MODES}")


def segment_map(segments: np.ndarray, weights: dict[int, float] | np.ndarray) -> np.ndarray:
    """A pixel map [H, W] holding each superpixel's weight."""
    values = np.zeros(segments.max() + 1, np.float32)
    items = weights.items() if isinstance(weights, dict) else enumerate(weights)
    for seg, w in items:
        values[int(seg)] = w
    return values[segments]


@contextlib.contextmanager
def _numpy_global_seed(seed: int):
    """shap and alibi draw from numpy's global generator: seed it, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def _quiet_lime(lime_image_module):
    """lime 0.2.0.1 always draws a tqdm progress bar: swap it for a plain iterator meanwhile."""
    original = lime_image_module.tqdm
    lime_image_module.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        lime_image_module.tqdm = original


def run_lime(
    images, targets, model, num_samples=1000, n_segments=40, seed=1, batch_size=100, hide="mean"
):
    """LIME weights of each image's superpixels for its target class (as pixel maps).

    Notebook 10c, "LIME by hand", writes the same steps out and gets the same map."""
    hidden_image(images[0], np.zeros(images.shape[1:3], int), hide)  # validates `hide`
    maps, details = [], {"segments": [], "score": [], "local_pred": []}
    for x, t in zip(images, targets):
        segments = superpixels(x, n_segments)
        explainer = lime_image.LimeImageExplainer(random_state=seed)
        with _quiet_lime(lime_image):
            exp = explainer.explain_instance(
                x.astype(np.float64),
                lambda batch: model.predict(batch),
                labels=(int(t),),
                top_labels=None,
                hide_color=_HIDE_VALUES.get(hide),
                num_samples=int(num_samples),
                batch_size=int(batch_size),
                segmentation_fn=lambda _img, s=segments: s,
                random_seed=seed,
            )
        maps.append(segment_map(segments, dict(exp.local_exp[int(t)])))
        details["segments"].append(segments)
        details["score"].append(float(exp.score))
        details["local_pred"].append(float(np.ravel(exp.local_pred)[0]))
    return np.stack(maps), None, details


def run_kernelshap(images, targets, model, num_samples=1000, n_segments=40, seed=1, hide="mean"):
    """KernelSHAP values of each image's superpixels for its target class (as pixel maps)."""
    maps, details = [], {"segments": [], "expected_value": []}
    for x, t in zip(images, targets):
        segments = superpixels(x, n_segments)
        off = hidden_image(x, segments, hide)
        n_seg = int(segments.max()) + 1

        def f(z, x=x, off=off, segments=segments, t=t):
            keep = np.asarray(z, bool)[:, segments]  # [K, H, W]
            batch = np.where(keep[..., None], x[None], off[None])
            return model.predict(batch)[:, t]

        with _numpy_global_seed(seed):
            explainer = shap.KernelExplainer(f, np.zeros((1, n_seg)))
            values = explainer.shap_values(
                np.ones((1, n_seg)), nsamples=int(num_samples), silent=True, l1_reg=False
            )
        maps.append(segment_map(segments, np.asarray(values).reshape(-1)))
        details["segments"].append(segments)
        details["expected_value"].append(float(np.ravel(explainer.expected_value)[0]))
    return np.stack(maps), None, details


class AnchorImageWithHide(AnchorImage):
    """alibi's AnchorImage, with switched-off superpixels filled by our hidden image.

    alibi 0.5.5 fills them with their mean colour only (its ``images_background`` option fails
    on background index 0), so ``perturbation`` -- same inputs and outputs as alibi's -- is
    overridden to use the same "off" image as LIME and KernelSHAP (set ``hidden`` first).
    """

    hidden: np.ndarray | None = None

    def perturbation(self, anchor, num_samples):
        if self.hidden is None:
            return super().perturbation(anchor, num_samples)
        segments_mask = self._choose_superpixels(num_samples, p_sample=self.p_sample)
        segments_mask[:, anchor] = 1  # the anchor's superpixels stay on
        keep = segments_mask[:, self.segments].astype(bool)[..., None]
        return np.where(keep, self.image[None], self.hidden[None]), segments_mask


def run_anchors(
    images,
    targets,
    model,
    threshold=0.95,
    p_sample=0.5,
    n_segments=40,
    seed=1,
    batch_size=100,
    hide="mean",
    max_anchor_size=None,
):
    """The anchor of each image (the superpixels that keep the model on its target) as a 0/1 map."""
    hidden_image(images[0], np.zeros(images.shape[1:3], int), hide)  # validates `hide`

    maps = []
    details = {
        "segments": [],
        "precision": [],
        "coverage": [],
        "anchor_segments": [],
        "explained": [],
    }
    for x, t in zip(images, targets):
        segments = superpixels(x, n_segments)
        predicted = int(model.predict(x[None]).argmax())

        def is_target(batch, t=int(t)):  # alibi wants class ids: 1 = "the model says t"
            return (model.predict(batch).argmax(axis=1) == t).astype(np.int64)

        with _numpy_global_seed(seed):
            explainer = AnchorImageWithHide(
                is_target, x.shape, segmentation_fn=lambda _img, s=segments: s, seed=seed
            )
            explainer.hidden = hidden_image(x, segments, hide)
            exp = explainer.explain(
                x,
                threshold=threshold,
                p_sample=p_sample,
                batch_size=int(batch_size),
                max_anchor_size=max_anchor_size,
            )
        anchor = [int(s) for s in exp.data["raw"]["feature"]]
        maps.append(np.isin(segments, anchor).astype(np.float32))
        details["segments"].append(segments)
        details["precision"].append(
            float(np.ravel(exp.precision)[0]) if np.size(exp.precision) else float("nan")
        )
        details["coverage"].append(float(exp.coverage))
        details["anchor_segments"].append(anchor)
        # an anchor explains "the model predicts t" only when it does; otherwise "it does not"
        details["explained"].append("target" if predicted == int(t) else "not target")
    return np.stack(maps), None, details
