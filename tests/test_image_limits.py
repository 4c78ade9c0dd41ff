"""pmlv_utils.image_limits: the pixel budget read from headers, and files opened once."""

from __future__ import annotations

import io
import os
import resource
import struct
import time
import warnings

import pytest
from PIL import Image

from pmlv_utils import image_limits
from pmlv_utils.serving.battery import png_bomb


def small_image(fmt: str, size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(buf, fmt)
    return buf.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 marker is patched to claim width x height."""
    data = bytearray(small_image("JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "WEBP"])
def test_allowed_formats_give_their_header_size(fmt):
    assert fmt in image_limits.ALLOWED_FORMATS
    assert image_limits.check(small_image(fmt)) == (fmt, 32, 24)


@pytest.mark.parametrize("lossless", [False, True])
def test_webp_sizes_lossy_lossless_and_extended(lossless):
    buf = io.BytesIO()
    Image.new("RGBA" if lossless else "RGB", (301, 7)).save(buf, "WEBP", lossless=lossless)
    assert image_limits.check(buf.getvalue()) == ("WEBP", 301, 7)


def test_png_bomb_refused_from_the_header_without_decoding():
    bomb = png_bomb()
    assert len(bomb) < 100_000
    before = max_rss_mb()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning would raise here
        with pytest.raises(image_limits.ImageTooLarge) as err:
            image_limits.check(bomb)
    assert time.perf_counter() - start < 0.5
    assert max_rss_mb() - before < 50  # decoding would take 66 MB packed, 1.6 GB as RGB
    assert "23000x23000" in str(err.value) and "40,000,000" in str(err.value)
    assert isinstance(err.value, ValueError)
    # Within a bigger budget the same header is read, still without decoding.
    assert image_limits.check(bomb, max_pixels=10**9) == ("PNG", 23_000, 23_000)
    assert max_rss_mb() - before < 50


def test_jpeg_claiming_60000_squared_is_too_large_not_a_pil_bomb_error():
    data = jpeg_claiming(60_000, 60_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(image_limits.ImageTooLarge, match="60000x60000"):
            image_limits.check(data)
        # over PIL's own 179 MP limit, yet image_limits' budget is the one that applies
        assert image_limits.check(data, max_pixels=4 * 10**9) == ("JPEG", 60_000, 60_000)


def test_budget_boundary():
    data = small_image("PNG", (100, 40))
    assert image_limits.check(data, max_pixels=4000)[1:] == (100, 40)
    with pytest.raises(
        image_limits.ImageTooLarge, match="4,000 pixels is over the budget of 3,999"
    ):
        image_limits.check(data, max_pixels=3999)


def test_truncated_header_is_not_an_image_and_truncated_body_passes():
    png = small_image("PNG")
    with pytest.raises(image_limits.NotAnImage, match="PNG"):
        image_limits.check(png[:20])
    for fmt in ("JPEG", "GIF", "BMP", "WEBP"):
        with pytest.raises(image_limits.NotAnImage, match=fmt):
            image_limits.check(small_image(fmt)[:12])
    # The header is whole, the pixels are not: the budget is fine, the decoder will fail.
    assert image_limits.check(png[: len(png) - 20])[0] == "PNG"


def test_other_formats_and_garbage_refused():
    tiff = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiff, "TIFF")
    with pytest.raises(image_limits.NotAnImage, match="TIFF") as err:
        image_limits.check(tiff.getvalue())
    assert "JPEG, PNG, GIF, BMP, WEBP" in str(err.value)
    for data in (b"", b"hello world", b"%PDF-1.4 ..."):
        with pytest.raises(image_limits.NotAnImage):
            image_limits.check(data)


def test_check_file_reads_the_checked_bytes(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(small_image("PNG"))
    got = image_limits.check_file(path, max_bytes=10_000)
    assert got == (path.read_bytes(), "PNG", 32, 24)
    assert got.data == path.read_bytes() and got.format == "PNG"
    with pytest.raises(image_limits.ImageTooLarge, match="over the limit of 10 bytes"):
        image_limits.check_file(path, max_bytes=10)
    with pytest.raises(FileNotFoundError):
        image_limits.check_file(tmp_path / "missing.png")


def test_check_file_refuses_special_files_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    cases = {fifo: "FIFO", tmp_path: "directory"}
    if os.path.exists("/dev/zero"):
        cases["/dev/zero"] = "character device"
    for path, kind in cases.items():
        start = time.perf_counter()
        with pytest.raises(image_limits.NotAnImage, match=kind):
            image_limits.check_file(path)
        assert time.perf_counter() - start < 1


def test_check_file_sparse_50gb_refused_by_fstat(tmp_path):
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:
        f.write(small_image("PNG"))
        f.truncate(50 * 2**30)
    start = time.perf_counter()
    with pytest.raises(image_limits.ImageTooLarge, match="53,687,091,200 bytes"):
        image_limits.check_file(path)
    assert time.perf_counter() - start < 1


def test_check_file_bomb_refused(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb())
    with pytest.raises(image_limits.ImageTooLarge, match="pixels"):
        image_limits.check_file(path)


def test_light_module_imports_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, pmlv_utils.image_limits; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
