"""Colours of the synthetic flowers: named colour families, each class's petal palette, greens.

Colours are RGBA tuples of ints (0..255). The petal palettes overlap on purpose (roses and
tulips share reds, pinks and yellows; dandelions and sunflowers share yellow): colour alone
must not tell the classes apart.
"""

from __future__ import annotations

import colorsys
from typing import Sequence

import numpy as np

Rng = np.random.Generator
Colour = tuple[int, int, int, int]


def hsv(h: float, s: float, v: float, alpha: int = 255) -> Colour:
    """An RGBA colour from hue (wraps around), saturation and value (clipped to 0..1)."""
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return int(r * 255), int(g * 255), int(b * 255), alpha


def shade(colour: Sequence[int], factor: float, alpha: int | None = None) -> tuple[int, ...]:
    """``colour`` made darker (factor < 1) or lighter (factor > 1, towards white)."""
    if factor <= 1:
        rgb = [c * factor for c in colour[:3]]
    else:
        rgb = [c + (255 - c) * (factor - 1) for c in colour[:3]]
    rgb = [int(min(max(c, 0), 255)) for c in rgb]
    return (*rgb, (colour[3] if len(colour) > 3 else 255) if alpha is None else alpha)


# Named colour families, as (hue range, saturation range, value range).
FAMILIES = {
    "white": ((0.0, 1.0), (0.0, 0.08), (0.88, 1.0)),
    "cream": ((0.10, 0.16), (0.10, 0.25), (0.90, 1.0)),
    "pale_pink": ((0.90, 0.98), (0.18, 0.40), (0.90, 1.0)),
    "pale_yellow": ((0.12, 0.16), (0.25, 0.50), (0.92, 1.0)),
    "yellow": ((0.12, 0.16), (0.80, 1.0), (0.88, 1.0)),
    "golden": ((0.09, 0.12), (0.80, 1.0), (0.85, 1.0)),
    "orange": ((0.05, 0.09), (0.75, 1.0), (0.85, 1.0)),
    "red": ((-0.03, 0.02), (0.75, 1.0), (0.55, 0.90)),
    "pink": ((0.90, 0.97), (0.35, 0.70), (0.85, 1.0)),
    "salmon": ((0.01, 0.05), (0.45, 0.70), (0.90, 1.0)),
    "purple": ((0.74, 0.86), (0.45, 0.80), (0.45, 0.80)),
    "bronze": ((0.00, 0.05), (0.65, 0.90), (0.45, 0.70)),
    "seed_white": ((0.0, 1.0), (0.0, 0.10), (0.80, 0.95)),
}

# Petal colour families of each class with their probabilities (overlapping on purpose).
PETAL_PALETTES = {
    "daisy": {"white": 0.55, "cream": 0.15, "pale_pink": 0.15, "pale_yellow": 0.15},
    "dandelion": {"yellow": 0.7, "golden": 0.25, "seed_white": 0.05},
    "roses": {"red": 0.35, "pink": 0.25, "yellow": 0.1, "white": 0.1, "salmon": 0.1, "orange": 0.1},
    "sunflowers": {"yellow": 0.55, "golden": 0.25, "orange": 0.1, "bronze": 0.1},
    "tulips": {
        "red": 0.2,
        "pink": 0.15,
        "yellow": 0.25,
        "orange": 0.15,
        "purple": 0.15,
        "white": 0.1,
    },
}


def family_colour(rng: Rng, family: str) -> Colour:
    """A random colour of one of :data:`FAMILIES`."""
    (h0, h1), (s0, s1), (v0, v1) = FAMILIES[family]
    return hsv(rng.uniform(h0, h1), rng.uniform(s0, s1), rng.uniform(v0, v1))


def petal_colour(rng: Rng, label: str) -> Colour:
    """A random petal colour of class ``label`` (a family drawn from its palette)."""
    palette = PETAL_PALETTES[label]
    family = rng.choice(list(palette), p=np.array(list(palette.values())) / sum(palette.values()))
    return family_colour(rng, str(family))


def green(rng: Rng, dark: float = 0.0) -> Colour:
    """A random leaf green; ``dark`` (0..1) lowers its value."""
    return hsv(
        rng.uniform(0.22, 0.36), rng.uniform(0.45, 0.85), rng.uniform(0.35, 0.70) * (1 - dark)
    )


def jitter(rng: Rng, colour: Sequence[int], amount: float = 0.12) -> tuple[int, ...]:
    """``colour`` a little darker or lighter (at most ``amount``)."""
    return shade(colour, 1.0 + rng.uniform(-amount, amount))


def random_colour(rng: Rng, s=(0.0, 0.7), v=(0.2, 0.95)) -> Colour:
    """Any hue, saturation and value in the given ranges (backgrounds)."""
    return hsv(rng.random(), rng.uniform(*s), rng.uniform(*v))
