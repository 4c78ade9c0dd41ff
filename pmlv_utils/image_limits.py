"""A pixel budget read from an image's header, before anything decodes it (no dependencies).

    fmt, width, height = image_limits.check(data)   # ImageTooLarge / NotAnImage otherwise

A 1-bit PNG of 20,000 x 20,000 pixels is about 50 KB and decodes to gigabytes: the header
says how big the picture is, so the budget is checked there. Only the formats of
:data:`ALLOWED_FORMATS` pass; anything else (TIFF, PSD, ...) is :class:`NotAnImage`.

(Minimal version written by the batch-side branch against the agreed API; the serving side's
fuller module replaces it.)
"""

from __future__ import annotations

import struct

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")  # PIL's format names
DEFAULT_MAX_PIXELS = 40_000_000  # a 40-megapixel photo; about 120 MB as RGB uint8

# JPEG start-of-frame markers (every coding process); C4, C8 and CC are other segments.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class NotAnImage(ValueError):
    """The bytes are not an image of an allowed format, or its header is cut short."""


class ImageTooLarge(ValueError):
    """The header announces more pixels than the budget."""


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise NotAnImage(f"JPEG: no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # stand-alone markers
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            if height == 0 or width == 0:
                raise NotAnImage("JPEG: a size of 0 (DNL-coded height is not supported)")
            return width, height
        if marker in (0xDA, 0xD9) or length < 2:
            raise NotAnImage("JPEG: no frame header before the scan")
        i += 2 + length
    raise NotAnImage("JPEG: header cut short")


def _webp_size(data: bytes) -> tuple[int, int]:
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        return (
            int.from_bytes(data[24:27], "little") + 1,
            int.from_bytes(data[27:30], "little") + 1,
        )
    if kind == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    raise NotAnImage("WEBP: unknown or cut-short chunk")


def image_size(data: bytes) -> tuple[str, int, int]:
    """``(format, width, height)`` from the header; :class:`NotAnImage` otherwise."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return ("PNG", *struct.unpack(">II", data[16:24]))
    if data[:3] == b"\xff\xd8\xff":
        return ("JPEG", *_jpeg_size(data))
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return ("GIF", *struct.unpack("<HH", data[6:10]))
    if data[:2] == b"BM" and len(data) >= 26:
        (header,) = struct.unpack("<I", data[14:18])
        if header == 12:
            return ("BMP", *struct.unpack("<HH", data[18:22]))
        width, height = struct.unpack("<ii", data[18:26])
        return "BMP", abs(width), abs(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 16:
        return ("WEBP", *_webp_size(data))
    raise NotAnImage(f"not one of the allowed image formats ({', '.join(ALLOWED_FORMATS)})")


def check(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, int, int]:
    """``(format, width, height)`` when the header is of an allowed format and within budget.

    Raises :class:`NotAnImage` (unknown format, cut-short header, a side of 0) or
    :class:`ImageTooLarge` (``width * height > max_pixels``). Nothing is decoded.
    """
    fmt, width, height = image_size(data)
    if width < 1 or height < 1:
        raise NotAnImage(f"{fmt}: size {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{fmt} of {width}x{height} = {width * height:,} pixels, over the budget of "
            f"{max_pixels:,}"
        )
    return fmt, width, height
