"""Varieties: two or three sub-types of each class, used by the "hard" difficulty.

Real classes are not one shape: there are many-rayed and coloured daisies, dandelions in
bloom, open or gone to seed, roses seen from the top, as a bud from the side or as a flat
wild rose, small-disc or tilted sunflowers, and open or double tulips. Some varieties look
like another class on purpose (the confusable pairs of :data:`CONFUSABLE`): an open
dandelion is a yellow ray flower like a yellow daisy (no distinct disc though); a rose bud
and a double tulip are both red or pink cups on a stem.

:data:`VARIETIES` maps each class to ``{name: Variety}``; ``"classic"`` is the class's
drawer of :mod:`.flowers` (the only variety of the "easy" images). A drawer is
``draw(draw, rng, c, r)`` as in :mod:`.flowers`.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from .flowers import CLASSES, DRAWERS
from .palette import Rng, family_colour, green, hsv, jitter, petal_colour, shade
from .shapes import ellipse_polygon, leaf, petal_polygon, stem


class Variety(NamedTuple):
    """One sub-type of a class: how often it is drawn and how."""

    probability: float
    drawer: Callable
    own_stem: bool = False  # the drawer draws its own stem (side views)
    upright: bool = False  # side view: hardly rotated (else any rotation)
    squash: tuple[float, float] = (0.8, 1.0)  # vertical squash of the head (tilt)


# The class a flower of each class is most easily taken for (distractors and label noise
# pick these more often).
CONFUSABLE = {
    "daisy": ("dandelion",),
    "dandelion": ("daisy", "sunflowers"),
    "roses": ("tulips",),
    "sunflowers": ("dandelion",),
    "tulips": ("roses",),
}


def pick(rng: Rng, weights: dict):
    """A key of ``weights`` drawn with probabilities proportional to its values."""
    keys = list(weights)
    p = np.array([float(weights[k]) for k in keys])
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _disc(draw, rng: Rng, c: float, disc_r: float, colour, seeds: bool = False) -> None:
    """A flower's centre: florets (daisy-like) or a seed spiral (sunflower-like)."""
    draw.ellipse(
        [c - disc_r, c - disc_r, c + disc_r, c + disc_r], fill=colour, outline=shade(colour, 0.7)
    )
    if seeds:
        n, dot = int(disc_r * 2.2), max(1.0, disc_r / 14)
        for k in range(1, n):
            rr, a = disc_r * 0.92 * math.sqrt(k / n), k * 2.39996
            x, y = c + rr * math.cos(a), c + rr * math.sin(a)
            draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=shade(colour, 1.4))
        return
    for _ in range(int(disc_r * 2)):
        rr, a = disc_r * 0.85 * math.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        x, y = c + rr * math.cos(a), c + rr * math.sin(a)
        draw.point((x, y), fill=shade(colour, rng.uniform(0.6, 0.9)))


def _rays(draw, rng: Rng, c, r, colour, n, width, start, rows=2, pointed=False) -> None:
    """``rows`` rings of ``n`` petals from radius ``start`` to about ``r`` (back rows darker)."""
    base = rng.uniform(0, 2 * np.pi)
    for row in range(rows):
        for k in range(n):
            a = base + 2 * np.pi * (k + row / rows) / n + rng.normal(0, 0.04)
            length = r * rng.uniform(0.8, 1.0) - start
            col = jitter(rng, shade(colour, 0.85 if row < rows - 1 else 1.0), 0.06)
            draw.polygon(
                petal_polygon(c, c, a, start, length, width, pointed=pointed),
                fill=col,
                outline=shade(col, 0.8),
            )


def draw_daisy_oxeye(draw, rng: Rng, c: float, r: float) -> None:
    """Many narrow white rays around a small disc."""
    petal = family_colour(rng, str(rng.choice(["white", "white", "cream"])))
    disc_r = r * rng.uniform(0.13, 0.19)
    n = int(rng.integers(30, 45))
    _rays(draw, rng, c, r, petal, n, r * rng.uniform(0.06, 0.09), disc_r * 0.6)
    _disc(draw, rng, c, disc_r, family_colour(rng, "yellow"))


def draw_daisy_coloured(draw, rng: Rng, c: float, r: float) -> None:
    """Fewer, wider pink, lilac or pale yellow rays around a large golden disc."""
    petal = family_colour(rng, str(rng.choice(["pink", "pale_pink", "purple", "pale_yellow"])))
    disc_r = r * rng.uniform(0.24, 0.32)
    n = int(rng.integers(12, 21))
    rows = int(rng.integers(1, 3))
    _rays(draw, rng, c, r, petal, n, r * rng.uniform(0.15, 0.22), disc_r * 0.6, rows)
    _disc(draw, rng, c, disc_r, family_colour(rng, "golden"))


def draw_dandelion_open(draw, rng: Rng, c: float, r: float) -> None:
    """A flat yellow ray flower: rows of strap-shaped rays getting shorter inwards, no disc."""
    colour = family_colour(rng, str(rng.choice(["yellow", "yellow", "golden"])))
    rows = int(rng.integers(3, 5))
    for j in range(rows):
        ring = r * (1.0 - 0.75 * j / rows)
        n = int(rng.integers(18, 28))
        base = rng.uniform(0, 2 * np.pi)
        col = shade(colour, 1.0 - 0.07 * (rows - 1 - j))  # the outer rows darker: behind
        for k in range(n):
            a = base + 2 * np.pi * k / n + rng.normal(0, 0.06)
            draw.polygon(
                petal_polygon(c, c, a, 0, ring * rng.uniform(0.85, 1.0), r * 0.11, pointed=False),
                fill=jitter(rng, col, 0.05),
                outline=shade(col, 0.75),
            )
    core = shade(colour, 0.8)
    cr = r * 0.16
    draw.ellipse([c - cr, c - cr, c + cr, c + cr], fill=core)


def draw_dandelion_clock(draw, rng: Rng, c: float, r: float) -> None:
    """Gone to seed: a grey-white ball of fine rays with tufts, a small brown centre."""
    white = family_colour(rng, "seed_white")
    draw.ellipse([c - 0.8 * r, c - 0.8 * r, c + 0.8 * r, c + 0.8 * r], fill=shade(white, 0.85))
    n = int(r * rng.uniform(3, 4.5))
    angles = rng.uniform(0, 2 * np.pi, n)
    lengths = r * np.sqrt(rng.uniform(0.7, 1.0, n))
    tuft = max(1.0, r / 25)
    for a, ln in zip(angles, lengths):
        x1, y1 = c + ln * math.cos(a), c + ln * math.sin(a)
        col = shade(white, rng.uniform(0.75, 1.05))
        draw.line([(c, c), (x1, y1)], fill=col, width=max(1, int(r / 60)))
        draw.ellipse([x1 - tuft, y1 - tuft, x1 + tuft, y1 + tuft], fill=col)
    cr = r * 0.1
    draw.ellipse([c - cr, c - cr, c + cr, c + cr], fill=hsv(0.08, 0.6, 0.35))


def _cup(cx: float, bottom: float, width: float, height: float, point: float = 0.0) -> list:
    """A cup seen from the side: rounded at the bottom, widest low down, its top rounded
    (``point`` 0) or drawn to a point (``point`` 1)."""
    u = np.linspace(0.0, 1.0, 14)
    half = width / 2 * np.sin(np.pi * (0.08 + 0.84 * u)) ** (0.8 + point)
    left = [(cx - hw, bottom - height * t) for hw, t in zip(half, u)]
    right = [(cx + hw, bottom - height * t) for hw, t in zip(half[::-1], u[::-1])]
    return left + right


def draw_rose_bud(draw, rng: Rng, c: float, r: float) -> None:
    """Side view: a half-open bud of wrapped petals held by green sepals, on a stem (a red or
    pink cup on a stem, like a tulip)."""
    colour = petal_colour(rng, "roses")
    cup_h, cup_w = r * rng.uniform(1.5, 1.8), r * rng.uniform(1.0, 1.25)
    bottom = c + cup_h / 2
    sg = green(rng)
    stem(draw, c, bottom - 0.1 * r, r * rng.uniform(1.6, 2.2), r * 0.1, sg, rng.uniform(-0.3, 0.3))
    width = max(1, int(r / 25))
    draw.polygon(_cup(c, bottom, cup_w, cup_h, 0.6), fill=shade(colour, 0.7))  # inner petals
    for k, side in enumerate((-1, 1, -1)):  # outer petals wrapping round, each one lower
        col = jitter(rng, shade(colour, 0.85 + 0.07 * k), 0.04)
        cx = c + side * cup_w * (0.18 - 0.05 * k)
        poly = _cup(cx, bottom, cup_w * (0.8 - 0.1 * k), cup_h * (0.85 - 0.15 * k), 0.2)
        draw.polygon(poly, fill=col, outline=shade(col, 0.5), width=width)
        draw.line(poly[2:12], fill=shade(col, 1.3), width=width)  # a lighter rolled edge
    for a in (-0.75, -0.45, 0.45, 0.75):  # sepals hugging the bud
        leaf(draw, c, bottom, -np.pi / 2 + a, cup_h * rng.uniform(0.3, 0.45), r * 0.12, sg)


def draw_rose_wild(draw, rng: Rng, c: float, r: float) -> None:
    """A flat wild rose: five broad rounded petals, a ring of yellow stamens."""
    colour = family_colour(rng, str(rng.choice(["pink", "pale_pink", "white", "red"])))
    spin = rng.uniform(0, 2 * np.pi)
    for k in range(5):
        a = spin + 2 * np.pi * k / 5
        px, py = c + 0.5 * r * math.cos(a), c + 0.5 * r * math.sin(a)
        col = jitter(rng, colour, 0.06)
        poly = ellipse_polygon(px, py, 0.52 * r, 0.46 * r, a, n=20)
        draw.polygon(poly, fill=col, outline=shade(col, 0.65), width=max(1, int(r / 30)))
    inner = shade(colour, 1.3)
    draw.ellipse([c - 0.3 * r, c - 0.3 * r, c + 0.3 * r, c + 0.3 * r], fill=inner)
    dot = max(1.0, r / 22)
    for k in range(int(rng.integers(14, 22))):
        a, rr = rng.uniform(0, 2 * np.pi), r * rng.uniform(0.1, 0.24)
        x, y = c + rr * math.cos(a), c + rr * math.sin(a)
        draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=family_colour(rng, "golden"))
    draw.ellipse([c - 0.08 * r, c - 0.08 * r, c + 0.08 * r, c + 0.08 * r], fill=hsv(0.2, 0.6, 0.6))


def draw_sunflower_small_disc(draw, rng: Rng, c: float, r: float) -> None:
    """An ornamental sunflower: a smaller dark disc, two or three rows of pointed rays."""
    petal = petal_colour(rng, "sunflowers")
    disc_r = r * rng.uniform(0.24, 0.32)
    n = int(rng.integers(20, 32))
    width = 2 * np.pi * disc_r / n * rng.uniform(1.4, 1.9)
    _rays(draw, rng, c, r, petal, n, width, disc_r * 0.85, int(rng.integers(2, 4)), True)
    disc = hsv(rng.uniform(0.03, 0.09), rng.uniform(0.5, 0.9), rng.uniform(0.1, 0.28))
    _disc(draw, rng, c, disc_r, disc, seeds=True)


def draw_tulip_open(draw, rng: Rng, c: float, r: float) -> None:
    """Seen from the top, wide open: six pointed petals around a dark star and stamens."""
    colour = petal_colour(rng, "tulips")
    spin = rng.uniform(0, 2 * np.pi)
    for k, (offset, length, width, dark) in enumerate(
        [(0.0, 1.0, 0.75, 0.85)] * 3 + [(np.pi / 3, 0.9, 0.65, 1.0)] * 3
    ):
        a = spin + offset + 2 * np.pi * (k % 3) / 3
        col = jitter(rng, shade(colour, dark), 0.04)
        poly = petal_polygon(c, c, a, 0, r * length, r * width, pointed=True)
        draw.polygon(poly, fill=col, outline=shade(col, 0.6), width=max(1, int(r / 30)))
    centre = hsv(rng.uniform(0.15, 0.3), rng.uniform(0.3, 0.7), rng.uniform(0.08, 0.25))
    draw.polygon(ellipse_polygon(c, c, 0.2 * r, 0.2 * r, spin, n=6), fill=centre)
    for k in range(6):
        a = spin + np.pi / 6 + k * np.pi / 3
        x, y = c + 0.14 * r * math.cos(a), c + 0.14 * r * math.sin(a)
        draw.ellipse([x - r * 0.04, y - r * 0.07, x + r * 0.04, y + r * 0.07], fill=(30, 25, 20))


def draw_tulip_double(draw, rng: Rng, c: float, r: float) -> None:
    """A double (peony) tulip from the side: a round bowl of many rounded petals on a stem
    (like a rose: a red or pink ball of petals)."""
    colour = petal_colour(rng, "tulips")
    cup_w, cup_h = r * rng.uniform(1.5, 1.8), r * rng.uniform(1.2, 1.45)
    bottom = c + cup_h / 2
    sg = green(rng)
    base = stem(draw, c, bottom - 0.1 * r, r * rng.uniform(1.8, 2.4), r * 0.12, sg)
    for side in (-1, 1):
        a = -np.pi / 2 + side * rng.uniform(0.2, 0.5)
        leaf(draw, base[0], base[1], a, r * rng.uniform(1.4, 2.0), r * 0.5, green(rng, 0.1))
    width = max(1, int(r / 30))
    draw.polygon(_cup(c, bottom, cup_w, cup_h), fill=shade(colour, 0.6))
    for j, n in enumerate((5, 4, 3)):  # the back row (highest) first, the front row last
        for k in range(n):
            x = c + (k - (n - 1) / 2) * cup_w * (0.24 - 0.02 * j) + rng.normal(0, 0.03 * r)
            w, h = cup_w * (0.3 + 0.06 * j), cup_h * (0.55 + 0.12 * j)
            col = jitter(rng, shade(colour, 0.75 + 0.12 * j), 0.05)
            poly = _cup(x, bottom - cup_h * (0.3 - 0.12 * j), w, h)
            draw.polygon(poly, fill=col, outline=shade(col, 0.55), width=width)


VARIETIES = {
    "daisy": {
        "classic": Variety(0.8, DRAWERS["daisy"]),
        "oxeye": Variety(0.1, draw_daisy_oxeye),
        "coloured": Variety(0.1, draw_daisy_coloured),
    },
    "dandelion": {
        "classic": Variety(0.8, DRAWERS["dandelion"]),
        "open": Variety(0.1, draw_dandelion_open),
        "clock": Variety(0.1, draw_dandelion_clock),
    },
    "roses": {
        "classic": Variety(0.8, DRAWERS["roses"]),
        "bud": Variety(0.1, draw_rose_bud, own_stem=True, upright=True, squash=(0.85, 1.1)),
        "wild": Variety(0.1, draw_rose_wild),
    },
    "sunflowers": {
        "classic": Variety(0.8, DRAWERS["sunflowers"]),
        "small_disc": Variety(0.1, draw_sunflower_small_disc),
        "tilted": Variety(0.1, DRAWERS["sunflowers"], squash=(0.45, 0.7)),
    },
    "tulips": {
        "classic": Variety(0.8, DRAWERS["tulips"], own_stem=True, upright=True, squash=(0.85, 1.1)),
        "open": Variety(0.1, draw_tulip_open),
        "double": Variety(0.1, draw_tulip_double, own_stem=True, upright=True, squash=(0.9, 1.1)),
    },
}
assert list(VARIETIES) == CLASSES


def pick_variety(rng: Rng, label: str) -> str:
    """A variety of ``label`` drawn with the probabilities of :data:`VARIETIES`."""
    return pick(rng, {name: v.probability for name, v in VARIETIES[label].items()})
