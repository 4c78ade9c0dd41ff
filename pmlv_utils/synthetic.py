"""An offline stand-in for the book's 5-flowers photos: drawn flowers in the book's formats.

``generate_dataset(DIR)`` writes::

    DIR/flower_photos/<class>/<class>_0000.jpg     the images (RGB JPEG, 96..256 px a side)
    DIR/flower_photos/all_data.csv                 headerless ``path,label`` (absolute paths)
    DIR/flower_photos/dict.txt                     one label a line, in CLASSES order
    DIR/flower_masks/<class>/<class>_0000.png      1-bit mask: where the flower is
    DIR/image_info.csv                             per image: background kind, size, other flower, ...

The classes need SHAPE, not only colour: colours overlap as in real flowers (roses and tulips
share reds, pinks and yellows; dandelions and sunflowers share yellow; daisies are white but
sometimes pink or yellowish), while each class has its own silhouette:

* daisy: many thin rounded petals around a small yellow disc;
* dandelion: a dense pom-pom of very fine rays, no visible disc;
* roses: layered rounded petals around a spiral centre, seen from the top;
* sunflowers: a large dark disc with a seed spiral and a ring of pointed petals;
* tulips: a cup of tall pointed petals seen from the side, on a stem with long leaves.

Each image's randomness comes only from ``(seed, class, index)``, so the same seed gives
byte-identical files, and adding images does not change the earlier ones. The flower and
its background use separate random streams: for one ``(seed, class, index)`` the flower is
the same whatever ``background_bias`` is; only the background kind may change.

``background_bias`` (0..1) plants a shortcut, like the "wolf on snow" classifier: with
probability P a tulip is drawn on the ``"sky"`` background and any other flower on a
non-sky background; otherwise the background kind is drawn uniformly. At P=0 every class
sees every background equally often; at P=0.95 tulips are on sky about 96% of the time
and the other classes about 0.6% of the time.

Nuisances a model must ignore: image size and aspect ratio, position, scale, rotation and
tilt, eight background kinds, lighting and white balance, noise, JPEG quality, grass or a
leaf in front of the flower (20%), extra flowers of the same class (20%) and, in 25% of the
images, a smaller flower of ANOTHER class in the background.

The mask marks the drawn plant(s) of the image's class (flower head, and any stem or leaves
drawn with it), minus whatever occludes it; everything else, including a flower of another
class, is background.

CLI::

    python -m pmlv_utils.synthetic --output_dir DIR [--images_per_class N] [--seed S]
                                   [--background_bias P]
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
GENERATOR_VERSION = "3"

BACKGROUND_KINDS = ("plain", "gradient", "grass", "leaves", "sky", "noise", "soil", "bokeh")
BIASED_CLASS = "tulips"
BIAS_BACKGROUND = "sky"

MIN_SIDE, MAX_SIDE = 96, 256
DISTRACTOR_PROBABILITY = 0.25  # a smaller flower of another class in the background
SUPERSAMPLE = 2  # flowers are drawn at 2x and reduced: smooth edges for little cost

Rng = np.random.Generator


# ----------------------------------------------------------------------------------------
# Colours
# ----------------------------------------------------------------------------------------


def _hsv(h: float, s: float, v: float, alpha: int = 255) -> tuple[int, int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return int(r * 255), int(g * 255), int(b * 255), alpha


def _shade(colour: Sequence[int], factor: float, alpha: int | None = None) -> tuple[int, ...]:
    """``colour`` made darker (factor < 1) or lighter (factor > 1, towards white)."""
    if factor <= 1:
        rgb = [c * factor for c in colour[:3]]
    else:
        rgb = [c + (255 - c) * (factor - 1) for c in colour[:3]]
    rgb = [int(min(max(c, 0), 255)) for c in rgb]
    return (*rgb, (colour[3] if len(colour) > 3 else 255) if alpha is None else alpha)


# Named colour families, as (hue range, saturation range, value range).
_FAMILIES = {
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


def _family_colour(rng: Rng, family: str) -> tuple[int, int, int, int]:
    (h0, h1), (s0, s1), (v0, v1) = _FAMILIES[family]
    return _hsv(rng.uniform(h0, h1), rng.uniform(s0, s1), rng.uniform(v0, v1))


def _petal_colour(rng: Rng, label: str) -> tuple[int, int, int, int]:
    palette = PETAL_PALETTES[label]
    family = rng.choice(list(palette), p=np.array(list(palette.values())) / sum(palette.values()))
    return _family_colour(rng, str(family))


def _green(rng: Rng, dark: float = 0.0) -> tuple[int, int, int, int]:
    return _hsv(
        rng.uniform(0.22, 0.36), rng.uniform(0.45, 0.85), rng.uniform(0.35, 0.70) * (1 - dark)
    )


def _jitter(rng: Rng, colour: Sequence[int], amount: float = 0.12) -> tuple[int, ...]:
    return _shade(colour, 1.0 + rng.uniform(-amount, amount))


# ----------------------------------------------------------------------------------------
# Drawing primitives (coordinates in pixels of the layer being drawn)
# ----------------------------------------------------------------------------------------


def _petal_polygon(
    cx: float,
    cy: float,
    angle: float,
    start: float,
    length: float,
    width: float,
    pointed: bool,
    n: int = 12,
) -> list[tuple[float, float]]:
    """A petal from radius ``start`` to ``start + length`` along ``angle`` (radians)."""
    u = np.linspace(0.0, 1.0, n)
    half = width / 2 * (np.sin(np.pi * u**0.7) ** 1.1 if pointed else np.sqrt(np.sin(np.pi * u)))
    along = start + u * length
    ca, sa = math.cos(angle), math.sin(angle)
    side_a = [(cx + a * ca - h * sa, cy + a * sa + h * ca) for a, h in zip(along, half)]
    side_b = [(cx + a * ca + h * sa, cy + a * sa - h * ca) for a, h in zip(along[::-1], half[::-1])]
    return side_a + side_b


def _ellipse_polygon(cx, cy, rx, ry, angle=0.0, n=24) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    ca, sa = math.cos(angle), math.sin(angle)
    return list(zip(cx + x * ca - y * sa, cy + x * sa + y * ca))


def _leaf(draw: ImageDraw.ImageDraw, rng: Rng, x, y, angle, length, width, colour) -> None:
    """A long pointed leaf with a lighter midrib, starting at (x, y)."""
    draw.polygon(
        _petal_polygon(x, y, angle, 0, length, width, pointed=True),
        fill=colour,
        outline=_shade(colour, 0.7),
    )
    end = (x + 0.85 * length * math.cos(angle), y + 0.85 * length * math.sin(angle))
    draw.line([(x, y), end], fill=_shade(colour, 1.25), width=max(1, int(width / 10)))


def _stem(draw, rng: Rng, x0, y0, length, width, colour, lean: float = 0.0) -> tuple[float, float]:
    """A slightly curved stem going down from (x0, y0); returns its lower end."""
    t = np.linspace(0, 1, 8)
    xs = x0 + lean * length * t**2
    ys = y0 + length * t
    draw.line(list(zip(xs, ys)), fill=colour, width=max(1, int(width)), joint="curve")
    return float(xs[-1]), float(ys[-1])


# ----------------------------------------------------------------------------------------
# The five flowers. Each draws on an RGBA layer centred at (c, c) with head radius r.
# ----------------------------------------------------------------------------------------


def _draw_daisy(draw, rng: Rng, c: float, r: float) -> None:
    petal = _petal_colour(rng, "daisy")
    disc_r = r * rng.uniform(0.16, 0.26)
    n = int(rng.integers(16, 32))
    width = r * rng.uniform(0.11, 0.17)
    base = rng.uniform(0, 2 * np.pi)
    for layer, offset in enumerate((0.0, 0.5)):
        for k in range(n):
            a = base + 2 * np.pi * (k + offset) / n + rng.normal(0, 0.04)
            length = r * rng.uniform(0.78, 1.0) - disc_r * 0.5
            col = _jitter(rng, _shade(petal, 0.9 if layer == 0 else 1.0), 0.06)
            draw.polygon(
                _petal_polygon(c, c, a, disc_r * 0.5, length, width, pointed=False),
                fill=col,
                outline=_shade(col, 0.8),
            )
    disc = _family_colour(rng, str(rng.choice(["yellow", "golden"])))
    draw.ellipse(
        [c - disc_r, c - disc_r, c + disc_r, c + disc_r], fill=disc, outline=_shade(disc, 0.7)
    )
    for _ in range(int(disc_r * 2)):  # florets texture
        rr, a = disc_r * 0.85 * math.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        x, y = c + rr * math.cos(a), c + rr * math.sin(a)
        draw.point((x, y), fill=_shade(disc, rng.uniform(0.6, 0.9)))


def _draw_dandelion(draw, rng: Rng, c: float, r: float) -> None:
    colour = _petal_colour(rng, "dandelion")
    seed_head = colour[1] > 180 and colour[2] > 180  # the white "clock" variant
    core = _shade(colour, 0.8 if not seed_head else 0.85)
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
        col = _shade(colour, shades[k])
        draw.line([(c + r0[k] * cos[k], c + r0[k] * sin[k]), (x1, y1)], fill=col, width=line_w)
        if seed_head and k % 4 == 0:  # pappus tufts at the ray tips
            draw.ellipse([x1 - line_w, y1 - line_w, x1 + line_w, y1 + line_w], fill=col)


def _draw_rose(draw, rng: Rng, c: float, r: float) -> None:
    colour = _petal_colour(rng, "roses")
    if rng.random() < 0.5:  # rose leaves peeking out from under the bloom
        for _ in range(int(rng.integers(2, 5))):
            a = rng.uniform(0, 2 * np.pi)
            _leaf(
                draw,
                rng,
                c + 0.5 * r * math.cos(a),
                c + 0.5 * r * math.sin(a),
                a,
                r * rng.uniform(0.7, 0.95),
                r * rng.uniform(0.35, 0.5),
                _green(rng, 0.2),
            )
    layers = int(rng.integers(4, 7))
    spin = rng.uniform(0, 2 * np.pi)
    for k in range(layers):
        frac = 1.0 - k / (layers + 0.6)  # outer layers first
        ring_r = r * frac
        n = int(rng.integers(5, 8)) if k < layers - 1 else 3
        petal_r = ring_r * rng.uniform(0.45, 0.55)
        dist = ring_r - petal_r
        col = _jitter(
            rng, _shade(colour, 0.65 + 0.35 * (1 - k / layers) ** 0.5 if k else 0.95), 0.05
        )
        spin += rng.uniform(0.4, 0.9)
        for j in range(n):
            a = spin + 2 * np.pi * j / n
            px, py = c + dist * math.cos(a), c + dist * math.sin(a)
            poly = _ellipse_polygon(px, py, petal_r * 1.05, petal_r * 0.9, a)
            draw.polygon(poly, fill=col, outline=_shade(col, 0.4), width=max(1, int(r / 20)))
            # a lighter rim on the outer edge of each petal
            draw.arc(
                [px - petal_r, py - petal_r, px + petal_r, py + petal_r],
                math.degrees(a) - 50,
                math.degrees(a) + 50,
                fill=_shade(col, 1.3),
                width=max(1, int(r / 30)),
            )
    # the tight spiral of the bud in the centre
    t = np.linspace(0, 3.5 * np.pi, 40)
    rad = r * 0.2 * t / t[-1]
    draw.line(
        list(zip(c + rad * np.cos(t + spin), c + rad * np.sin(t + spin))),
        fill=_shade(colour, 0.4),
        width=max(1, int(r / 20)),
    )


def _draw_sunflower(draw, rng: Rng, c: float, r: float) -> None:
    petal = _petal_colour(rng, "sunflowers")
    disc_r = r * rng.uniform(0.38, 0.52)
    n = int(rng.integers(18, 30))
    width = 2 * np.pi * disc_r / n * rng.uniform(1.1, 1.5)
    base = rng.uniform(0, 2 * np.pi)
    for layer, offset in enumerate((0.5, 0.0)):  # back row, then front row
        for k in range(n):
            a = base + 2 * np.pi * (k + offset) / n + rng.normal(0, 0.05)
            length = (r - disc_r) * rng.uniform(0.85, 1.15)
            col = _jitter(rng, _shade(petal, 0.8 if layer == 0 else 1.0), 0.08)
            draw.polygon(
                _petal_polygon(c, c, a, disc_r * 0.85, length, width, pointed=True),
                fill=col,
                outline=_shade(col, 0.7),
            )
    disc = (
        _hsv(rng.uniform(0.05, 0.09), rng.uniform(0.5, 0.9), rng.uniform(0.12, 0.32))
        if rng.random() < 0.85
        else _hsv(rng.uniform(0.17, 0.24), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.5))
    )
    draw.ellipse(
        [c - disc_r, c - disc_r, c + disc_r, c + disc_r], fill=disc, outline=_shade(disc, 0.6)
    )
    # the seed spiral (phyllotaxis): lighter dots at golden-angle steps
    n_seeds = int(disc_r * 2.2)
    dot = max(1.0, disc_r / 14)
    for k in range(1, n_seeds):
        rr = disc_r * 0.92 * math.sqrt(k / n_seeds)
        a = k * 2.39996
        x, y = c + rr * math.cos(a), c + rr * math.sin(a)
        draw.ellipse(
            [x - dot, y - dot, x + dot, y + dot], fill=_shade(disc, 1.5 if k % 2 else 1.25)
        )


def _draw_tulip(draw, rng: Rng, c: float, r: float) -> None:
    """Side view: the cup is centred at (c, c); stem and leaves go down to the layer's edge."""
    colour = _petal_colour(rng, "tulips")
    green = _green(rng)
    cup_h = r * rng.uniform(1.5, 1.8)
    cup_w = cup_h * rng.uniform(0.6, 0.8)
    bottom = c + cup_h / 2
    lean = rng.uniform(-0.3, 0.3)
    stem_len = r * rng.uniform(1.6, 2.2)
    base_x, base_y = _stem(
        draw, rng, c, bottom - 0.1 * r, stem_len, r * rng.uniform(0.1, 0.14), green, lean
    )
    for side in (-1, 1):
        if side == 1 and rng.random() < 0.3:
            continue
        a = -np.pi / 2 + side * rng.uniform(0.15, 0.5)
        _leaf(
            draw,
            rng,
            base_x + side * 0.05 * r,
            base_y,
            a,
            stem_len * rng.uniform(0.7, 1.0),
            r * rng.uniform(0.45, 0.6),
            _green(rng, 0.1),
        )
    # three tall petals: back centre (darker), then left and right overlapping in front
    for dx, shade, h_scale in ((0.0, 0.7, 1.0), (-0.22, 0.92, 0.93), (0.22, 0.98, 0.95)):
        col = _jitter(rng, _shade(colour, shade), 0.05)
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
            outline=_shade(col, 0.6),
            width=max(1, int(r / 25)),
        )
        draw.line(
            [(cx, bottom - 0.1 * ph), (cx, bottom - 0.8 * ph)],
            fill=_shade(col, 1.15),
            width=max(1, int(r / 35)),
        )


_DRAWERS = {
    "daisy": _draw_daisy,
    "dandelion": _draw_dandelion,
    "roses": _draw_rose,
    "sunflowers": _draw_sunflower,
    "tulips": _draw_tulip,
}


def _flower_layer(rng: Rng, label: str, r: float) -> tuple[Image.Image, float]:
    """The flower drawn on a transparent square layer; returns (layer, centre coordinate).

    ``r`` is the head radius in layer pixels. Tulips always have a stem and leaves; the
    other flowers sometimes show a stem behind the head.
    """
    has_stem = label == "tulips" or rng.random() < 0.3
    half = r * (3.6 if has_stem else 1.6)
    side = int(2 * half) + 2
    c = side / 2
    layer = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if has_stem and label != "tulips":
        green = _green(rng)
        end = _stem(
            draw,
            rng,
            c,
            c,
            r * rng.uniform(2.0, 3.2),
            r * rng.uniform(0.06, 0.1),
            green,
            rng.uniform(-0.3, 0.3),
        )
        if rng.random() < 0.5:
            _leaf(
                draw,
                rng,
                (c + end[0]) / 2,
                (c + end[1]) / 2 + r,
                -np.pi / 2 + rng.choice([-1, 1]) * 0.9,
                r * rng.uniform(0.8, 1.2),
                r * rng.uniform(0.3, 0.5),
                _green(rng, 0.1),
            )
    _DRAWERS[label](draw, rng, c, r)
    return layer, c


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
    # the inverse map, patch pixel -> layer pixel: p = pc + diag(1, 1/squash) @ rot(-angle) @ (q + o - t)
    a, b, d, e = ca, sa, -sa / squash, ca / squash
    ox, oy = tx - x0, ty - y0
    data = (a, b, px - a * ox - b * oy, d, e, py - d * ox - e * oy)
    patch = layer.transform(
        (x1 - x0, y1 - y0), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR
    )
    return patch.reduce(ss), (x0 // ss, y0 // ss)


# ----------------------------------------------------------------------------------------
# Backgrounds (drawn at the output size)
# ----------------------------------------------------------------------------------------


def _random_colour(rng: Rng, s=(0.0, 0.7), v=(0.2, 0.95)) -> tuple[int, int, int, int]:
    return _hsv(rng.random(), rng.uniform(*s), rng.uniform(*v))


def _linear_ramp(w: int, h: int, angle: float) -> np.ndarray:
    """Values 0..1 increasing along ``angle`` across a ``h x w`` image."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = x * math.cos(angle) + y * math.sin(angle)
    return (t - t.min()) / max(float(t.max() - t.min()), 1e-6)


def _background_plain(rng: Rng, w: int, h: int) -> Image.Image:
    return Image.new("RGB", (w, h), _random_colour(rng)[:3])


def _background_gradient(rng: Rng, w: int, h: int) -> Image.Image:
    c0, c1 = (np.array(_random_colour(rng)[:3], np.float32) for _ in range(2))
    t = _linear_ramp(w, h, rng.uniform(0, 2 * np.pi))[..., None]
    return Image.fromarray((c0 * (1 - t) + c1 * t).astype(np.uint8))


def _background_grass(rng: Rng, w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h), _green(rng, 0.4)[:3])
    draw = ImageDraw.Draw(img)
    n = w * h // 50
    xs, ys = rng.uniform(0, w, n), rng.uniform(0, h * 1.1, n)
    lengths, leans = rng.uniform(0.05, 0.2, n) * h, rng.normal(0, 0.25, n)
    hue, val = rng.uniform(0.2, 0.36, n), rng.uniform(0.25, 0.75, n)
    for x, y, ln, lean, hh, vv in zip(xs, ys, lengths, leans, hue, val):
        draw.line([(x, y), (x + lean * ln, y - ln)], fill=_hsv(hh, 0.7, vv)[:3], width=1)
    return img


def _background_leaves(rng: Rng, w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h), _green(rng, 0.5)[:3])
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(25, 60))):
        col = _green(rng, rng.uniform(0, 0.4))
        rx = rng.uniform(0.05, 0.18) * max(w, h)
        draw.polygon(
            _ellipse_polygon(
                rng.uniform(0, w),
                rng.uniform(0, h),
                rx,
                rx * rng.uniform(0.3, 0.5),
                rng.uniform(0, np.pi),
                n=16,
            ),
            fill=col[:3],
            outline=_shade(col, 0.6)[:3],
        )
    return img


def _background_sky(rng: Rng, w: int, h: int) -> Image.Image:
    top = np.array(
        _hsv(rng.uniform(0.55, 0.62), rng.uniform(0.55, 0.85), rng.uniform(0.65, 0.95))[:3],
        np.float32,
    )
    bottom = np.array(
        _hsv(rng.uniform(0.53, 0.6), rng.uniform(0.1, 0.35), rng.uniform(0.88, 1.0))[:3], np.float32
    )
    t = _linear_ramp(w, h, np.pi / 2 + rng.normal(0, 0.15))[..., None]
    img = Image.fromarray((top * (1 - t) + bottom * t).astype(np.uint8))
    clouds = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(clouds)
    for _ in range(int(rng.integers(0, 6))):
        cx, cy, rx = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.1, 0.3) * w
        for _ in range(4):
            ox, oy = rng.normal(0, rx * 0.4), rng.normal(0, rx * 0.15)
            draw.ellipse(
                [cx + ox - rx / 2, cy + oy - rx / 4, cx + ox + rx / 2, cy + oy + rx / 4],
                fill=int(rng.uniform(150, 255)),
            )
    clouds = clouds.filter(ImageFilter.GaussianBlur(max(w, h) / 40))
    return Image.composite(Image.new("RGB", (w, h), (250, 250, 252)), img, clouds)


def _background_noise(rng: Rng, w: int, h: int) -> Image.Image:
    coarse = rng.uniform(0, 255, (int(rng.integers(3, 8)), int(rng.integers(3, 8)), 3))
    coarse = (0.6 * coarse + 0.4 * coarse.mean(axis=2, keepdims=True)).astype(
        np.uint8
    )  # muted colours
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), np.float32)
    img += rng.normal(0, rng.uniform(5, 25), (h, w, 1))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _background_soil(rng: Rng, w: int, h: int) -> Image.Image:
    base = np.array(
        _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.35, 0.7), rng.uniform(0.2, 0.5))[:3], np.float32
    )
    grain = rng.normal(1.0, 0.18, (h, w, 1)).astype(np.float32)
    img = Image.fromarray(np.clip(base * grain, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(5, 25))):  # pebbles
        col = _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.8))
        rx = rng.uniform(0.01, 0.05) * w
        draw.polygon(
            _ellipse_polygon(
                rng.uniform(0, w),
                rng.uniform(0, h),
                rx,
                rx * rng.uniform(0.5, 1),
                rng.uniform(0, np.pi),
                n=10,
            ),
            fill=col[:3],
        )
    return img


def _background_bokeh(rng: Rng, w: int, h: int) -> Image.Image:
    """A blurred garden: out-of-focus blobs of any colour (flower colours included)."""
    img = _background_gradient(rng, w, h) if rng.random() < 0.5 else _background_leaves(rng, w, h)
    draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(int(rng.integers(8, 30))):
        x, y, rad = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.03, 0.12) * max(w, h)
        draw.ellipse(
            [x - rad, y - rad, x + rad, y + rad],
            fill=_random_colour(rng, (0.2, 1.0), (0.5, 1.0))[:3] + (int(rng.uniform(90, 220)),),
        )
    return img.filter(ImageFilter.GaussianBlur(max(w, h) / rng.uniform(25, 60)))


_BACKGROUNDS = {
    "plain": _background_plain,
    "gradient": _background_gradient,
    "grass": _background_grass,
    "leaves": _background_leaves,
    "sky": _background_sky,
    "noise": _background_noise,
    "soil": _background_soil,
    "bokeh": _background_bokeh,
}
assert set(_BACKGROUNDS) == set(BACKGROUND_KINDS)


def background_for(label: str, rng_or_seed, background_bias: float = 0.0) -> str:
    """The background kind of one image (see the module docstring for the bias rule)."""
    if not 0.0 <= background_bias <= 1.0:
        raise ValueError(f"background_bias must be in [0, 1], got {background_bias}")
    rng = np.random.default_rng(rng_or_seed)
    if rng.random() < background_bias:
        if label == BIASED_CLASS:
            return BIAS_BACKGROUND
        others = [k for k in BACKGROUND_KINDS if k != BIAS_BACKGROUND]
        return others[int(rng.integers(len(others)))]
    return BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]


# ----------------------------------------------------------------------------------------
# One image
# ----------------------------------------------------------------------------------------


def _occluders(rng: Rng, w: int, h: int) -> Image.Image:
    """Grass blades or a leaf in front of the flower (RGBA, transparent elsewhere)."""
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if rng.random() < 0.6:
        for _ in range(int(rng.integers(2, 7))):
            x = rng.uniform(0, w)
            _leaf(
                draw,
                rng,
                x,
                h + 2,
                -np.pi / 2 + rng.normal(0, 0.25),
                h * rng.uniform(0.3, 0.7),
                w * rng.uniform(0.02, 0.05),
                _green(rng, 0.2),
            )
    else:
        side = int(rng.integers(4))
        x, y = [
            (rng.uniform(0, w), -2),
            (w + 2, rng.uniform(0, h)),
            (rng.uniform(0, w), h + 2),
            (-2, rng.uniform(0, h)),
        ][side]
        angle = [np.pi / 2, np.pi, -np.pi / 2, 0.0][side] + rng.normal(0, 0.4)
        _leaf(
            draw,
            rng,
            x,
            y,
            angle,
            max(w, h) * rng.uniform(0.3, 0.5),
            min(w, h) * rng.uniform(0.15, 0.3),
            _green(rng, 0.1),
        )
    return layer


def _finish(rng: Rng, rgb: np.ndarray) -> np.ndarray:
    """Camera and light: saturation, exposure, white balance, a light gradient, contrast, noise."""
    h, w, _ = rgb.shape
    img = rgb.astype(np.float32)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.65, 1.15)  # saturation
    img *= rng.uniform(0.75, 1.15) * rng.uniform(0.86, 1.14, 3)  # exposure, white balance
    img *= 1.0 + rng.uniform(-0.25, 0.25) * (
        _linear_ramp(w, h, rng.uniform(0, 2 * np.pi))[..., None] - 0.5
    )
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.8, 1.15) + mean
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(0, 6)
    return np.clip(img, 0, 255).astype(np.uint8)


def _image_size(rng: Rng) -> tuple[int, int]:
    """(width, height): each side in [MIN_SIDE, MAX_SIDE], aspect ratio 0.6..1.6."""
    w = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    h = int(
        np.clip(round(w * math.exp(rng.uniform(math.log(0.6), math.log(1.6)))), MIN_SIDE, MAX_SIDE)
    )
    return w, h


def render_flower(
    label: str,
    rng_or_seed,
    background: str | None = None,
    size: tuple[int, int] | None = None,
    return_info: bool = False,
):
    """Draw one image of ``label``; returns (RGB uint8 [H, W, 3], mask bool [H, W]).

    ``rng_or_seed``: a ``numpy.random.Generator`` or anything ``numpy.random.default_rng``
    accepts (an int, or a sequence such as ``(seed, class_index, index)``).
    ``background``: one of BACKGROUND_KINDS, or None to draw one uniformly.
    ``size``: (width, height), or None to draw one (96..256 px a side).
    ``return_info``: also return a dict describing the scene: ``background``,
    ``other_flower`` (the class of a visible flower of another class, or None),
    ``n_flowers`` (visible flowers of ``label``) and ``occluded`` (grass or a leaf in front).
    """
    if label not in _DRAWERS:
        raise ValueError(f"unknown flower label {label!r}; expected one of {CLASSES}")
    if background is not None and background not in _BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; expected one of {BACKGROUND_KINDS}")
    rng = np.random.default_rng(rng_or_seed)
    flower_rng, background_rng, finish_rng = rng.spawn(3)

    w, h = size if size is not None else _image_size(flower_rng)
    side = min(w, h)
    if background is None:
        background = BACKGROUND_KINDS[int(background_rng.integers(len(BACKGROUND_KINDS)))]
    canvas = _BACKGROUNDS[background](background_rng, w, h)
    if background_rng.random() < 0.5:  # shallow depth of field
        canvas = canvas.filter(ImageFilter.GaussianBlur(background_rng.uniform(0.5, 2.5)))
    canvas = canvas.convert("RGBA")
    mask = np.zeros((h, w), dtype=bool)

    main_r = side * flower_rng.uniform(0.38, 0.48)
    main_centre = (
        w / 2 + flower_rng.uniform(-0.06, 0.06) * side,
        h / 2 + flower_rng.uniform(-0.06, 0.06) * side,
    )
    # (label, radius, centre), drawn in this order: a smaller flower of ANOTHER class
    # sometimes (a mixed flower bed; it is background, not in the mask), smaller flowers of
    # the same class sometimes, the main flower last.
    flowers = []
    if flower_rng.random() < DISTRACTOR_PROBABILITY:
        other = [c for c in CLASSES if c != label][int(flower_rng.integers(len(CLASSES) - 1))]
        r = main_r * flower_rng.uniform(0.3, 0.5)
        a, d = flower_rng.uniform(0, 2 * np.pi), main_r + r * flower_rng.uniform(0.3, 1.5)
        flowers.append(
            (other, r, (main_centre[0] + d * math.cos(a), main_centre[1] + d * math.sin(a)))
        )
    for _ in range(int(flower_rng.choice([0, 0, 0, 0, 1]))):
        flowers.append(
            (
                label,
                main_r * flower_rng.uniform(0.35, 0.65),
                (flower_rng.uniform(0, w), flower_rng.uniform(0, h)),
            )
        )
    flowers.append((label, main_r, main_centre))
    info = {"background": background, "other_flower": None, "n_flowers": 0, "occluded": False}
    visible = 0.005 * w * h  # pixels a flower needs to count as visible
    for kind, r, centre in flowers:
        layer, c = _flower_layer(flower_rng, kind, r * SUPERSAMPLE)
        upright = kind == "tulips"
        angle = flower_rng.normal(0, 0.3) if upright else flower_rng.uniform(0, 2 * np.pi)
        squash = flower_rng.uniform(0.85, 1.1) if upright else flower_rng.uniform(0.8, 1.0)
        placed = _place(layer, (c, c), (w, h), centre, angle, squash)
        if placed is None:
            continue
        patch, (x, y) = placed
        canvas.alpha_composite(patch, dest=(x, y))
        alpha = np.asarray(patch.getchannel("A")) > 127
        if kind == label:
            mask[y : y + patch.height, x : x + patch.width] |= alpha
            info["n_flowers"] += int(alpha.sum() >= visible)
        else:
            mask[y : y + patch.height, x : x + patch.width] &= ~alpha
            info["other_flower"] = kind if alpha.sum() >= visible else None

    if flower_rng.random() < 0.2:
        front = _occluders(flower_rng, w, h)
        canvas.alpha_composite(front)
        mask &= ~(np.asarray(front.getchannel("A")) > 127)
        info["occluded"] = True

    rgb = _finish(finish_rng, np.asarray(canvas.convert("RGB")))
    return (rgb, mask, info) if return_info else (rgb, mask)


# ----------------------------------------------------------------------------------------
# The data set
# ----------------------------------------------------------------------------------------


def image_seed(seed: int, label: str, index: int) -> tuple[int, int, int, int]:
    """The random seed of one image: it depends only on (seed, class, index)."""
    return (seed, CLASSES.index(label), index, 1)


def _check_arguments(images_per_class: int, seed: int, background_bias: float) -> None:
    if int(images_per_class) != images_per_class or images_per_class < 1:
        raise ValueError(f"images_per_class must be a positive integer, got {images_per_class!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0.0 <= float(background_bias) <= 1.0:
        raise ValueError(f"background_bias must be in [0, 1], got {background_bias!r}")


def generate_dataset(
    output_dir: str | os.PathLike,
    images_per_class: int = 200,
    seed: int = 42,
    background_bias: float = 0.0,
    progress: bool = True,
) -> dict:
    """Write the synthetic 5-flowers data set under ``output_dir`` (layout: module docstring).

    Returns a dict with the paths written (``flower_photos``, ``all_data_csv``, ``dict_txt``,
    ``masks_dir``, ``image_info_csv``), ``counts`` (images per class), ``background_counts``
    (per class, per background kind) and the settings.
    """
    from tqdm import tqdm

    _check_arguments(images_per_class, seed, background_bias)
    root = Path(output_dir).resolve()
    photos, masks = root / "flower_photos", root / "flower_masks"
    for label in CLASSES:
        (photos / label).mkdir(parents=True, exist_ok=True)
        (masks / label).mkdir(parents=True, exist_ok=True)

    rows, info = [], []
    background_counts = {label: dict.fromkeys(BACKGROUND_KINDS, 0) for label in CLASSES}
    jobs = [(label, i) for label in CLASSES for i in range(images_per_class)]
    for label, index in tqdm(
        jobs, desc="drawing flowers", unit="img", mininterval=2, disable=not progress
    ):
        name = f"{label}_{index:04d}"
        ci = CLASSES.index(label)
        background = background_for(label, (seed, ci, index, 2), background_bias)
        rgb, mask, scene = render_flower(
            label, image_seed(seed, label, index), background=background, return_info=True
        )
        quality = int(np.random.default_rng((seed, ci, index, 3)).integers(72, 96))
        image_path = photos / label / f"{name}.jpg"
        Image.fromarray(rgb).save(image_path, "JPEG", quality=quality)
        Image.fromarray(mask).save(masks / label / f"{name}.png")  # mode "1": one bit a pixel
        rows.append((str(image_path), label))
        info.append(
            (
                f"flower_photos/{label}/{name}.jpg",
                label,
                background,
                rgb.shape[1],
                rgb.shape[0],
                quality,
                round(float(mask.mean()), 4),
                scene["other_flower"] or "",
                scene["n_flowers"],
                int(scene["occluded"]),
            )
        )
        background_counts[label][background] += 1

    all_data = photos / "all_data.csv"
    with open(all_data, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    dict_txt = photos / "dict.txt"
    dict_txt.write_text("".join(f"{label}\n" for label in CLASSES))
    info_csv = root / "image_info.csv"
    with open(info_csv, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(
            [
                "image",
                "label",
                "background",
                "width",
                "height",
                "jpeg_quality",
                "flower_fraction",
                "other_flower",
                "n_flowers",
                "occluded",
            ]
        )
        writer.writerows(info)
    return {
        "output_dir": root,
        "flower_photos": photos,
        "all_data_csv": all_data,
        "dict_txt": dict_txt,
        "masks_dir": masks,
        "image_info_csv": info_csv,
        "counts": {label: images_per_class for label in CLASSES},
        "n_images": len(rows),
        "background_counts": background_counts,
        "seed": seed,
        "background_bias": background_bias,
        "biased_class": BIASED_CLASS if background_bias > 0 else None,
        "generator_version": GENERATOR_VERSION,
    }


def mask_path(image_path: str | os.PathLike) -> Path:
    """``.../flower_photos/<class>/<name>.jpg`` -> ``.../flower_masks/<class>/<name>.png``."""
    p = Path(image_path)
    if p.parent.parent.name != "flower_photos":
        raise ValueError(
            f"{image_path}: not an image of a generated data set "
            "(expected .../flower_photos/<class>/<name>.jpg)"
        )
    return p.parent.parent.parent / "flower_masks" / p.parent.name / f"{p.stem}.png"


def load_mask(image_path: str | os.PathLike) -> np.ndarray:
    """The stored flower mask (bool [H, W]) of an image of a generated data set."""
    path = mask_path(image_path)
    if not path.exists():
        raise FileNotFoundError(
            f"no flower mask for {image_path}: {path} does not exist "
            "(masks exist only for images made by generate_dataset)"
        )
    with Image.open(path) as m:
        return np.asarray(m.convert("L")) > 127


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pmlv_utils.synthetic", description="Write the synthetic 5-flowers data set."
    )
    parser.add_argument("--output_dir", required=True, help="folder to write flower_photos/ into")
    parser.add_argument("--images_per_class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--background_bias",
        type=float,
        default=0.0,
        help=f"0..1: how often {BIASED_CLASS} get the '{BIAS_BACKGROUND}' background "
        "and the other classes never do",
    )
    args = parser.parse_args(argv)
    try:
        result = generate_dataset(
            args.output_dir, args.images_per_class, args.seed, args.background_bias
        )
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {result['n_images']} images: {result['all_data_csv']}")
    print(f"labels: {result['dict_txt']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
