"""One image: a background, the flower(s) placed on it, occluders, then camera and light.

:func:`render_flower` draws from three random streams spawned from its seed: the flowers
(size, layout, drawing, occluders), the background, and the camera finish. So for one seed
the flower is the same whatever the background kind is.

``difficulty="easy"`` (the images of generator version 3): the flower large and near the
centre; nuisances a model must ignore: image size and aspect ratio, position, scale,
rotation and tilt, the background, lighting and white balance, noise, grass or a leaf in
front of the flower (20%), extra flowers of the same class (20%) and, in 25% of the images,
a smaller flower of ANOTHER class in the background.

``difficulty="hard"``: what photos have: small, off-centre and cut flowers, several flowers,
varieties and confusable classes (:mod:`.hard`, :mod:`.varieties`), more occlusion
(:mod:`.occluders`), blur, bad exposure and colour casts (:mod:`.camera`).

The mask marks the drawn plant(s) of the image's class, minus whatever occludes it.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .backgrounds import BACKGROUND_KINDS, BACKGROUNDS, draw_background, linear_ramp
from .camera import finish_hard
from .cues import render_with_cues
from .flowers import CLASSES, DRAWERS, flower_layer
from .hard import (
    HARD_OCCLUDER_PROBABILITY,
    MAX_HIDDEN,
    TAIL_PROBABILITY,
    framing_info,
    hard_size,
    plan_hard,
)
from .occluders import grass_or_leaf, hard_occluder
from .palette import Rng
from .varieties import VARIETIES

DIFFICULTIES = ("easy", "hard")
MIN_SIDE, MAX_SIDE = 96, 256
DISTRACTOR_PROBABILITY = 0.25  # a smaller flower of another class in the background
SUPERSAMPLE = 2  # flowers are drawn at 2x and reduced: smooth edges for little cost
OCCLUDER_PROBABILITY = 0.2  # grass or a leaf in front of the flower
VISIBLE_FRACTION = 0.005  # of the image's pixels a flower needs to count as visible


def render_flower(
    label: str,
    rng_or_seed,
    background: str | None = None,
    size: tuple[int, int] | None = None,
    return_info: bool = False,
    difficulty: str = "hard",
    cues: dict | None = None,
):
    """Draw one image of ``label``; returns (RGB uint8 [H, W, 3], mask bool [H, W]).

    ``rng_or_seed``: a ``numpy.random.Generator`` or anything ``numpy.random.default_rng``
    accepts (an int, or a sequence such as ``(seed, class_index, index)``).
    ``background``: one of BACKGROUND_KINDS, or None to draw one uniformly.
    ``size``: (width, height), or None to draw one (96..256 px a side when easy,
    128..256 when hard).
    ``difficulty``: "easy" or "hard" (see the module docstring).
    ``return_info``: also return a dict describing the scene: ``background``,
    ``other_flower`` (the class of a visible flower of another class, or None),
    ``n_flowers`` (visible flowers of ``label``), ``occluded`` (something in front),
    the main flower's ``variety``, ``flower_scale`` (head radius / short side),
    ``centre_offset`` (distance from the image centre / short side), ``cut_by_frame``,
    the camera's ``blur``, ``blur_sigma``, ``exposure`` and ``colour_cast``, and
    ``hard_tail`` (hard: the image is in the hard tail; False when easy).
    ``cues``: planted cues and their strengths, e.g. ``{"stamp": 1.0, "sky": 0.5}``
    (:mod:`.cues`; needs a seed, not a Generator); None or ``{}``: none, the image unchanged.
    Then ``info["cue_masks"]`` holds each cue's region (bool [H, W]).
    """
    if label not in DRAWERS:
        raise ValueError(f"unknown flower label {label!r}; expected one of {CLASSES}")
    if background is not None and background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; expected one of {BACKGROUND_KINDS}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    if cues:
        rgb, mask, info = render_with_cues(
            _render, label, rng_or_seed, background, size, difficulty, cues
        )
    else:
        rgb, mask, info, _ = _render(label, rng_or_seed, background, size, difficulty)
    return (rgb, mask, info) if return_info else (rgb, mask)


def _render(label, rng_or_seed, background, size, difficulty, underlay=None, mean=None):
    """(rgb, mask, info, the finish's contrast mean) of :func:`render_flower`. ``underlay``:
    a function ``(canvas) -> canvas`` applied to the background before the flowers are drawn;
    ``mean``: the contrast step's mean (None: the image's own)."""
    rng = np.random.default_rng(rng_or_seed)
    flower_rng, background_rng, finish_rng = rng.spawn(3)

    hard = difficulty == "hard"
    if size is None:
        size = hard_size(flower_rng) if hard else _image_size(flower_rng)
    w, h = size
    background, canvas = draw_background(background_rng, background, w, h)
    if underlay is not None:
        canvas = underlay(canvas)
    mask = np.zeros((h, w), dtype=bool)
    info = {"background": background, "other_flower": None, "n_flowers": 0, "occluded": False}
    if hard:
        tail = bool(rng.random() < TAIL_PROBABILITY)  # the parent stream: after the spawns
        _draw_hard(canvas, mask, info, flower_rng, label, tail)
        rgb, camera = finish_hard(finish_rng, np.asarray(canvas.convert("RGB")), tail, mean)
        info["hard_tail"] = tail
    else:
        _draw_easy(canvas, mask, info, flower_rng, label)
        rgb, camera = _finish(finish_rng, np.asarray(canvas.convert("RGB")), mean)
    mean = camera.pop("contrast_mean")
    info.update(camera)
    return rgb, mask, info, mean


def _draw_easy(canvas, mask, info, rng: Rng, label: str) -> None:
    """The easy scene (generator version 3): one large flower near the centre."""
    w, h = canvas.size
    for kind, r, centre in _plan_flowers(rng, label, w, h):
        _add_flower(canvas, mask, info, rng, label, kind, r, centre)
    info.update(variety="classic", **framing_info(r, centre, w, h))  # the main flower: last
    if rng.random() < OCCLUDER_PROBABILITY:
        front = grass_or_leaf(rng, w, h)
        canvas.alpha_composite(front)
        mask &= ~(np.asarray(front.getchannel("A")) > 127)
        info["occluded"] = True


def _draw_hard(canvas, mask, info, rng: Rng, label: str, tail: bool) -> None:
    """The hard scene: :func:`.hard.plan_hard`'s flowers, then (in the tail) perhaps an
    occluder (left out when it would hide more than MAX_HIDDEN of the flower)."""
    w, h = canvas.size
    for spec in plan_hard(rng, label, w, h, tail):
        _add_flower(canvas, mask, info, rng, label, spec.kind, spec.r, spec.centre, spec.variety)
        if spec.main:
            info.update(variety=spec.variety, **framing_info(spec.r, spec.centre, w, h))
    if tail and rng.random() < HARD_OCCLUDER_PROBABILITY:
        _, front = hard_occluder(rng, w, h)
        hidden = np.asarray(front.getchannel("A")) > 127
        if (mask & hidden).sum() <= MAX_HIDDEN * mask.sum():
            canvas.alpha_composite(front)
            mask &= ~hidden
            info["occluded"] = True


def _plan_flowers(rng: Rng, label: str, w: int, h: int) -> list[tuple[str, float, tuple]]:
    """(class, head radius, centre) of each flower, in drawing order: a smaller flower of
    ANOTHER class sometimes (a mixed flower bed; background, not in the mask), smaller
    flowers of the same class sometimes, the main flower last."""
    side = min(w, h)
    main_r = side * rng.uniform(0.38, 0.48)
    main_centre = (
        w / 2 + rng.uniform(-0.06, 0.06) * side,
        h / 2 + rng.uniform(-0.06, 0.06) * side,
    )
    flowers = []
    if rng.random() < DISTRACTOR_PROBABILITY:
        other = [c for c in CLASSES if c != label][int(rng.integers(len(CLASSES) - 1))]
        r = main_r * rng.uniform(0.3, 0.5)
        a, d = rng.uniform(0, 2 * np.pi), main_r + r * rng.uniform(0.3, 1.5)
        flowers.append(
            (other, r, (main_centre[0] + d * math.cos(a), main_centre[1] + d * math.sin(a)))
        )
    for _ in range(int(rng.choice([0, 0, 0, 0, 1]))):
        flowers.append(
            (label, main_r * rng.uniform(0.35, 0.65), (rng.uniform(0, w), rng.uniform(0, h)))
        )
    flowers.append((label, main_r, main_centre))
    return flowers


def _add_flower(
    canvas, mask, info, rng: Rng, label: str, kind: str, r: float, centre, variety=None
) -> None:
    """Draw one flower of class ``kind`` (and ``variety``, None: the easy drawing) onto
    ``canvas`` (RGBA, in place). A flower of the image's ``label`` joins ``mask``; any other
    flower is cut out of it. Updates ``info``."""
    w, h = canvas.size
    if variety is None:
        layer, c = flower_layer(rng, kind, r * SUPERSAMPLE)
        upright = kind == "tulips"
        squash_range = (0.85, 1.1) if upright else (0.8, 1.0)
    else:
        spec = VARIETIES[kind][variety]
        layer, c = flower_layer(rng, kind, r * SUPERSAMPLE, spec.drawer, spec.own_stem)
        upright, squash_range = spec.upright, spec.squash
    angle = rng.normal(0, 0.3) if upright else rng.uniform(0, 2 * np.pi)
    squash = rng.uniform(*squash_range)
    placed = _place(layer, (c, c), (w, h), centre, angle, squash)
    if placed is None:
        return
    patch, (x, y) = placed
    canvas.alpha_composite(patch, dest=(x, y))
    alpha = np.asarray(patch.getchannel("A")) > 127
    visible = alpha.sum() >= VISIBLE_FRACTION * w * h
    region = mask[y : y + patch.height, x : x + patch.width]  # a view: updates the mask
    if kind == label:
        region |= alpha
        info["n_flowers"] += int(visible)
    else:
        region &= ~alpha
        info["other_flower"] = kind if visible else None


def _place(
    layer: Image.Image,
    layer_centre: tuple[float, float],
    size: tuple[int, int],
    centre: tuple[float, float],
    angle: float,
    squash: float,
) -> tuple[Image.Image, tuple[int, int]] | None:
    """Squash ``layer`` vertically, rotate it, and put its ``layer_centre`` at ``centre`` of an
    image of ``size`` (width, height). Returns (RGBA patch, (x, y) of its top-left corner in the
    image), or None when the flower falls outside the image.

    One affine resampling at SUPERSAMPLE x the output scale, then a box reduction
    (anti-aliasing), both only over the patch the flower covers.
    """
    ss = SUPERSAMPLE
    box = layer.getbbox()
    if box is None:
        return None
    layer = layer.crop(box)
    px, py = layer_centre[0] - box[0], layer_centre[1] - box[1]
    tx, ty = centre[0] * ss, centre[1] * ss
    ca, sa = math.cos(angle), math.sin(angle)
    # where the layer's corners land (output = t + rot(angle) @ diag(1, squash) @ (p - pc))
    lw, lh = layer.size
    corners = np.array([(0, 0), (lw, 0), (0, lh), (lw, lh)], dtype=float) - (px, py)
    xs = tx + ca * corners[:, 0] - sa * squash * corners[:, 1]
    ys = ty + sa * corners[:, 0] + ca * squash * corners[:, 1]
    x0 = max(0, int(xs.min() // ss)) * ss
    y0 = max(0, int(ys.min() // ss)) * ss
    x1 = min(size[0], int(-(-xs.max() // ss))) * ss
    y1 = min(size[1], int(-(-ys.max() // ss))) * ss
    if x1 <= x0 or y1 <= y0:
        return None
    # the inverse map, patch pixel -> layer pixel:
    # p = pc + diag(1, 1/squash) @ rot(-angle) @ (q + o - t)
    a, b, d, e = ca, sa, -sa / squash, ca / squash
    ox, oy = tx - x0, ty - y0
    data = (a, b, px - a * ox - b * oy, d, e, py - d * ox - e * oy)
    patch = layer.transform(
        (x1 - x0, y1 - y0), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR
    )
    return patch.reduce(ss), (x0 // ss, y0 // ss)


def _finish(rng: Rng, rgb: np.ndarray, mean: float | None = None) -> tuple[np.ndarray, dict]:
    """Camera and light (easy): saturation, exposure, white balance, a light gradient,
    contrast (around ``mean``, None: the image's), noise. Returns the image and the camera's
    ``image_info.csv`` columns (and ``contrast_mean``)."""
    h, w, _ = rgb.shape
    img = rgb.astype(np.float32)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.65, 1.15)  # saturation
    exposure = rng.uniform(0.75, 1.15)
    img *= exposure * rng.uniform(0.86, 1.14, 3)  # exposure, white balance
    img *= 1.0 + rng.uniform(-0.25, 0.25) * (
        linear_ramp(w, h, rng.uniform(0, 2 * np.pi))[..., None] - 0.5
    )
    mean = img.mean() if mean is None else mean
    img = (img - mean) * rng.uniform(0.8, 1.15) + mean
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(0, 6)
    camera = {"blur": "none", "blur_sigma": 0.0, "exposure": round(exposure, 3), "colour_cast": ""}
    camera["contrast_mean"] = mean
    camera["hard_tail"] = False  # easy images have no hard tail
    return np.clip(img, 0, 255).astype(np.uint8), camera


def _image_size(rng: Rng) -> tuple[int, int]:
    """(width, height): each side in [MIN_SIDE, MAX_SIDE], aspect ratio 0.6..1.6."""
    w = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    h = int(
        np.clip(round(w * math.exp(rng.uniform(math.log(0.6), math.log(1.6)))), MIN_SIDE, MAX_SIDE)
    )
    return w, h
