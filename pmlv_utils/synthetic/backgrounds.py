"""The eight background kinds, drawn at the output size, and the background-bias rule.

A background is ``background_<kind>(rng, w, h) -> PIL RGB image``; :data:`BACKGROUNDS` maps
each of :data:`BACKGROUND_KINDS` to its function. :func:`draw_background` is what a scene
calls (it adds a shallow depth of field half the time). :func:`background_for` plants the
"wolf on snow" shortcut of ``background_bias`` (see the package docstring).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .palette import Rng, green, hsv, random_colour, shade
from .shapes import ellipse_polygon

BACKGROUND_KINDS = ("plain", "gradient", "grass", "leaves", "sky", "noise", "soil", "bokeh")
BIASED_CLASS = "tulips"
BIAS_BACKGROUND = "sky"


def linear_ramp(w: int, h: int, angle: float) -> np.ndarray:
    """Values 0..1 increasing along ``angle`` across a ``h x w`` image."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = x * math.cos(angle) + y * math.sin(angle)
    return (t - t.min()) / max(float(t.max() - t.min()), 1e-6)


def background_plain(rng: Rng, w: int, h: int) -> Image.Image:
    return Image.new("RGB", (w, h), random_colour(rng)[:3])


def background_gradient(rng: Rng, w: int, h: int) -> Image.Image:
    c0, c1 = (np.array(random_colour(rng)[:3], np.float32) for _ in range(2))
    t = linear_ramp(w, h, rng.uniform(0, 2 * np.pi))[..., None]
    return Image.fromarray((c0 * (1 - t) + c1 * t).astype(np.uint8))


def background_grass(rng: Rng, w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h), green(rng, 0.4)[:3])
    draw = ImageDraw.Draw(img)
    n = w * h // 50
    xs, ys = rng.uniform(0, w, n), rng.uniform(0, h * 1.1, n)
    lengths, leans = rng.uniform(0.05, 0.2, n) * h, rng.normal(0, 0.25, n)
    hue, val = rng.uniform(0.2, 0.36, n), rng.uniform(0.25, 0.75, n)
    for x, y, ln, lean, hh, vv in zip(xs, ys, lengths, leans, hue, val):
        draw.line([(x, y), (x + lean * ln, y - ln)], fill=hsv(hh, 0.7, vv)[:3], width=1)
    return img


def background_leaves(rng: Rng, w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h), green(rng, 0.5)[:3])
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(25, 60))):
        col = green(rng, rng.uniform(0, 0.4))
        rx = rng.uniform(0.05, 0.18) * max(w, h)
        draw.polygon(
            ellipse_polygon(
                rng.uniform(0, w),
                rng.uniform(0, h),
                rx,
                rx * rng.uniform(0.3, 0.5),
                rng.uniform(0, np.pi),
                n=16,
            ),
            fill=col[:3],
            outline=shade(col, 0.6)[:3],
        )
    return img


def background_sky(rng: Rng, w: int, h: int) -> Image.Image:
    top = np.array(
        hsv(rng.uniform(0.55, 0.62), rng.uniform(0.55, 0.85), rng.uniform(0.65, 0.95))[:3],
        np.float32,
    )
    bottom = np.array(
        hsv(rng.uniform(0.53, 0.6), rng.uniform(0.1, 0.35), rng.uniform(0.88, 1.0))[:3], np.float32
    )
    t = linear_ramp(w, h, np.pi / 2 + rng.normal(0, 0.15))[..., None]
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


def background_noise(rng: Rng, w: int, h: int) -> Image.Image:
    coarse = rng.uniform(0, 255, (int(rng.integers(3, 8)), int(rng.integers(3, 8)), 3))
    coarse = (0.6 * coarse + 0.4 * coarse.mean(axis=2, keepdims=True)).astype(
        np.uint8
    )  # muted colours
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), np.float32)
    img += rng.normal(0, rng.uniform(5, 25), (h, w, 1))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def background_soil(rng: Rng, w: int, h: int) -> Image.Image:
    base = np.array(
        hsv(rng.uniform(0.05, 0.1), rng.uniform(0.35, 0.7), rng.uniform(0.2, 0.5))[:3], np.float32
    )
    grain = rng.normal(1.0, 0.18, (h, w, 1)).astype(np.float32)
    img = Image.fromarray(np.clip(base * grain, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(5, 25))):  # pebbles
        col = hsv(rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.8))
        rx = rng.uniform(0.01, 0.05) * w
        draw.polygon(
            ellipse_polygon(
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


def background_bokeh(rng: Rng, w: int, h: int) -> Image.Image:
    """A blurred garden: out-of-focus blobs of any colour (flower colours included)."""
    img = background_gradient(rng, w, h) if rng.random() < 0.5 else background_leaves(rng, w, h)
    draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(int(rng.integers(8, 30))):
        x, y, rad = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.03, 0.12) * max(w, h)
        draw.ellipse(
            [x - rad, y - rad, x + rad, y + rad],
            fill=random_colour(rng, (0.2, 1.0), (0.5, 1.0))[:3] + (int(rng.uniform(90, 220)),),
        )
    return img.filter(ImageFilter.GaussianBlur(max(w, h) / rng.uniform(25, 60)))


BACKGROUNDS = {
    "plain": background_plain,
    "gradient": background_gradient,
    "grass": background_grass,
    "leaves": background_leaves,
    "sky": background_sky,
    "noise": background_noise,
    "soil": background_soil,
    "bokeh": background_bokeh,
}
assert set(BACKGROUNDS) == set(BACKGROUND_KINDS)


def draw_background(rng: Rng, kind: str | None, w: int, h: int) -> tuple[str, Image.Image]:
    """(kind, RGBA canvas of ``w x h``): ``kind`` drawn uniformly when None, then blurred
    (shallow depth of field) half the time."""
    if kind is None:
        kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    canvas = BACKGROUNDS[kind](rng, w, h)
    if rng.random() < 0.5:  # shallow depth of field
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))
    return kind, canvas.convert("RGBA")


def background_for(label: str, rng_or_seed, background_bias: float = 0.0) -> str:
    """The background kind of one image of ``label``.

    With probability ``background_bias`` a tulip gets the sky and any other flower a
    non-sky background; otherwise the kind is drawn uniformly."""
    if not 0.0 <= background_bias <= 1.0:
        raise ValueError(f"background_bias must be in [0, 1], got {background_bias}")
    rng = np.random.default_rng(rng_or_seed)
    if rng.random() < background_bias:
        if label == BIASED_CLASS:
            return BIAS_BACKGROUND
        others = [k for k in BACKGROUND_KINDS if k != BIAS_BACKGROUND]
        return others[int(rng.integers(len(others)))]
    return BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
