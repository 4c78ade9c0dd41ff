"""One image: read its bytes, check it, convert it to an RGB JPEG only when needed; dead letters.

Every CSV line that cannot become a record becomes one dead-letter line (:func:`error_record`)
with a reason from :data:`REJECT_REASONS`. The job never stops for a bad line.

The checks, in order: the pixel budget from the header (``image_limits.check``: a 50 KB PNG
that would decode to gigabytes is refused before anything decodes it), the format allowlist
(:data:`ALLOWED_FORMATS`, also given to ``PIL.Image.open``), a full decode by PIL, the
conversion (inside the same error handling), and last TensorFlow's own ``decode_jpeg`` on the
very bytes that will be stored, so no record can fail a training epoch. A source PIL reads but
TensorFlow cannot (e.g. a lossless JPEG) is re-encoded rather than rejected.
"""

from __future__ import annotations

import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from .. import dataset_files, image_limits
from ..dataset_files import CsvRow

REENCODE_QUALITY = 90  # JPEG quality used only when a source must be converted
ERRORS_PREFIX = "errors"  # the dead-letter file: errors-00000-of-00001.jsonl
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")  # PIL's names; anything else is refused
MAX_PIXELS = image_limits.DEFAULT_MAX_PIXELS
MAX_FILE_BYTES = 128 * 2**20  # bigger files are refused before they are read
JPEG_MAX_SIDE = 65_500  # libjpeg's limit: a wider source cannot be stored as a JPEG

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
NOT_UTF8 = dataset_files.NOT_UTF8
DUPLICATE = dataset_files.DUPLICATE
UNSUPPORTED_FORMAT = "unsupported format"
CONVERSION_FAILED = "conversion failed"
REJECT_REASONS = (
    EMPTY_LINE,
    MALFORMED_LINE,
    NOT_UTF8,
    DUPLICATE,
    UNKNOWN_LABEL,
    MISSING_FILE,
    READ_ERROR,
    EMPTY_FILE,
    NOT_AN_IMAGE,
    CORRUPT_IMAGE,
    IMAGE_TOO_LARGE,
    UNSUPPORTED_FORMAT,
    CONVERSION_FAILED,
)

# Magic numbers: the allowed formats (a cut-short header is a corrupt image, not "not an
# image") and a few common others (named in the "unsupported format" detail).
_ALLOWED_MAGIC = (b"\xff\xd8", b"\x89PNG", b"GIF8", b"BM", b"RIFF")
_OTHER_MAGIC = {
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"8BPS": "PSD",
    b"\x00\x00\x01\x00": "ICO",
    b"%PDF": "PDF",
    b"\x00\x00\x00\x0cjP": "JPEG 2000",
    b"\xff\x0a": "JPEG XL",
    b"qoif": "QOI",
}


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


def _check_header(data: bytes) -> None:
    """Pixel budget and format allowlist from the header; :class:`ImageRejected`."""
    if not data:
        raise ImageRejected(EMPTY_FILE, "0 bytes")
    try:
        image_limits.check(data, max_pixels=MAX_PIXELS)
    except image_limits.ImageTooLarge as e:
        raise ImageRejected(IMAGE_TOO_LARGE, str(e)) from e
    except image_limits.NotAnImage as e:
        other = next((name for m, name in _OTHER_MAGIC.items() if data.startswith(m)), None)
        if other or (data[4:12] in (b"ftypheic", b"ftypavif", b"ftypmif1")):
            allowed = ", ".join(ALLOWED_FORMATS)
            raise ImageRejected(UNSUPPORTED_FORMAT, f"{other or 'HEIF/AVIF'}; allowed: {allowed}")
        reason = CORRUPT_IMAGE if data.startswith(_ALLOWED_MAGIC) else NOT_AN_IMAGE
        raise ImageRejected(reason, str(e)) from e


def _decode(data: bytes) -> Image.Image:
    """The whole image decoded (so a truncated file is caught); :class:`ImageRejected`."""
    _check_header(data)
    try:
        img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
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
    if max(img.size) > JPEG_MAX_SIDE:
        raise ImageRejected(
            IMAGE_TOO_LARGE, f"{img.width}x{img.height}: a JPEG side is at most {JPEG_MAX_SIDE:,}"
        )
    return img


def tf_decodable(jpeg: bytes, shape: tuple[int, int, int]) -> bool:
    """True when TensorFlow's ``decode_jpeg`` reads ``jpeg`` to exactly ``shape`` (h, w, 3)."""
    try:
        return tuple(tf.io.decode_jpeg(jpeg, channels=3).shape) == tuple(shape)
    except (tf.errors.OpError, ValueError):
        return False


def _reencode(img: Image.Image, quality: int) -> bytes:
    try:
        out = io.BytesIO()
        _as_rgb(img).save(out, "JPEG", quality=quality)
        return out.getvalue()
    except Exception as e:  # noqa: BLE001 - a failed conversion is this line's reject reason
        raise ImageRejected(CONVERSION_FAILED, f"{type(e).__name__}: {e}") from e


def to_rgb_jpeg(
    data: bytes, quality: int = REENCODE_QUALITY
) -> tuple[bytes, tuple[int, int, int], str | None]:
    """``(jpeg_bytes, (h, w, 3), converted_from)`` for the bytes of an image file.

    An RGB JPEG TensorFlow decodes is returned unchanged (``converted_from`` None). Anything
    else PIL can decode among :data:`ALLOWED_FORMATS` (grayscale or CMYK JPEG, PNG, GIF, ...
    whatever the file's name) is converted to RGB and re-encoded; ``converted_from`` says what
    it was, e.g. ``"JPEG/CMYK"``, or ``"JPEG/RGB, not TensorFlow-decodable"``. The bytes
    returned always decode with ``tf.io.decode_jpeg`` to the shape returned. Raises
    :class:`ImageRejected`.
    """
    img = _decode(data)
    shape = (img.height, img.width, 3)
    source = f"{img.format}/{img.mode}"
    # MPO is how PIL names multi-picture camera JPEGs: their bytes decode as an ordinary JPEG.
    if img.format in ("JPEG", "MPO") and img.mode == "RGB":
        if tf_decodable(data, shape):
            return data, shape, None
        source += ", not TensorFlow-decodable"
    jpeg = _reencode(img, quality)
    if not tf_decodable(jpeg, shape):
        raise ImageRejected(CORRUPT_IMAGE, f"TensorFlow cannot decode the re-encoded {source}")
    return jpeg, shape, source


def _read_local(path: str, max_bytes: int) -> bytes:
    """Open once, check the open file (``fstat``: a regular file, under the cap), read it
    (``image_limits.open_regular``: a FIFO named in the CSV does not block the job)."""
    try:
        fd, info = image_limits.open_regular(path)
    except FileNotFoundError as e:
        raise ImageRejected(MISSING_FILE, "no such file") from e
    except IsADirectoryError as e:
        raise ImageRejected(READ_ERROR, "is a directory") from e
    except image_limits.NotAnImage as e:
        directory = "is a directory" in str(e)
        raise ImageRejected(READ_ERROR, "is a directory" if directory else str(e)) from e
    except OSError as e:
        raise ImageRejected(READ_ERROR, f"{type(e).__name__}: {e.strerror}") from e
    try:
        return image_limits.read_capped(fd, info.st_size, max_bytes, path)
    except image_limits.ImageTooLarge as e:
        raise ImageRejected(IMAGE_TOO_LARGE, str(e)) from e
    finally:
        os.close(fd)


def read_bytes(path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a local or gs:// file; :class:`ImageRejected` when missing, unreadable, not
    a regular file or over ``max_bytes``."""
    try:
        if "://" not in path:
            return _read_local(path, max_bytes)
        if not tf.io.gfile.exists(path):
            raise ImageRejected(MISSING_FILE, "no such file")
        if tf.io.gfile.isdir(path):
            raise ImageRejected(READ_ERROR, "is a directory")
        if tf.io.gfile.stat(path).length > max_bytes:
            raise ImageRejected(IMAGE_TOO_LARGE, f"file over the cap of {max_bytes:,} bytes")
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read(max_bytes + 1)
    except ImageRejected:
        raise
    except Exception as e:  # noqa: BLE001 - permissions, network, ...
        raise ImageRejected(READ_ERROR, f"{type(e).__name__}: {e}") from e


def error_record(row: CsvRow, reason: str, detail: str = "") -> dict:
    """One dead-letter line. Malformed lines keep their raw text in ``detail``."""
    detail = detail or row.detail
    if not detail and reason == MALFORMED_LINE:
        detail = row.text.strip()[:500]
    return {
        "line": row.line,
        "path": row.path,
        "label": row.label,
        "reason": reason,
        "detail": detail,
    }
