"""The synthetic 5-flowers generator: formats, determinism, masks, background bias, CLI,
and the difficulty setting (easy = generator version 3's images, hard = the default)."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

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


def _digest(root: Path) -> str:
    """One sha256 over every image and mask (names and bytes) of a generated set."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.suffix in (".jpg", ".png"):
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


# The digests of generator version 3 (before the difficulty setting), 3 images per class
# (numpy 2.4, Pillow 12.3): difficulty="easy" must keep drawing exactly these files.
V3_DIGESTS = {
    (0, 3, 0.0): "b85e0dadeb816ca159a547186216c0b4d715400680a88d76201398b82b9770bf",
    (7, 3, 0.0): "695fe6e5a2d03b74e9735a9a51eb2255ab869b5f44a704d333cf8ecf2a40e6e6",
    (5, 2, 0.9): "d923cfeac52879c3a5de27d5c9df74ce9650da0336e6060ea8f615e584f7d2d4",
}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """Easy images: the tests below that describe large centred flowers use these."""
    root = tmp_path_factory.mktemp("flowers")
    return root, synthetic.generate_dataset(
        root, images_per_class=3, seed=7, progress=False, difficulty="easy"
    )


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
    synthetic.generate_dataset(again, images_per_class=3, seed=7, progress=False, difficulty="easy")
    assert _files(root) == _files(again)
    # the CSV differs only by the output root
    assert (root / "flower_photos/all_data.csv").read_text().replace(
        str(root.resolve()), "ROOT"
    ) == (again / "flower_photos/all_data.csv").read_text().replace(str(again.resolve()), "ROOT")
    other = tmp_path / "other"
    synthetic.generate_dataset(other, images_per_class=3, seed=8, progress=False, difficulty="easy")
    a, b = _files(root), _files(other)
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != b[k] for k in jpgs)


def test_adding_images_keeps_earlier_ones(small_set, tmp_path):
    root, _ = small_set
    more = tmp_path / "more"
    synthetic.generate_dataset(more, images_per_class=4, seed=7, progress=False, difficulty="easy")
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
    with pytest.raises(ValueError, match="difficulty must be one of"):
        synthetic.render_flower("daisy", 0, difficulty="medium")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(images_per_class=0), "images_per_class"),
        (dict(seed=-1), "seed"),
        (dict(background_bias=1.5), "background_bias"),
        (dict(difficulty="medium"), "difficulty must be one of"),
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
        biased, images_per_class=3, seed=7, background_bias=1.0, progress=False, difficulty="easy"
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
    easy = run("--output_dir", str(tmp_path / "easy"), "--images_per_class", "1", "--seed", "7")
    assert easy.returncode == 0, easy.stderr
    easy = run(
        *("--output_dir", str(tmp_path / "easy2"), "--images_per_class", "1"),
        *("--seed", "7", "--difficulty", "easy"),
    )
    assert easy.returncode == 0, easy.stderr
    assert _digest(tmp_path / "easy") != _digest(tmp_path / "easy2")  # the default is hard
    bad = run("--output_dir", str(tmp_path / "bad"), "--difficulty", "medium")
    assert bad.returncode == 2 and "invalid choice: 'medium'" in bad.stderr


def test_import_stays_light():
    code = "import json, sys, pmlv_utils.synthetic; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    top = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert not {"tensorflow", "apache_beam", "keras"} & top


# ---------------------------------------------------------------------------------------
# The difficulty setting
# ---------------------------------------------------------------------------------------


def test_easy_is_generator_v3_byte_for_byte(small_set, tmp_path):
    root, result = small_set
    assert result["difficulty"] == "easy" and result["label_noise"] == 0
    assert _digest(root) == V3_DIGESTS[(7, 3, 0.0)]
    for (seed, n, bias), digest in V3_DIGESTS.items():
        if seed != 7:
            out = tmp_path / f"s{seed}"
            synthetic.generate_dataset(
                out, n, seed, background_bias=bias, progress=False, difficulty="easy"
            )
            assert _digest(out) == digest, (seed, n, bias)


def _noisy_seed(n: int) -> int:
    """The first seed whose hard data set of ``n`` images per class has a mislabelled image."""
    return next(
        s
        for s in range(1000)
        if any(synthetic.true_label(s, c, i) != c for c in CLASSES for i in range(n))
    )


@pytest.fixture(scope="module")
def hard_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    seed = _noisy_seed(4)
    result = synthetic.generate_dataset(root, images_per_class=4, seed=seed, progress=False)
    return root, result, list(csv.DictReader(open(root / "image_info.csv")))


def test_hard_is_the_default_and_deterministic(hard_set, tmp_path):
    root, result, _ = hard_set
    assert result["difficulty"] == "hard" and result["generator_version"] == "5"
    again = tmp_path / "again"
    synthetic.generate_dataset(again, 4, result["seed"], progress=False, difficulty="hard")
    assert _files(root) == _files(again)
    fewer = tmp_path / "fewer"  # each image depends only on (seed, class, index)
    synthetic.generate_dataset(fewer, 2, result["seed"], progress=False)
    a, b = _files(root), _files(fewer)
    assert all(a[k] == b[k] for k in b if k.endswith((".jpg", ".png")))
    easy = tmp_path / "easy"
    synthetic.generate_dataset(easy, 4, result["seed"], progress=False, difficulty="easy")
    c = _files(easy)
    assert all(a[k] != c[k] for k in a if k.endswith(".jpg"))


def test_hard_image_info_columns(hard_set):
    root, result, info = hard_set
    header = next(csv.reader(open(root / "image_info.csv")))
    today = ["image", "label", "background", "width", "height", "jpeg_quality"]
    today += ["flower_fraction", "other_flower", "n_flowers", "occluded"]
    assert header[: len(today)] == today and tuple(header) == synthetic.INFO_COLUMNS
    for column in ("true_label", "label_noise", "variety", "flower_scale", "centre_offset"):
        assert column in header
    for column in ("cut_by_frame", "blur", "blur_sigma", "exposure", "colour_cast"):
        assert column in header
    rows = list(csv.reader(open(root / "flower_photos" / "all_data.csv")))
    assert [r[1] for r in rows] == [i["label"] for i in info]  # the listed (maybe wrong) label
    for i in info:
        assert i["label_noise"] in ("True", "False")
        assert (i["label_noise"] == "True") == (i["true_label"] != i["label"])
        assert i["true_label"] in CLASSES and i["variety"] in synthetic.VARIETIES[i["true_label"]]
        assert i["other_flower"] in {"", *CLASSES} and i["other_flower"] != i["true_label"]
        assert i["blur"] in ("none", "defocus", "motion")
        assert (float(i["blur_sigma"]) > 0) == (i["blur"] != "none")
        assert 20 <= int(i["jpeg_quality"]) <= 92 and 0.3 <= float(i["exposure"]) <= 2.1
        assert 0.05 <= float(i["flower_scale"]) <= 0.5 and float(i["centre_offset"]) < 0.5
        assert i["cut_by_frame"] in ("True", "False") and int(i["n_flowers"]) >= 1
        with Image.open(root / i["image"]) as im:
            assert im.size == (int(i["width"]), int(i["height"]))
            assert synthetic.MIN_SIDE <= min(im.size) and max(im.size) <= synthetic.MAX_SIDE
    assert result["label_noise"] == sum(i["label_noise"] == "True" for i in info) >= 1


def test_label_noise_rate_and_record():
    listed = [(c, i) for c in CLASSES for i in range(2000)]
    drawn = {(c, i): synthetic.true_label(42, c, i) for c, i in listed}
    noisy = [(c, i) for (c, i), t in drawn.items() if t != c]
    assert 0.015 < len(noisy) / len(listed) < 0.025, len(noisy) / len(listed)
    assert synthetic.LABEL_NOISE_RATE == 0.02
    confusable = sum(drawn[k] in synthetic.CONFUSABLE[k[0]] for k in noisy)
    assert confusable > len(noisy) / 2  # confusable classes are the most common mistakes
    assert all(synthetic.true_label(42, c, i, "easy") == c for c, i in listed[:100])


def test_hard_masks_mark_the_true_class(hard_set):
    """The stored mask is the mask of the drawn (true) class's flower(s), also for the
    mislabelled images, and it is never empty."""
    root, result, info = hard_set
    for i in info:
        label, index = i["label"], int(Path(i["image"]).stem.split("_")[-1])
        _, mask, scene = synthetic.render_flower(
            i["true_label"],
            synthetic.image_seed(result["seed"], label, index),
            background=i["background"],
            return_info=True,
        )
        stored = synthetic.load_mask(root / i["image"])
        assert np.array_equal(stored, mask), i["image"]
        assert scene["variety"] == i["variety"] and stored.mean() > 0.003, i["image"]


@pytest.mark.parametrize("label", CLASSES)
def test_hard_mask_covers_the_drawn_flower(label):
    """Two renders that differ only by the background: inside the mask (away from its edge)
    the pixels hardly change, outside they do."""
    for index in range(4):
        seed = (11, CLASSES.index(label), index, 1)
        a, mask, _ = synthetic.render_flower(label, seed, background="soil", return_info=True)
        b, mask_b = synthetic.render_flower(label, seed, background="sky")
        assert np.array_equal(mask, mask_b) and mask.any()
        diff = np.abs(a.astype(int) - b.astype(int)).mean(axis=2)
        inner = np.asarray(Image.fromarray(mask).filter(ImageFilter.MinFilter(7))) > 0
        if inner.sum() < 20:  # a flower too small or too cut to erode: check the whole mask
            inner = mask
        assert np.median(diff[inner]) < np.median(diff[~mask]) / 3, (label, index)


def test_hard_images_outside_the_tail_show_one_clean_flower():
    infos = [
        synthetic.render_flower(label, (5, i), return_info=True)[2]
        for label in CLASSES
        for i in range(6)
    ]
    tail = [i for i in infos if i["hard_tail"]]
    clean = [i for i in infos if not i["hard_tail"]]
    assert tail and clean  # in proportion TAIL_PROBABILITY : 1 - TAIL_PROBABILITY
    for info in clean:
        assert info["blur"] == "none" and info["colour_cast"] == "" and not info["occluded"]
        assert info["other_flower"] is None and info["n_flowers"] == 1
        assert not info["cut_by_frame"] and info["flower_scale"] >= 0.28
        assert 0.8 <= info["exposure"] <= 1.2
    easy = synthetic.render_flower("daisy", 0, return_info=True, difficulty="easy")[2]
    assert easy["hard_tail"] is False
