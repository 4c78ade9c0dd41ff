"""The pretext task: 24 classes of shapes on plain, noisy or patterned backgrounds.

Not flowers: the backbone learns edges, corners, curvature and outlines from another task,
so that training on the five flowers with it is transfer learning (the book used ImageNet;
offline, this is what the project can make). Each image shows one large shape of its class
in a flat colour that stands out from the background, at a random rotation, scale and
position, sometimes blurred. Version 1 also filled the shapes with textures and added
distractor shapes: a MobileNetV2 from scratch stayed at chance on it within a CPU budget;
on this version it reached 0.74 validation accuracy in 20 epochs (the defaults). Light: no
TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

GENERATOR_VERSION = "2"  # bump whenever an image of a given seed changes
SHAPES = (
    "circle",
    "ellipse",
    "semicircle",
    "crescent",
    "ring",
    "square",
    "rectangle",
    "triangle",
    "diamond",
    "trapezoid",
    "pentagon",
    "hexagon",
    "octagon",
    "star4",
    "star5",
    "star8",
    "cross",
    "x_cross",
    "arrow",
    "heart",
    "l_shape",
    "t_shape",
    "gear",
    "bars",
)
MIN_CONTRAST = 150  # of a shape's colour from the background's mean, summed over RGB
SUPERSAMPLE = 2  # draw at twice the size, then downsample (antialiased edges)


def _polygon(points, cx, cy, radius, angle):
    """Unit-circle ``points`` [(x, y)] rotated by ``angle`` and placed at (cx, cy)."""
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + radius * (x * c - y * s), cy + radius * (x * s + y * c)) for x, y in points]


def _regular(n, start=-math.pi / 2):
    return [
        (math.cos(start + 2 * math.pi * k / n), math.sin(start + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _star(n, inner):
    points = []
    for k in range(2 * n):
        r = 1.0 if k % 2 == 0 else inner
        a = -math.pi / 2 + math.pi * k / n
        points.append((r * math.cos(a), r * math.sin(a)))
    return points


def _gear(teeth=8, inner=0.75):
    points = []
    for k in range(teeth * 4):
        r = 1.0 if k % 4 in (1, 2) else inner
        a = 2 * math.pi * k / (teeth * 4)
        points.append((r * math.cos(a), r * math.sin(a)))
    return points


def _heart(steps=40):
    pts = []
    for k in range(steps):
        t = 2 * math.pi * k / steps
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        pts.append((x / 17, y / 17))
    return pts


_POLYGONS = {
    "square": [(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)],
    "rectangle": [(-0.95, -0.45), (0.95, -0.45), (0.95, 0.45), (-0.95, 0.45)],
    "triangle": _regular(3),
    "diamond": [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)],
    "trapezoid": [(-0.45, -0.55), (0.45, -0.55), (0.95, 0.55), (-0.95, 0.55)],
    "pentagon": _regular(5),
    "hexagon": _regular(6),
    "octagon": _regular(8),
    "star4": _star(4, 0.35),
    "star5": _star(5, 0.45),
    "star8": _star(8, 0.6),
    "cross": [(-0.3, -0.95), (0.3, -0.95), (0.3, -0.3), (0.95, -0.3), (0.95, 0.3), (0.3, 0.3),
              (0.3, 0.95), (-0.3, 0.95), (-0.3, 0.3), (-0.95, 0.3), (-0.95, -0.3), (-0.3, -0.3)],
    "arrow": [(-0.95, -0.25), (0.2, -0.25), (0.2, -0.65), (0.95, 0), (0.2, 0.65), (0.2, 0.25),
              (-0.95, 0.25)],
    "heart": _heart(),
    "l_shape": [(-0.7, -0.9), (-0.2, -0.9), (-0.2, 0.4), (0.7, 0.4), (0.7, 0.9), (-0.7, 0.9)],
    "t_shape": [(-0.9, -0.9), (0.9, -0.9), (0.9, -0.4), (0.25, -0.4), (0.25, 0.9), (-0.25, 0.9),
                (-0.25, -0.4), (-0.9, -0.4)],
    "gear": _gear(),
}  # fmt: skip


def _fill(rng, size: int) -> np.ndarray:
    """An RGB fill ``[size, size, 3]`` uint8: flat colour, gradient, stripes, dots or noise."""
    colour = rng.integers(0, 256, 3)
    other = rng.integers(0, 256, 3)
    kind = rng.integers(5)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if kind == 0:
        mix = np.zeros((size, size))
    elif kind == 1:
        a = rng.uniform(0, 2 * np.pi)
        mix = (np.cos(a) * xx + np.sin(a) * yy) % 1.0
    elif kind == 2:
        a, period = rng.uniform(0, np.pi), rng.uniform(0.05, 0.2)
        mix = ((np.cos(a) * xx + np.sin(a) * yy) / period % 1.0 > 0.5).astype(float)
    elif kind == 3:
        period = rng.uniform(0.06, 0.15)
        mix = (((xx / period) % 1 - 0.5) ** 2 + ((yy / period) % 1 - 0.5) ** 2 < 0.08).astype(float)
    else:
        mix = rng.random((size, size))
    out = colour[None, None] * (1 - mix[..., None]) + other[None, None] * mix[..., None]
    return out.astype(np.uint8)


def _background(rng, size: int) -> Image.Image:
    """Flat, noisy, or a textured fill (gradient, stripes, dots, noise) or coarse checks."""
    kind = rng.integers(4)
    if kind == 0:
        arr = np.broadcast_to(rng.integers(0, 256, 3), (size, size, 3)).astype(np.uint8)
    elif kind == 1:
        arr = _fill(rng, size)
    elif kind == 2:
        base = rng.integers(40, 220, 3)
        arr = np.clip(base + rng.normal(0, rng.uniform(10, 40), (size, size, 3)), 0, 255)
    else:
        cells = int(rng.integers(3, 9))
        grid = rng.integers(0, 256, (cells, cells, 3)).astype(np.uint8)
        arr = np.asarray(Image.fromarray(grid).resize((size, size), Image.NEAREST))
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))


def _contrasting_colour(rng, background: Image.Image) -> tuple[int, int, int]:
    """A random colour at least MIN_CONTRAST (sum of |RGB differences|) from the mean."""
    mean = np.asarray(background, dtype=float).reshape(-1, 3).mean(0)
    while True:
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - mean).sum() >= MIN_CONTRAST:
            return tuple(int(v) for v in colour)


def _shape_mask(kind: str, size: int, cx, cy, radius, angle, rng) -> Image.Image:
    """A mode "L" mask of one shape."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    if kind in _POLYGONS:
        draw.polygon(_polygon(_POLYGONS[kind], cx, cy, radius, angle), fill=255)
    elif kind == "circle":
        draw.ellipse(box, fill=255)
    elif kind == "ellipse":
        ellipse = [(math.cos(t) * 1.0, math.sin(t) * 0.5) for t in np.linspace(0, 2 * np.pi, 48)]
        draw.polygon(_polygon(ellipse, cx, cy, radius, angle), fill=255)
    elif kind == "semicircle":
        half = [(math.cos(t), math.sin(t) * 1.0) for t in np.linspace(0, np.pi, 32)]
        draw.polygon(_polygon([(x, y - 0.4) for x, y in half], cx, cy, radius, angle), fill=255)
    elif kind == "ring":
        draw.ellipse(box, fill=255)
        r2 = radius * rng.uniform(0.45, 0.65)
        draw.ellipse([cx - r2, cy - r2, cx + r2, cy + r2], fill=0)
    elif kind == "crescent":
        draw.ellipse(box, fill=255)
        dx, dy = 0.45 * radius * math.cos(angle), 0.45 * radius * math.sin(angle)
        draw.ellipse([box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy], fill=0)
    elif kind == "x_cross":
        _draw_bars(draw, cx, cy, radius, angle + math.pi / 4, count=2, crossed=True)
    elif kind == "bars":
        _draw_bars(draw, cx, cy, radius, angle, count=3, crossed=False)
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return mask


def _draw_bars(draw, cx, cy, radius, angle, count: int, crossed: bool):
    width = 0.22
    for k in range(count):
        a = angle + (math.pi / 2 * k if crossed else 0)
        offset = 0 if crossed else (k - (count - 1) / 2) * 0.55
        bar = [(-0.95, offset - width), (0.95, offset - width), (0.95, offset + width),
               (-0.95, offset + width)]  # fmt: skip
        draw.polygon(_polygon(bar, cx, cy, radius, a), fill=255)


def render_shape(label: int, seed, size: int = 96) -> np.ndarray:
    """One pretext image ``[size, size, 3]`` uint8 of shape class ``label`` (index into
    :data:`SHAPES`); the same (label, seed) always gives the same image."""
    rng = np.random.default_rng(seed)
    big = size * SUPERSAMPLE
    image = _background(rng, big)
    radius = big * rng.uniform(0.25, 0.45)
    cx, cy = rng.uniform(radius * 0.9, big - radius * 0.9, 2)
    mask = _shape_mask(SHAPES[label], big, cx, cy, radius, rng.uniform(0, 2 * np.pi), rng)
    image.paste(_contrasting_colour(rng, image), (0, 0), mask)
    image = image.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
    if rng.random() < 0.2:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2)))
    return np.asarray(image, dtype=np.uint8)


def make_shapes(images_per_class: int, seed: int = 0, size: int = 96, offset: int = 0):
    """``(images uint8 [N, size, size, 3], labels int [N])``, classes in turn; ``offset``
    starts the image indices elsewhere (a validation set from the same seed)."""
    n = images_per_class * len(SHAPES)
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty(n, np.int64)
    for i in range(n):
        label, index = i % len(SHAPES), offset + i // len(SHAPES)
        images[i] = render_shape(label, (seed, label, index), size)
        labels[i] = label
    return images, labels
