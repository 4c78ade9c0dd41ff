"""Planted cues at a chosen strength: a corner stamp and a sky behind the flower.

The ground-truth benchmark of notebook 10e (section "A benchmark with known answers") needs
images where a cue can be switched on and off without touching the flower:

* ``"stamp"``: a magenta square in the top-left corner of the image's central square (the part
  THE preprocessing keeps), drawn over the finished photo with opacity ``strength``: switching
  it changes exactly the pixels of its mask;
* ``"sky"``: the sky background (:func:`.backgrounds.background_sky`, from its own random
  stream) blended over the image's background with weight ``strength`` before the flowers are
  drawn; the camera's contrast step keeps the mean of the image without the cue, so the pixels
  change only where the background shows (and at the flowers' soft edges).

:func:`render_with_cues` is what :func:`.scene.render_flower` calls for ``cues={...}``; without
cues nothing here runs and every image is drawn as before. :func:`stamp_for` is the data-set
rule that ties the stamp to :data:`CUED_CLASS` (as ``background_bias`` ties the sky to it).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .backgrounds import BIASED_CLASS, background_sky

CUES_VERSION = "1"  # bump whenever a cue of a given seed and strength is drawn differently
CUE_KINDS = ("sky", "stamp")
CUED_CLASS = BIASED_CLASS  # the class both cues are tied to in a biased data set
STAMP_COLOUR = (235, 20, 200)
STAMP_SIZE = 0.3  # side of the stamp / short side of the image
STAMP_MARGIN = 0.04  # distance from the corner of the central square / short side


def check_cues(cues: dict) -> dict:
    """``{kind: strength}`` with known kinds and strengths in [0, 1] (else ValueError)."""
    if not isinstance(cues, dict):
        raise ValueError(f"cues: a dict {{kind: strength}}, got {cues!r}")
    for kind, strength in cues.items():
        if kind not in CUE_KINDS:
            raise ValueError(f"cues: unknown cue {kind!r}; expected one of {CUE_KINDS}")
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"cues: strength of {kind!r} must be in [0, 1], got {strength!r}")
    return {kind: float(s) for kind, s in cues.items()}


def stamp_mask(width: int, height: int) -> np.ndarray:
    """Where the stamp goes (bool [H, W]): a square in the top-left corner of the central
    square of a ``width x height`` image, so a centre crop to a square keeps it."""
    side = min(width, height)
    size, margin = max(2, round(STAMP_SIZE * side)), round(STAMP_MARGIN * side)
    top, left = (height - side) // 2 + margin, (width - side) // 2 + margin
    mask = np.zeros((height, width), bool)
    mask[top : top + size, left : left + size] = True
    return mask


def draw_stamp(rgb: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """(``rgb`` with the stamp blended in at opacity ``strength``, the stamp's mask)."""
    mask = stamp_mask(rgb.shape[1], rgb.shape[0])
    out = rgb.astype(np.float32)
    out[mask] = (1 - strength) * out[mask] + strength * np.array(STAMP_COLOUR, np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8), mask


def cue_rng(seed) -> np.random.Generator:
    """The cues' own random stream of an image seed (independent of the scene's streams)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])


def sky_underlay(seed, strength: float):
    """A function ``canvas -> canvas`` blending a sky (drawn from :func:`cue_rng`) over it."""

    def underlay(canvas: Image.Image) -> Image.Image:
        sky = background_sky(cue_rng(seed), *canvas.size).convert("RGBA")
        return Image.blend(canvas, sky, strength)

    return underlay


def render_with_cues(render, label, seed, background, size, difficulty, cues: dict):
    """(rgb, mask, info) of ``render`` (the scene's renderer) with ``cues`` planted; ``info``
    gains ``cues`` (the strengths) and ``cue_masks`` (``"sky"``: where the background is,
    i.e. not the flower; ``"stamp"``: the stamp's square)."""
    cues = check_cues(cues)
    if isinstance(seed, np.random.Generator):
        raise ValueError("cues: pass a seed (an int or a tuple), not a Generator, to re-render")
    rgb, mask, info, mean = render(label, seed, background, size, difficulty)
    masks = {}
    if cues.get("sky", 0.0) > 0:
        under = sky_underlay(seed, cues["sky"])
        rgb, mask, _, _ = render(label, seed, background, size, difficulty, under, mean)
        masks["sky"] = ~mask
    if cues.get("stamp", 0.0) > 0:
        rgb, masks["stamp"] = draw_stamp(rgb, cues["stamp"])
    info.update(cues=cues, cue_masks=masks)
    return rgb, mask, info


def stamp_for(label: str, rng_or_seed, stamp_bias: float = 0.0) -> bool:
    """Whether one image of ``label`` gets the stamp: a :data:`CUED_CLASS` image with
    probability ``stamp_bias``, any other class never."""
    if not 0.0 <= stamp_bias <= 1.0:
        raise ValueError(f"stamp_bias must be in [0, 1], got {stamp_bias}")
    if stamp_bias == 0.0 or label != CUED_CLASS:
        return False
    return bool(np.random.default_rng(rng_or_seed).random() < stamp_bias)
