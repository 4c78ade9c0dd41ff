"""Drawing primitives shared by the flowers, the backgrounds and the occluders.

Coordinates are pixels of the layer being drawn; angles are radians.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import ImageDraw

from .palette import shade


def petal_polygon(
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


def ellipse_polygon(cx, cy, rx, ry, angle=0.0, n=24) -> list[tuple[float, float]]:
    """An ellipse of radii ``rx``, ``ry`` turned by ``angle``, as ``n`` points."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    ca, sa = math.cos(angle), math.sin(angle)
    return list(zip(cx + x * ca - y * sa, cy + x * sa + y * ca))


def leaf(draw: ImageDraw.ImageDraw, x, y, angle, length, width, colour) -> None:
    """A long pointed leaf with a lighter midrib, starting at (x, y)."""
    draw.polygon(
        petal_polygon(x, y, angle, 0, length, width, pointed=True),
        fill=colour,
        outline=shade(colour, 0.7),
    )
    end = (x + 0.85 * length * math.cos(angle), y + 0.85 * length * math.sin(angle))
    draw.line([(x, y), end], fill=shade(colour, 1.25), width=max(1, int(width / 10)))


def stem(draw, x0, y0, length, width, colour, lean: float = 0.0) -> tuple[float, float]:
    """A slightly curved stem going down from (x0, y0); returns its lower end."""
    t = np.linspace(0, 1, 8)
    xs = x0 + lean * length * t**2
    ys = y0 + length * t
    draw.line(list(zip(xs, ys)), fill=colour, width=max(1, int(width)), joint="curve")
    return float(xs[-1]), float(ys[-1])
