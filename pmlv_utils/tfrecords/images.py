"""One image: read its bytes, check it, convert it to an RGB JPEG only when needed; dead letters.

Every CSV line that cannot become a record becomes one dead-letter line (:func:`error_record`)
with a reason from :data:`REJECT_REASONS`. The job never stops for a bad line.
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from .. import dataset_files
from ..dataset_files import CsvRow

REENCODE_QUALITY = 90  # JPEG quality used only when a source must be converted
ERRORS_PREFIX = "errors"  # the dead-letter file: errors-00000-of-00001.jsonl

# Why a line can be rejected (the dead-letter ``reason`` field).
EMPTY_LINE = dataset_files.EMPTY_LINE
MALFORMED_LINE = dataset_files.MALFORMED_LINE
UNKNOWN_LABEL = "unknown label"
MISSING_FILE = "missing file"
READ_ERROR = "read error"
EMPTY_FILE = "empty file"
NOT_AN_IMAGE = "not an image"
CORRUPT_IMAGE = "corrupt image"
IMAGE_TOO_LARGE = "image too large"
REJECT_REASONS = (
    EMPTY_LINE,
    MALFORMED_LINE,
    UNKNOWN_LABEL,
    MISSING_FILE,
    READ_ERROR,
    EMPTY_FILE,
    NOT_AN_IMAGE,
    CORRUPT_IMAGE,
    IMAGE_TOO_LARGE,
)


class ImageRejected(Exception):
    """An input that cannot become a record; ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def _as_rgb(img: Image.Image) -> Image.Image:
    """A PIL image in RGB mode: alpha composited on white, 16-bit/float scaled to 8-bit."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _decode(data: bytes) -> Image.Image:
    """The whole image decoded (so a truncated file is caught); :class:`ImageRejected`."""
    if not data:
        raise ImageRejected(EMPTY_FILE, "0 bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise ImageRejected(NOT_AN_IMAGE, str(e).split(" <")[0]) from e
    except Image.DecompressionBombError as e:
        raise ImageRejected(IMAGE_TOO_LARGE, str(e)) from e
    except Exception as e:  # noqa: BLE001 - any decoder failure is a corrupt image
        raise ImageRejected(CORRUPT_IMAGE, f"{type(e).__name__}: {e}") from e
    try:
        img.load()
    except Image.DecompressionBombError as e:
        raise ImageRejected(IMAGE_TOO_LARGE, str(e)) from e
    except Exception as e:  # noqa: BLE001
        raise ImageRejected(CORRUPT_IMAGE, f"{type(e).__name__}: {e}") from e
    if img.width < 1 or img.height < 1:
        raise ImageRejected(CORRUPT_IMAGE, f"size {img.width}x{img.height}")
    return img


def to_rgb_jpeg(
    data: bytes, quality: int = REENCODE_QUALITY
) -> tuple[bytes, tuple[int, int, int], str | None]:
    """``(jpeg_bytes, (h, w, 3), converted_from)`` for the bytes of an image file.

    An RGB JPEG is returned unchanged (``converted_from`` None). Anything else PIL can decode
    (grayscale or CMYK JPEG, PNG, GIF, ... whatever the file's name) is converted to RGB and
    re-encoded; ``converted_from`` says what it was, e.g. ``"JPEG/CMYK"``. The whole image is
    decoded, so a truncated file is caught here. Raises :class:`ImageRejected`.
    """
    img = _decode(data)
    shape = (img.height, img.width, 3)
    # MPO is how PIL names multi-picture camera JPEGs: their bytes decode as an ordinary JPEG.
    if img.format in ("JPEG", "MPO") and img.mode == "RGB":
        return data, shape, None
    source = f"{img.format}/{img.mode}"
    out = io.BytesIO()
    _as_rgb(img).save(out, "JPEG", quality=quality)
    return out.getvalue(), shape, source


def read_bytes(path: str) -> bytes:
    """The bytes of a local or gs:// file; :class:`ImageRejected` when missing or unreadable."""
    try:
        if not tf.io.gfile.exists(path):
            raise ImageRejected(MISSING_FILE, "no such file")
        if tf.io.gfile.isdir(path):
            raise ImageRejected(READ_ERROR, "is a directory")
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    except ImageRejected:
        raise
    except Exception as e:  # noqa: BLE001 - permissions, network, ...
        raise ImageRejected(READ_ERROR, f"{type(e).__name__}: {e}") from e


def error_record(row: CsvRow, reason: str, detail: str = "") -> dict:
    """One dead-letter line. Malformed lines keep their raw text in ``detail``."""
    if not detail and reason == MALFORMED_LINE:
        detail = row.text.strip()[:500]
    return {
        "line": row.line,
        "path": row.path,
        "label": row.label,
        "reason": reason,
        "detail": detail,
    }
