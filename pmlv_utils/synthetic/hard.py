"""The framing of the "hard" images: where the flowers are, how big, how many, which kind.

Many photos show the flower well; a tail of them (:data:`TAIL_PROBABILITY`) do not. Outside
the tail an image has one large flower near the centre and nothing else (and a clean
camera, :mod:`.camera`). In the tail, :func:`plan_hard` draws:

* the main flower's size and place: usually (58%) head radius 28..46% of the short side,
  its centre up to 12% of the short side off the image centre in each direction; in
  :data:`FAR_PROBABILITY` of the images small (10..25%, log-uniform) and up to 20%
  off-centre; in :data:`CUT_PROBABILITY` large (30..50%) and 22..35% off-centre, so the
  frame cuts it;
* its variety (:mod:`.varieties`);
* more flowers of the same class (:data:`EXTRA_PROBABILITY`: 1..4 of them, 45..100% of the
  main flower's size, anywhere, often cut by the frame; most of the same variety);
* a flower of another class (:data:`HARD_DISTRACTOR_PROBABILITY`; half the time of a
  confusable class, :data:`.varieties.CONFUSABLE`), 30..60% of the main flower's size,
  next to it, in front of it 15% of the time (then it hides part of it).

:func:`frame_fraction` measures how much of a flower head lies inside the image.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .flowers import CLASSES
from .palette import Rng
from .varieties import CONFUSABLE, pick_variety

HARD_MIN_SIDE, HARD_MAX_SIDE = 128, 256
TAIL_PROBABILITY = 0.25  # the hard tail; the other images show one flower well (no nuisance)
# In the tail images:
CUT_PROBABILITY = 0.12
FAR_PROBABILITY = 0.3  # a small flower (head radius 10..25% of the short side)
EXTRA_PROBABILITY = 0.3
HARD_DISTRACTOR_PROBABILITY = 0.35
HARD_OCCLUDER_PROBABILITY = 0.35
MAX_HIDDEN = 0.6  # an occluder that would hide more of the flower's pixels is left out
CUT_FRACTION = 0.9  # a head less inside the image than this is "cut by the frame"


class FlowerSpec(NamedTuple):
    """One flower to draw: its class, variety, head radius (px) and centre (x, y)."""

    kind: str
    variety: str
    r: float
    centre: tuple[float, float]
    main: bool = False


def hard_size(rng: Rng) -> tuple[int, int]:
    """(width, height): each side in [HARD_MIN_SIDE, HARD_MAX_SIDE], aspect ratio 0.67..1.5."""
    w = int(rng.integers(HARD_MIN_SIDE, HARD_MAX_SIDE + 1))
    aspect = math.exp(rng.uniform(math.log(2 / 3), math.log(1.5)))
    return w, int(np.clip(round(w * aspect), HARD_MIN_SIDE, HARD_MAX_SIDE))


def _main_flower(rng: Rng, label: str, w: int, h: int, tail: bool) -> FlowerSpec:
    side = min(w, h)
    u = rng.random() if tail else 1.0
    if u < CUT_PROBABILITY:  # large and off-centre: the frame cuts it
        r = side * rng.uniform(0.3, 0.5)
        a, d = rng.uniform(0, 2 * np.pi), side * rng.uniform(0.22, 0.35)
        dx, dy = d * math.cos(a), d * math.sin(a)
    elif u < CUT_PROBABILITY + FAR_PROBABILITY:  # taken from afar: small, anywhere central
        r = side * math.exp(rng.uniform(math.log(0.1), math.log(0.25)))
        dx, dy = side * rng.uniform(-0.2, 0.2), side * rng.uniform(-0.2, 0.2)
    else:
        r = side * rng.uniform(0.28, 0.46)
        dx, dy = side * rng.uniform(-0.12, 0.12), side * rng.uniform(-0.12, 0.12)
    return FlowerSpec(label, pick_variety(rng, label), r, (w / 2 + dx, h / 2 + dy), True)


def _distractor(rng: Rng, label: str, main: FlowerSpec) -> FlowerSpec:
    if rng.random() < 0.5:
        options = CONFUSABLE[label]
    else:
        options = [c for c in CLASSES if c != label]
    kind = options[int(rng.integers(len(options)))]
    r = main.r * rng.uniform(0.3, 0.6)
    a, d = rng.uniform(0, 2 * np.pi), main.r + r * rng.uniform(-0.2, 1.2)
    centre = (main.centre[0] + d * math.cos(a), main.centre[1] + d * math.sin(a))
    return FlowerSpec(kind, pick_variety(rng, kind), r, centre)


def plan_hard(rng: Rng, label: str, w: int, h: int, tail: bool = True) -> list[FlowerSpec]:
    """The flowers of one hard image of ``label``, in drawing order (the main one flagged).
    Not ``tail``: one large flower near the centre, alone."""
    main = _main_flower(rng, label, w, h, tail)
    behind, front = [], []
    if tail and rng.random() < HARD_DISTRACTOR_PROBABILITY:
        other = _distractor(rng, label, main)
        (front if rng.random() < 0.15 else behind).append(other)
    if tail and rng.random() < EXTRA_PROBABILITY:
        margin = 0.1 * min(w, h)
        for _ in range(int(rng.choice([1, 1, 2, 2, 3, 4]))):
            variety = main.variety if rng.random() < 0.7 else pick_variety(rng, label)
            centre = (rng.uniform(-margin, w + margin), rng.uniform(-margin, h + margin))
            behind.append(FlowerSpec(label, variety, main.r * rng.uniform(0.45, 1.0), centre))
    return [*behind, main, *front]


_UNIT_DISC = np.stack(np.meshgrid(np.linspace(-1, 1, 21), np.linspace(-1, 1, 21)), -1).reshape(
    -1, 2
)
_UNIT_DISC = _UNIT_DISC[(_UNIT_DISC**2).sum(1) <= 1]


def frame_fraction(r: float, centre: tuple[float, float], w: int, h: int) -> float:
    """The fraction of a head (a disc of radius ``r`` at ``centre``) inside a ``w x h`` image."""
    x = centre[0] + r * _UNIT_DISC[:, 0]
    y = centre[1] + r * _UNIT_DISC[:, 1]
    return float(((x >= 0) & (x < w) & (y >= 0) & (y < h)).mean())


def framing_info(main_r: float, centre: tuple[float, float], w: int, h: int) -> dict:
    """The ``image_info.csv`` columns of the main flower's framing."""
    side = min(w, h)
    return {
        "flower_scale": round(main_r / side, 3),
        "centre_offset": round(math.hypot(centre[0] - w / 2, centre[1] - h / 2) / side, 3),
        "cut_by_frame": frame_fraction(main_r, centre, w, h) < CUT_FRACTION,
    }
