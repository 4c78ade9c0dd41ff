"""The synthetic 5-flowers generator: formats, determinism, masks, background bias, CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pmlv_utils import synthetic
from pmlv_utils.synthetic import BACKGROUND_KINDS, BIAS_BACKGROUND, BIASED_CLASS, CLASSES

REPO = Path(__file__).resolve().parents[1]


def _files(root: Path) -> dict[str, bytes]:
    """Every generated file except the CSV of absolute paths, by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "all_data.csv"
    }


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("flowers")
    return root, synthetic.generate_dataset(root, images_per_class=3, seed=7, progress=False)


def test_layout_csv_and_dict(small_set):
    root, result = small_set
    photos = root / "flower_photos"
    assert (photos / "dict.txt").read_text() == "daisy\ndandelion\nroses\nsunflowers\ntulips\n"
    rows = list(csv.reader(open(photos / "all_data.csv")))
    assert len(rows) == result["n_images"] == 15
    assert result["counts"] == dict.fromkeys(CLASSES, 3)
    assert all(len(r) == 2 for r in rows)  # headerless path,label
    for path, label in rows:
        p = Path(path)
        assert p.is_absolute() and p.exists(), path
        assert p.parent.name == label and p.name.startswith(f"{label}_") and p.suffix == ".jpg"
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert synthetic.MIN_SIDE <= min(im.size) and max(im.size) <= synthetic.MAX_SIDE
    assert {r[1] for r in rows} == set(CLASSES)
    assert result["all_data_csv"] == photos / "all_data.csv"
    info = list(csv.DictReader(open(root / "image_info.csv")))
    assert [i["image"] for i in info] == [str(Path(p).relative_to(root)) for p, _ in rows]
    assert {i["background"] for i in info} <= set(BACKGROUND_KINDS)
    assert all(
        i["other_flower"] in {"", *CLASSES} and i["other_flower"] != i["label"] for i in info
    )
    assert all(int(i["n_flowers"]) >= 1 for i in info)


def test_masks_match_images(small_set):
    root, _ = small_set
    for path, _ in csv.reader(open(root / "flower_photos" / "all_data.csv")):
        mask = synthetic.load_mask(path)
        with Image.open(path) as im:
            assert mask.shape == (im.height, im.width)
        assert mask.dtype == bool
        assert 0.05 < mask.mean() < 0.98, f"{path}: flower covers {mask.mean():.2f} of the image"


def test_load_mask_errors(tmp_path):
    with pytest.raises(ValueError, match="not an image of a generated data set"):
        synthetic.load_mask(tmp_path / "some.jpg")
    with pytest.raises(FileNotFoundError, match="no flower mask"):
        synthetic.load_mask(tmp_path / "flower_photos" / "daisy" / "daisy_0099.jpg")


def test_same_seed_byte_identical_other_seed_differs(small_set, tmp_path):
    root, _ = small_set
    again = tmp_path / "again"
    synthetic.generate_dataset(again, images_per_class=3, seed=7, progress=False)
    assert _files(root) == _files(again)
    # the CSV differs only by the output root
    assert (root / "flower_photos/all_data.csv").read_text().replace(
        str(root.resolve()), "ROOT"
    ) == (again / "flower_photos/all_data.csv").read_text().replace(str(again.resolve()), "ROOT")
    other = tmp_path / "other"
    synthetic.generate_dataset(other, images_per_class=3, seed=8, progress=False)
    a, b = _files(root), _files(other)
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != b[k] for k in jpgs)


def test_adding_images_keeps_earlier_ones(small_set, tmp_path):
    root, _ = small_set
    more = tmp_path / "more"
    synthetic.generate_dataset(more, images_per_class=4, seed=7, progress=False)
    a, b = _files(root), _files(more)
    for name in (k for k in a if k.endswith((".jpg", ".png"))):
        assert a[name] == b[name], name
    assert "flower_photos/tulips/tulips_0003.jpg" in b


def test_render_flower_outputs_and_errors():
    rgb, mask = synthetic.render_flower("roses", 3, background="grass", size=(120, 100))
    assert rgb.shape == (100, 120, 3) and rgb.dtype == np.uint8
    assert mask.shape == (100, 120) and mask.dtype == bool and mask.any()
    rgb2, mask2 = synthetic.render_flower(
        "roses", np.random.default_rng(3), background="grass", size=(120, 100)
    )
    assert np.array_equal(rgb, rgb2) and np.array_equal(mask, mask2)
    # the flower sits on the background: the mask is not just noise
    assert abs(rgb[mask].mean() - rgb[~mask].mean()) > 5
    with pytest.raises(ValueError, match="unknown flower label 'lily'"):
        synthetic.render_flower("lily", 0)
    with pytest.raises(ValueError, match="unknown background 'snow'"):
        synthetic.render_flower("daisy", 0, background="snow")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(images_per_class=0), "images_per_class"),
        (dict(seed=-1), "seed"),
        (dict(background_bias=1.5), "background_bias"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic.generate_dataset(tmp_path, **{"images_per_class": 1, **kwargs}, progress=False)
    assert not (tmp_path / "flower_photos" / "all_data.csv").exists()


def _sky_share(label: str, bias: float, n: int = 800) -> float:
    ci = CLASSES.index(label)
    kinds = Counter(synthetic.background_for(label, (42, ci, i, 2), bias) for i in range(n))
    return kinds[BIAS_BACKGROUND] / n, kinds


def test_background_bias_changes_distribution():
    for label in CLASSES:  # unbiased: every class sees every kind, sky about 1/8 of the time
        share, kinds = _sky_share(label, 0.0)
        assert set(kinds) == set(BACKGROUND_KINDS)
        assert 0.07 < share < 0.19, (label, share)
    share, _ = _sky_share(BIASED_CLASS, 0.95)
    assert share > 0.9
    for label in CLASSES:
        if label != BIASED_CLASS:
            assert _sky_share(label, 0.95)[0] < 0.03, label


def test_biased_data_set_keeps_the_flowers(small_set, tmp_path):
    root, result = small_set
    biased = tmp_path / "biased"
    out = synthetic.generate_dataset(
        biased, images_per_class=3, seed=7, background_bias=1.0, progress=False
    )
    assert out["biased_class"] == BIASED_CLASS and result["biased_class"] is None
    assert out["background_counts"][BIASED_CLASS][BIAS_BACKGROUND] == 3
    assert all(
        out["background_counts"][c][BIAS_BACKGROUND] == 0 for c in CLASSES if c != BIASED_CLASS
    )
    # only the background changes: the flower (and so its mask) is the same drawing
    for name in ("tulips/tulips_0000", "daisy/daisy_0002"):
        assert np.array_equal(
            synthetic.load_mask(root / f"flower_photos/{name}.jpg"),
            synthetic.load_mask(biased / f"flower_photos/{name}.jpg"),
        )


def test_cli(tmp_path):
    run = lambda *args: subprocess.run(
        [sys.executable, "-m", "pmlv_utils.synthetic", *args],  # noqa: E731
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    ok = run("--output_dir", str(tmp_path / "cli"), "--images_per_class", "1", "--seed", "3")
    assert ok.returncode == 0, ok.stderr
    assert "wrote 5 images" in ok.stdout
    assert len((tmp_path / "cli/flower_photos/all_data.csv").read_text().splitlines()) == 5
    bad = run("--output_dir", str(tmp_path / "bad"), "--background_bias", "2")
    assert bad.returncode == 2 and "background_bias must be in [0, 1]" in bad.stderr


def test_import_stays_light():
    code = "import json, sys, pmlv_utils.synthetic; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    top = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert not {"tensorflow", "apache_beam", "keras"} & top
