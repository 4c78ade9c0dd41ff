"""The chapter-5 dataset job against hostile and unlucky inputs (issue 12, item 8).

One CSV holds, besides good images: a UTF-8 BOM, a line that is not UTF-8, duplicates, a quoted
path with a comma, a very wide image, a PNG bomb, a lossless JPEG (PIL decodes it, TensorFlow
cannot), a TIFF and a PSD (not on the allowlist), a FIFO and a sparse 200 MB file; dict.txt
starts with a BOM. The book's CLI runs on it in a subprocess (exit 0), the library once more in
this process with two threads: both write byte-identical files.
"""

import hashlib
import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pmlv_utils import dataset_files, tfrecords
from pmlv_utils.serving.battery import png_bomb

REPO = Path(__file__).resolve().parents[1]
LABELS = ["daisy", "roses", "tulips"]


def _jpeg(pixels) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _lossless_jpeg(pixels: np.ndarray) -> bytes:
    """A lossless (SOF3) JPEG, predictor 1, one Huffman table of 5-bit codes. PIL (libjpeg-turbo
    3) decodes it as RGB; TensorFlow's decoder refuses the coding process."""
    h, w, nc = pixels.shape
    px = pixels.astype(int)
    bits = []
    for y in range(h):
        for x in range(w):
            for c in range(nc):
                pred = 128 if x == 0 and y == 0 else px[y, x - 1, c] if x else px[y - 1, x, c]
                d = int(px[y, x, c] - pred)
                s = abs(d).bit_length()
                extra = format(d if d > 0 else d + (1 << s) - 1, f"0{s}b") if s else ""
                bits.append(format(s, "05b") + extra)
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    data = bytearray()
    for i in range(0, len(stream), 8):
        data.append(int(stream[i : i + 8], 2))
        if data[-1] == 0xFF:
            data.append(0)  # byte stuffing

    def seg(marker, body):
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    table = b"\x00" + bytes([0, 0, 0, 0, 17] + [0] * 11) + bytes(range(17))
    comps = b"".join(bytes([c + 1, 0x11, 0]) for c in range(nc))
    sof = bytes([8]) + struct.pack(">HH", h, w) + bytes([nc]) + comps
    sos = bytes([nc]) + b"".join(bytes([c + 1, 0]) for c in range(nc)) + bytes([1, 0, 0])
    return b"\xff\xd8" + seg(0xC4, table) + seg(0xC3, sof) + seg(0xDA, sos) + data + b"\xff\xd9"


def make_hostile_dataset(root: Path):
    """Images + all_data.csv (bytes) + dict.txt (with a BOM); returns (csv, labels, expected):
    expected maps each CSV line to "ok", "ok, converted from ..." or a reject reason."""
    rng = np.random.default_rng(0)
    photos = root / "flower_photos"
    for label in LABELS + ["with,comma"]:
        (photos / label).mkdir(parents=True, exist_ok=True)
    lines: list[bytes] = []
    expected: dict[int, str] = {}

    def add(line, outcome):
        lines.append(line.encode() if isinstance(line, str) else line)
        expected[len(lines)] = outcome

    good = []
    for i in range(6):
        label = LABELS[i % 3]
        path = photos / label / f"good_{i}.jpg"
        path.write_bytes(_jpeg(rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)))
        good.append((path, label))
        add(f"{path},{label}", "ok")
    lines[0] = b"\xef\xbb\xbf" + lines[0]  # a BOM before the first path: still line 1, still ok
    add(f"{good[1][0]},{good[1][1]}", tfrecords.DUPLICATE)
    add(f"{good[2][0]},daisy", tfrecords.DUPLICATE)  # the same file with another label
    add(f"{photos}/daisy/caf\xe9.jpg,daisy".encode("latin-1"), tfrecords.NOT_UTF8)
    comma = photos / "with,comma" / "x.jpg"
    comma.write_bytes(_jpeg(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)))
    add('"with,comma/x.jpg",roses', "ok")  # quoted, relative to the CSV's folder
    wide = photos / "roses" / "wide.png"
    Image.new("RGB", (70_000, 2), (200, 30, 30)).save(wide)
    add(f"{wide},roses", tfrecords.IMAGE_TOO_LARGE)
    bomb = photos / "tulips" / "bomb.png"
    bomb.write_bytes(png_bomb(20_000))
    add(f"{bomb},tulips", tfrecords.IMAGE_TOO_LARGE)
    lossless = photos / "tulips" / "lossless.jpg"
    lossless.write_bytes(_lossless_jpeg(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)))
    add(f"{lossless},tulips", "ok, converted from JPEG/RGB, not TensorFlow-decodable")
    tiff = photos / "daisy" / "picture.jpg"
    Image.new("RGB", (16, 16), (0, 90, 0)).save(tiff, "TIFF")
    add(f"{tiff},daisy", tfrecords.UNSUPPORTED_FORMAT)
    psd = photos / "daisy" / "layers.psd"
    psd.write_bytes(b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 16, 16, 8, 3))
    add(f"{psd},daisy", tfrecords.UNSUPPORTED_FORMAT)
    fifo = photos / "roses" / "fifo.jpg"
    os.mkfifo(fifo)
    add(f"{fifo},roses", tfrecords.READ_ERROR)
    sparse = photos / "roses" / "sparse.jpg"
    with open(sparse, "wb") as f:
        f.write(b"\xff\xd8\xff")
        f.truncate(200 * 2**20)  # 200 MB that take no disk
    add(f"{sparse},roses", tfrecords.IMAGE_TOO_LARGE)
    csv_file, labels_file = photos / "all_data.csv", photos / "dict.txt"
    csv_file.write_bytes(b"\r\n".join(lines) + b"\r\n")
    labels_file.write_bytes(b"\xef\xbb\xbf" + "\n".join(LABELS).encode() + b"\n")
    return str(csv_file), str(labels_file), expected


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return (root, *make_hostile_dataset(root / "data"))


@pytest.fixture(scope="module")
def cli_run(hostile):
    root, csv_file, labels_file, _ = hostile
    out_dir = root / "out_cli"
    cmd = [sys.executable, "-m", "jpeg_to_tfrecord", "--all_data", csv_file]
    cmd += ["--labels_file", labels_file, "--output_dir", str(out_dir), "--num_shards", "2"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        cmd, cwd=REPO / "05_create_dataset", capture_output=True, text=True, timeout=300, env=env
    )
    return proc, out_dir


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_labels_and_csv_lose_their_bom(hostile):
    _, csv_file, labels_file, _ = hostile
    assert dataset_files.read_labels(labels_file) == LABELS
    first = dataset_files.read_all_data(csv_file, report=None)[0]
    assert first.problem is None and first.path.endswith("daisy/good_0.jpg")


def test_job_exits_0_and_every_line_lands_once_with_its_reason(cli_run, hostile):
    proc, out_dir = cli_run
    expected = hostile[3]
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = tfrecords.read_errors(str(out_dir))
    assert {e["line"]: e["reason"] for e in errors} == {
        n: r for n, r in expected.items() if not r.startswith("ok")
    }
    duplicate = next(e for e in errors if e["line"] == 8)
    assert duplicate["detail"] == "same path as line 3, labelled 'tulips' there"
    records = tfrecords.read_records(f"{out_dir}/*-*-of-*.gz")
    assert len(records) == sum(r.startswith("ok") for r in expected.values())
    assert len({r["path"] for r in records}) == len(records)  # duplicates written once
    assert any(r["path"].endswith("with,comma/x.jpg") for r in records)


def test_every_stored_image_decodes_with_tensorflow(cli_run):
    _, out_dir = cli_run
    for r in tfrecords.read_records(f"{out_dir}/*-*-of-*.gz"):
        assert tuple(tf.io.decode_jpeg(r["image"], channels=3).shape) == r["shape"]
    lossless = next(
        r for r in tfrecords.read_records(f"{out_dir}/*-*-of-*.gz") if "lossless" in r["path"]
    )
    assert lossless["shape"] == (24, 32, 3)


def test_two_runs_write_byte_identical_files(cli_run, hostile, tmp_path):
    _, first_dir = cli_run
    _, csv_file, labels_file, _ = hostile
    config = tfrecords.DatasetJobConfig(
        csv_file, labels_file, str(tmp_path), num_shards=2, verbose=False,
        direct_num_workers=2, direct_running_mode="multi_threading",
    )  # fmt: skip
    tfrecords.run_pipeline(config)
    first, second = _hashes(first_dir), _hashes(tmp_path)
    assert "train-00001-of-00002.gz" in first and "errors-00000-of-00001.jsonl" in first
    assert first == second
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files


def test_a_failed_conversion_is_a_reject_reason(monkeypatch):
    from pmlv_utils.tfrecords import images

    png = io.BytesIO()
    Image.new("RGBA", (8, 8)).save(png, "PNG")

    def broken(img):
        raise OSError("encoder error -2")

    monkeypatch.setattr(images, "_as_rgb", broken)
    with pytest.raises(tfrecords.ImageRejected) as caught:
        tfrecords.to_rgb_jpeg(png.getvalue())
    assert caught.value.reason == tfrecords.CONVERSION_FAILED
    assert "encoder error" in caught.value.detail


def test_labels_file_that_is_not_utf8_stops_before_the_job(tmp_path):
    labels = tmp_path / "dict.txt"
    labels.write_bytes(b"daisy\nr\xf6ses\n")
    with pytest.raises(ValueError, match="line 2 is not UTF-8"):
        dataset_files.read_labels(str(labels))
