"""The five flowers. Each drawer paints one flower head on an RGBA layer centred at (c, c).

A drawer is ``draw_<class>(draw, rng, c, r)``: ``draw`` an ``ImageDraw`` on the layer, ``rng``
the flower's random stream, ``r`` the head radius in layer pixels. Each class has its own
silhouette (colours overlap on purpose, see :mod:`.palette`):

* daisy: many thin rounded petals around a small yellow disc;
* dandelion: a dense pom-pom of very fine rays, no visible disc;
* roses: layered rounded petals around a spiral centre, seen from the top;
* sunflowers: a large dark disc with a seed spiral and a ring of pointed petals;
* tulips: a cup of tall pointed petals seen from the side, on a stem with long leaves.

:func:`flower_layer` adds the stem and leaves and returns the layer :mod:`.scene` places.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .palette import Rng, family_colour, green, hsv, jitter, petal_colour, shade
from .shapes import ellipse_polygon, leaf, petal_polygon, stem

CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def draw_daisy(draw, rng: Rng, c: float, r: float) -> None:
    petal = petal_colour(rng, "daisy")
    disc_r = r * rng.uniform(0.16, 0.26)
    n = int(rng.integers(16, 32))
    width = r * rng.uniform(0.11, 0.17)
    base = rng.uniform(0, 2 * np.pi)
    for layer, offset in enumerate((0.0, 0.5)):
        for k in range(n):
            a = base + 2 * np.pi * (k + offset) / n + rng.normal(0, 0.04)
            length = r * rng.uniform(0.78, 1.0) - disc_r * 0.5
            col = jitter(rng, shade(petal, 0.9 if layer == 0 else 1.0), 0.06)
            draw.polygon(
                petal_polygon(c, c, a, disc_r * 0.5, length, width, pointed=False),
                fill=col,
                outline=shade(col, 0.8),
            )
    disc = family_colour(rng, str(rng.choice(["yellow", "golden"])))
    draw.ellipse(
        [c - disc_r, c - disc_r, c + disc_r, c + disc_r], fill=disc, outline=shade(disc, 0.7)
    )
    for _ in range(int(disc_r * 2)):  # florets texture
        rr, a = disc_r * 0.85 * math.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        x, y = c + rr * math.cos(a), c + rr * math.sin(a)
        draw.point((x, y), fill=shade(disc, rng.uniform(0.6, 0.9)))


def draw_dandelion(draw, rng: Rng, c: float, r: float) -> None:
    colour = petal_colour(rng, "dandelion")
    seed_head = colour[1] > 180 and colour[2] > 180  # the white "clock" variant
    core = shade(colour, 0.8 if not seed_head else 0.85)
    draw.ellipse([c - 0.72 * r, c - 0.72 * r, c + 0.72 * r, c + 0.72 * r], fill=core)
    n_rays = int(r * rng.uniform(4, 6))
    line_w = max(1, int(r / 45))
    angles = rng.uniform(0, 2 * np.pi, n_rays)
    r0 = r * rng.uniform(0.0, 0.35, n_rays)
    r1 = r * np.sqrt(rng.uniform(0.6, 1.0, n_rays))
    shades = rng.uniform(0.8, 1.2, n_rays)
    cos, sin = np.cos(angles), np.sin(angles)
    for k in range(n_rays):
        x1, y1 = c + r1[k] * cos[k], c + r1[k] * sin[k]
        col = shade(colour, shades[k])
        draw.line([(c + r0[k] * cos[k], c + r0[k] * sin[k]), (x1, y1)], fill=col, width=line_w)
        if seed_head and k % 4 == 0:  # pappus tufts at the ray tips
            draw.ellipse([x1 - line_w, y1 - line_w, x1 + line_w, y1 + line_w], fill=col)


def draw_rose(draw, rng: Rng, c: float, r: float) -> None:
    colour = petal_colour(rng, "roses")
    if rng.random() < 0.5:  # rose leaves peeking out from under the bloom
        for _ in range(int(rng.integers(2, 5))):
            a = rng.uniform(0, 2 * np.pi)
            leaf(
                draw,
                c + 0.5 * r * math.cos(a),
                c + 0.5 * r * math.sin(a),
                a,
                r * rng.uniform(0.7, 0.95),
                r * rng.uniform(0.35, 0.5),
                green(rng, 0.2),
            )
    layers = int(rng.integers(4, 7))
    spin = rng.uniform(0, 2 * np.pi)
    for k in range(layers):
        frac = 1.0 - k / (layers + 0.6)  # outer layers first
        ring_r = r * frac
        n = int(rng.integers(5, 8)) if k < layers - 1 else 3
        petal_r = ring_r * rng.uniform(0.45, 0.55)
        dist = ring_r - petal_r
        col = jitter(rng, shade(colour, 0.65 + 0.35 * (1 - k / layers) ** 0.5 if k else 0.95), 0.05)
        spin += rng.uniform(0.4, 0.9)
        for j in range(n):
            a = spin + 2 * np.pi * j / n
            px, py = c + dist * math.cos(a), c + dist * math.sin(a)
            poly = ellipse_polygon(px, py, petal_r * 1.05, petal_r * 0.9, a)
            draw.polygon(poly, fill=col, outline=shade(col, 0.4), width=max(1, int(r / 20)))
            # a lighter rim on the outer edge of each petal
            draw.arc(
                [px - petal_r, py - petal_r, px + petal_r, py + petal_r],
                math.degrees(a) - 50,
                math.degrees(a) + 50,
                fill=shade(col, 1.3),
                width=max(1, int(r / 30)),
            )
    # the tight spiral of the bud in the centre
    t = np.linspace(0, 3.5 * np.pi, 40)
    rad = r * 0.2 * t / t[-1]
    draw.line(
        list(zip(c + rad * np.cos(t + spin), c + rad * np.sin(t + spin))),
        fill=shade(colour, 0.4),
        width=max(1, int(r / 20)),
    )


def draw_sunflower(draw, rng: Rng, c: float, r: float) -> None:
    petal = petal_colour(rng, "sunflowers")
    disc_r = r * rng.uniform(0.38, 0.52)
    n = int(rng.integers(18, 30))
    width = 2 * np.pi * disc_r / n * rng.uniform(1.1, 1.5)
    base = rng.uniform(0, 2 * np.pi)
    for layer, offset in enumerate((0.5, 0.0)):  # back row, then front row
        for k in range(n):
            a = base + 2 * np.pi * (k + offset) / n + rng.normal(0, 0.05)
            length = (r - disc_r) * rng.uniform(0.85, 1.15)
            col = jitter(rng, shade(petal, 0.8 if layer == 0 else 1.0), 0.08)
            draw.polygon(
                petal_polygon(c, c, a, disc_r * 0.85, length, width, pointed=True),
                fill=col,
                outline=shade(col, 0.7),
            )
    disc = (
        hsv(rng.uniform(0.05, 0.09), rng.uniform(0.5, 0.9), rng.uniform(0.12, 0.32))
        if rng.random() < 0.85
        else hsv(rng.uniform(0.17, 0.24), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.5))
    )
    draw.ellipse(
        [c - disc_r, c - disc_r, c + disc_r, c + disc_r], fill=disc, outline=shade(disc, 0.6)
    )
    # the seed spiral (phyllotaxis): lighter dots at golden-angle steps
    n_seeds = int(disc_r * 2.2)
    dot = max(1.0, disc_r / 14)
    for k in range(1, n_seeds):
        rr = disc_r * 0.92 * math.sqrt(k / n_seeds)
        a = k * 2.39996
        x, y = c + rr * math.cos(a), c + rr * math.sin(a)
        draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=shade(disc, 1.5 if k % 2 else 1.25))


def draw_tulip(draw, rng: Rng, c: float, r: float) -> None:
    """Side view: the cup is centred at (c, c); stem and leaves go down to the layer's edge."""
    colour = petal_colour(rng, "tulips")
    stem_green = green(rng)
    cup_h = r * rng.uniform(1.5, 1.8)
    cup_w = cup_h * rng.uniform(0.6, 0.8)
    bottom = c + cup_h / 2
    lean = rng.uniform(-0.3, 0.3)
    stem_len = r * rng.uniform(1.6, 2.2)
    base_x, base_y = stem(
        draw, c, bottom - 0.1 * r, stem_len, r * rng.uniform(0.1, 0.14), stem_green, lean
    )
    for side in (-1, 1):
        if side == 1 and rng.random() < 0.3:
            continue
        a = -np.pi / 2 + side * rng.uniform(0.15, 0.5)
        leaf(
            draw,
            base_x + side * 0.05 * r,
            base_y,
            a,
            stem_len * rng.uniform(0.7, 1.0),
            r * rng.uniform(0.45, 0.6),
            green(rng, 0.1),
        )
    # three tall petals: back centre (darker), then left and right overlapping in front
    for dx, darkness, h_scale in ((0.0, 0.7, 1.0), (-0.22, 0.92, 0.93), (0.22, 0.98, 0.95)):
        col = jitter(rng, shade(colour, darkness), 0.05)
        cx = c + dx * cup_w
        pw = cup_w * (0.62 if dx == 0 else 0.58)
        ph = cup_h * h_scale
        # a petal: rounded at the bottom, widest low down, pointed at the top
        left = [
            (cx - pw / 2 * math.sin(math.pi * u) ** 0.6 - pw * 0.02, bottom - ph * u)
            for u in np.linspace(0.02, 0.98, 10)
        ]
        right = [
            (cx + pw / 2 * math.sin(math.pi * u) ** 0.6 + pw * 0.02, bottom - ph * u)
            for u in np.linspace(0.98, 0.02, 10)
        ]
        draw.polygon(
            [(cx, bottom + 0.02 * cup_h)] + left + [(cx, bottom - ph)] + right,
            fill=col,
            outline=shade(col, 0.6),
            width=max(1, int(r / 25)),
        )
        draw.line(
            [(cx, bottom - 0.1 * ph), (cx, bottom - 0.8 * ph)],
            fill=shade(col, 1.15),
            width=max(1, int(r / 35)),
        )


DRAWERS = {
    "daisy": draw_daisy,
    "dandelion": draw_dandelion,
    "roses": draw_rose,
    "sunflowers": draw_sunflower,
    "tulips": draw_tulip,
}
assert list(DRAWERS) == CLASSES


def flower_layer(
    rng: Rng, label: str, r: float, drawer=None, own_stem: bool | None = None
) -> tuple[Image.Image, float]:
    """The flower drawn on a transparent square layer; returns (layer, centre coordinate).

    ``r`` is the head radius in layer pixels. Tulips always have a stem and leaves; the
    other flowers sometimes show a stem behind the head. ``drawer`` replaces the class's
    drawer (a variety, :mod:`.varieties`); ``own_stem``: the drawer draws its own stem
    (default: tulips only).
    """
    own_stem = label == "tulips" if own_stem is None else own_stem
    has_stem = own_stem or rng.random() < 0.3
    half = r * (3.6 if has_stem else 1.6)
    side = int(2 * half) + 2
    c = side / 2
    layer = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if has_stem and not own_stem:
        stem_green = green(rng)
        end = stem(
            draw,
            c,
            c,
            r * rng.uniform(2.0, 3.2),
            r * rng.uniform(0.06, 0.1),
            stem_green,
            rng.uniform(-0.3, 0.3),
        )
        if rng.random() < 0.5:
            leaf(
                draw,
                (c + end[0]) / 2,
                (c + end[1]) / 2 + r,
                -np.pi / 2 + rng.choice([-1, 1]) * 0.9,
                r * rng.uniform(0.8, 1.2),
                r * rng.uniform(0.3, 0.5),
                green(rng, 0.1),
            )
    (drawer or DRAWERS[label])(draw, rng, c, r)
    return layer, c
