"""What stands in front of the flower: grass, a leaf, out-of-focus foliage, a twig.

Each function returns an RGBA layer of the image's size, transparent where nothing is in
front; the scene composites it over the flowers and removes it from the mask.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .palette import Rng, green, hsv
from .shapes import ellipse_polygon, leaf


def grass_or_leaf(rng: Rng, w: int, h: int) -> Image.Image:
    """Grass blades or a leaf in front of the flower (RGBA, transparent elsewhere)."""
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if rng.random() < 0.6:
        for _ in range(int(rng.integers(2, 7))):
            x = rng.uniform(0, w)
            leaf(
                draw,
                x,
                h + 2,
                -np.pi / 2 + rng.normal(0, 0.25),
                h * rng.uniform(0.3, 0.7),
                w * rng.uniform(0.02, 0.05),
                green(rng, 0.2),
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
        leaf(
            draw,
            x,
            y,
            angle,
            max(w, h) * rng.uniform(0.3, 0.5),
            min(w, h) * rng.uniform(0.15, 0.3),
            green(rng, 0.1),
        )
    return layer


def foliage_blur(rng: Rng, w: int, h: int) -> Image.Image:
    """Out-of-focus leaves close to the lens: soft green blobs over one side of the image."""
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    side = min(w, h)
    cx, cy = [(0, rng.uniform(0, h)), (w, rng.uniform(0, h)), (rng.uniform(0, w), h)][
        int(rng.integers(3))
    ]
    for _ in range(int(rng.integers(2, 5))):
        rx = side * rng.uniform(0.15, 0.35)
        poly = ellipse_polygon(
            cx + rng.normal(0, side * 0.12),
            cy + rng.normal(0, side * 0.12),
            rx,
            rx * rng.uniform(0.4, 0.8),
            rng.uniform(0, np.pi),
            n=20,
        )
        draw.polygon(poly, fill=green(rng, rng.uniform(0.1, 0.5)))
    return layer.filter(ImageFilter.GaussianBlur(side * rng.uniform(0.02, 0.05)))


def twig(rng: Rng, w: int, h: int) -> Image.Image:
    """A thin brown twig with a few small leaves across the image."""
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    side = min(w, h)
    x0, y0 = (-2, rng.uniform(0, h)) if rng.random() < 0.5 else (rng.uniform(0, w), -2)
    x1, y1 = (w + 2, rng.uniform(0, h)) if x0 < 0 else (rng.uniform(0, w), h + 2)
    colour = hsv(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.2, 0.45))
    draw.line([(x0, y0), (x1, y1)], fill=colour, width=max(2, int(side * rng.uniform(0.02, 0.04))))
    angle = float(np.arctan2(y1 - y0, x1 - x0))
    for t in rng.uniform(0.1, 0.9, int(rng.integers(2, 6))):
        x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
        a = angle + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
        leaf(
            draw, x, y, a, side * rng.uniform(0.1, 0.2), side * rng.uniform(0.04, 0.08), green(rng)
        )
    return layer


def hard_occluder(rng: Rng, w: int, h: int) -> tuple[str, Image.Image]:
    """(kind, layer): grass or a leaf (50%), blurred foliage (25%) or a twig (25%)."""
    u = rng.random()
    if u < 0.5:
        return "grass_or_leaf", grass_or_leaf(rng, w, h)
    if u < 0.75:
        return "foliage", foliage_blur(rng, w, h)
    return "twig", twig(rng, w, h)
