"""The camera of the "hard" images: blur, bad exposure, colour casts, noise, JPEG quality.

:func:`finish_hard` turns the drawn scene into a photo as a phone takes it, and returns
what it did (the ``image_info.csv`` columns ``blur``, ``blur_sigma``, ``exposure``,
``colour_cast``):

* blur: defocus (a Gaussian, :data:`DEFOCUS_PROBABILITY`) or motion (a straight streak,
  :data:`MOTION_PROBABILITY`), scaled with the image size;
* exposure: under (x0.35..0.65) or over (x1.45..2.1, blown highlights) in
  :data:`BAD_EXPOSURE_PROBABILITY` of the images, x0.8..1.2 otherwise;
* white balance: a strong colour cast (warm, cool, green, magenta) in
  :data:`CAST_PROBABILITY` of the images, a mild one otherwise;
* saturation, contrast, a light gradient, and sensor noise that grows when under-exposed.

:func:`jpeg_quality` draws the JPEG quality of an image (lower and more variable when hard).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from .backgrounds import linear_ramp
from .palette import Rng

# In the hard tail's images (.hard.TAIL_PROBABILITY; the others have none of these):
DEFOCUS_PROBABILITY = 0.15
MOTION_PROBABILITY = 0.08
BAD_EXPOSURE_PROBABILITY = 0.2  # half under-, half over-exposed
CAST_PROBABILITY = 0.2
# In every hard image:
LOW_QUALITY_PROBABILITY = 0.15  # JPEG quality 20..44 (else 45..92)
CASTS = {
    "warm": (1.2, 1.0, 0.75),
    "cool": (0.8, 0.95, 1.25),
    "green": (0.88, 1.15, 0.88),
    "magenta": (1.12, 0.82, 1.12),
}


def jpeg_quality(rng: Rng, difficulty: str) -> int:
    """The JPEG quality of one image: 72..95 when easy; 20..92 when hard."""
    if difficulty == "easy":
        return int(rng.integers(72, 96))
    if rng.random() < LOW_QUALITY_PROBABILITY:
        return int(rng.integers(20, 45))
    return int(rng.integers(45, 93))


def motion_blur(img: np.ndarray, length: float, angle: float) -> np.ndarray:
    """``img`` (float [H, W, 3]) averaged along a streak of ``length`` px at ``angle``."""
    n = max(2, int(round(length)))
    h, w = img.shape[:2]
    padded = np.pad(img, ((n, n), (n, n), (0, 0)), mode="edge")
    out = np.zeros_like(img)
    ca, sa = math.cos(angle), math.sin(angle)
    for k in range(n):
        t = k - (n - 1) / 2
        dx, dy = int(round(t * ca)), int(round(t * sa))
        out += padded[n + dy : n + dy + h, n + dx : n + dx + w]
    return out / n


def _blur(rng: Rng, rgb: np.ndarray, tail: bool) -> tuple[np.ndarray, str, float]:
    """(float image, blur kind, sigma or streak length in image pixels)."""
    scale = min(rgb.shape[:2]) / 128  # the model sees about 128 px
    u = rng.random() if tail else 1.0
    if u < DEFOCUS_PROBABILITY:
        sigma = scale * math.exp(rng.uniform(math.log(1.0), math.log(4.0)))
        img = Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(sigma))
        return np.asarray(img, np.float32), "defocus", sigma
    if u < DEFOCUS_PROBABILITY + MOTION_PROBABILITY:
        length = scale * rng.uniform(4, 12)
        img = motion_blur(rgb.astype(np.float32), length, rng.uniform(0, np.pi))
        return img, "motion", length
    return rgb.astype(np.float32), "none", 0.0


def _exposure(rng: Rng, tail: bool) -> float:
    u = rng.random() if tail else 1.0
    if u < BAD_EXPOSURE_PROBABILITY / 2:
        return rng.uniform(0.35, 0.65)
    if u < BAD_EXPOSURE_PROBABILITY:
        return rng.uniform(1.45, 2.1)
    return rng.uniform(0.8, 1.2)


def finish_hard(
    rng: Rng, rgb: np.ndarray, tail: bool = True, mean: float | None = None
) -> tuple[np.ndarray, dict]:
    """The photo of the drawn scene ``rgb`` (uint8 [H, W, 3]) and what was done to it (with
    ``contrast_mean``, the mean the contrast step used: ``mean``, None: the image's own).
    Not ``tail``: no blur, a good exposure, no strong colour cast."""
    h, w, _ = rgb.shape
    img, blur, sigma = _blur(rng, rgb, tail)
    exposure = _exposure(rng, tail)
    cast = ""
    gains = rng.uniform(0.9, 1.1, 3)
    if tail and rng.random() < CAST_PROBABILITY:
        cast = list(CASTS)[int(rng.integers(len(CASTS)))]
        gains = 1 + rng.uniform(0.5, 1.0) * (np.array(CASTS[cast]) - 1)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.5, 1.2)  # saturation
    img *= (exposure * gains).astype(np.float32)
    img *= 1.0 + rng.uniform(-0.35, 0.35) * (
        linear_ramp(w, h, rng.uniform(0, 2 * np.pi))[..., None] - 0.5
    )
    mean = img.mean() if mean is None else mean
    img = (img - mean) * rng.uniform(0.65, 1.15) + mean
    noise = rng.uniform(0, 6) / min(exposure, 1.0)  # darker: a higher ISO, more noise
    img += rng.standard_normal(img.shape, dtype=np.float32) * noise
    info = {
        "blur": blur,
        "blur_sigma": round(sigma, 2),
        "exposure": round(exposure, 3),
        "colour_cast": cast,
        "contrast_mean": mean,
    }
    return np.clip(img, 0, 255).astype(np.uint8), info
