"""A pixel budget read from an image's header, before anything decodes its pixels.

A 1-bit PNG of 23,000 x 23,000 pixels is a few KB on the wire and decodes to gigabytes;
:func:`check` reads only the header (format, width, height) and refuses what TensorFlow
would have to allocate too much for. Light: PIL and the standard library only.

- ``check(data, max_pixels)`` -> ``(format, width, height)``, or raises :class:`NotAnImage`
  (not one of :data:`ALLOWED_FORMATS`, or a header too short or broken to read) or
  :class:`ImageTooLarge` (``width * height > max_pixels``). Both are ``ValueError``.
- ``check_file(path, max_bytes, max_pixels)`` opens a local file once, refuses anything
  but a regular file without blocking (FIFO, device, directory, socket), refuses more than
  ``max_bytes`` (by ``fstat`` first, so a sparse 50 GB file costs nothing), reads the bytes
  and checks them: decode *those* bytes, never the file by name again.

JPEG, PNG, GIF and BMP headers are read by PIL's format plugins called directly (no
``Image.open``, so PIL's own decompression-bomb warning and error never fire: the budget
here is the only one, and it is the same in every thread). WebP headers are parsed here:
PIL's WebP plugin asks libwebp for an animation decoder, which allocates canvas buffers.
A header whose body is truncated passes :func:`check`; the decoder then fails on it.
"""

from __future__ import annotations

import io
import os
import stat
import struct
from typing import NamedTuple

from PIL import BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")
DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: 120 MB as uint8 RGB, 480 MB as float32
DEFAULT_MAX_BYTES = 32 * 2**20

# Format plugins in the order their magic bytes are tried (each accept() looks at a prefix).
_PLUGINS = {
    "JPEG": (JpegImagePlugin.jpeg_factory, JpegImagePlugin.JpegImageFile.format),
    "PNG": (PngImagePlugin.PngImageFile, PngImagePlugin.PngImageFile.format),
    "GIF": (GifImagePlugin.GifImageFile, GifImagePlugin.GifImageFile.format),
    "BMP": (BmpImagePlugin.BmpImageFile, BmpImagePlugin.BmpImageFile.format),
}
_MAGIC = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "GIF": (b"GIF87a", b"GIF89a"),
    "BMP": (b"BM",),
}
_KIND_NAMES = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
}


class NotAnImage(ValueError):
    """Not an image of an allowed format, or a header that cannot be read."""


class ImageTooLarge(ValueError):
    """More pixels (or bytes) than the budget allows."""


class CheckedImage(NamedTuple):
    """What :func:`check_file` read: the bytes, and the header that was checked."""

    data: bytes
    format: str
    width: int
    height: int


def sniff_format(data: bytes) -> str | None:
    """The allowed format whose magic bytes start ``data``, else None (a name for messages)."""
    head = bytes(data[:16])
    for name, prefixes in _MAGIC.items():
        if head.startswith(prefixes):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _describe_unknown(data: bytes) -> str:
    head = bytes(data[:16])
    known = {
        b"II*\x00": "TIFF",
        b"MM\x00*": "TIFF",
        b"%PDF": "PDF",
        b"\x00\x00\x01\x00": "ICO",
        b"8BPS": "PSD",
        b"P1": "PBM",
    }
    for prefix, name in known.items():
        if head.startswith(prefix):
            return f"a {name} file"
    if not head:
        return "empty data"
    return f"data starting {head[:8]!r}"


def _webp_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a WebP from its RIFF header: VP8X canvas, VP8 frame or VP8L."""
    if len(data) < 30:
        raise NotAnImage(f"truncated WEBP header ({len(data)} bytes)")
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise NotAnImage("broken WEBP header (no VP8 start code)")
        width, height = struct.unpack("<HH", data[26:30])
        width, height = width & 0x3FFF, height & 0x3FFF
    elif chunk == b"VP8L":
        if data[20] != 0x2F:
            raise NotAnImage("broken WEBP header (no VP8L signature)")
        bits = int.from_bytes(data[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    else:
        raise NotAnImage(f"broken WEBP header (first chunk {chunk!r})")
    return width, height


def _header_size(fmt: str, data: bytes) -> tuple[int, int]:
    """(width, height) from the header of ``data``, already sniffed as ``fmt``."""
    if fmt == "WEBP":
        return _webp_size(data)
    factory, _ = _PLUGINS[fmt]
    try:
        # The plugin's constructor parses the header only; load() would decode pixels.
        image = factory(io.BytesIO(data), None)
    except (SyntaxError, OSError, ValueError, EOFError, IndexError, struct.error) as err:
        reason = str(err) if len(str(err)) <= 60 else "truncated or broken"
        raise NotAnImage(f"unreadable {fmt} header: {reason}") from None
    try:
        return image.size
    finally:
        image.close()


def check(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, int, int]:
    """``(format, width, height)`` of the image in ``data``, read from its header only.

    Raises :class:`NotAnImage` if it is not one of :data:`ALLOWED_FORMATS` or its header is
    broken, :class:`ImageTooLarge` if ``width * height > max_pixels``.
    """
    fmt = sniff_format(data)
    if fmt is None:
        raise NotAnImage(
            f"not an image in an allowed format ({', '.join(ALLOWED_FORMATS)}): "
            f"{_describe_unknown(data)}"
        )
    width, height = _header_size(fmt, bytes(data) if not isinstance(data, bytes) else data)
    if width <= 0 or height <= 0:
        raise NotAnImage(f"{fmt} header with an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{fmt} image of {width}x{height} = {width * height:,} pixels is over the "
            f"budget of {max_pixels:,} pixels"
        )
    return fmt, width, height


def open_regular(path: str | os.PathLike) -> tuple[int, os.stat_result]:
    """``(fd, fstat)`` of ``path`` opened read-only without blocking; raises
    :class:`NotAnImage` (the fd closed) unless it is a regular file. OSError passes through."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KIND_NAMES.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise NotAnImage(f"{os.fspath(path)!r} is {kind}, not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_capped(fd: int, size: int, max_bytes: int, name: str) -> bytes:
    """At most ``max_bytes`` from ``fd`` (whose fstat size is ``size``): ImageTooLarge beyond."""
    if size > max_bytes:
        raise ImageTooLarge(f"{name!r} has {size:,} bytes, over the limit of {max_bytes:,} bytes")
    chunks, total = [], 0
    while total <= max_bytes:
        chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise ImageTooLarge(f"{name!r} grew past the limit of {max_bytes:,} bytes while read")
    return b"".join(chunks)


def check_file(
    path: str | os.PathLike,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> CheckedImage:
    """Open the local file ``path`` once, check it is a regular file of at most
    ``max_bytes`` (reading no more than that) whose header fits ``max_pixels``, and return
    the bytes read with their header. OSError (missing, permission) passes through."""
    fd, info = open_regular(path)
    try:
        data = read_capped(fd, info.st_size, max_bytes, os.fspath(path))
    finally:
        os.close(fd)
    fmt, width, height = check(data, max_pixels)
    return CheckedImage(data, fmt, width, height)
