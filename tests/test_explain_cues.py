"""The ground-truth cue benchmark: planted cues, counterfactual re-renders, the score.

Counterfactuals must change only the cue (the stamp: exactly its pixels; the sky: the
background and the flowers' soft edges), be deterministic, and leave every image drawn without
a cue as it was before cues existed (digests taken from the generator before the change).
"""

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from pmlv_utils import synthetic, workspace
from pmlv_utils.explain import cues as xc
from pmlv_utils.preprocess import read_and_preprocess
from pmlv_utils.synthetic import cues

# render_flower(label, image_seed(42, label, 3), difficulty=d): sha256 of rgb + mask bytes,
# computed from main before the cues were added
RENDER_DIGESTS = {
    ("easy", "daisy"): "501ae6761eb0bf1b4ed924dd1d50aad46a6dc16bb7a54fa53376e0ed2cd17214",
    ("easy", "tulips"): "e2d58a337c2ae3cac4af40dda25596dff0a6bdc4bff6a64e7ff0f4034c4e1940",
    ("hard", "roses"): "c6dd105def7069d094c2434e2f22c6cd06c42fa04e013a847a831c365ef90ab5",
    ("hard", "tulips"): "a8788c478c2c55b7a9d19aa96a33833b6006b851c5e570ac6f9f5d84a6c54ad7",
}
# generate_dataset(DIR, 2, 42, 0.5, difficulty="easy"): every file but all_data.csv
DATASET_DIGEST_EASY = "7adc49de3f0c502a954b76963ecb9acd66f3dcdfe7be4d8d87c82ba94c49c470"


def _tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "all_data.csv":
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("difficulty,label", sorted(RENDER_DIGESTS))
def test_images_without_cues_are_unchanged(difficulty, label):
    seed = synthetic.image_seed(42, label, 3)
    rgb, mask = synthetic.render_flower(label, seed, difficulty=difficulty)
    digest = hashlib.sha256(rgb.tobytes() + mask.tobytes()).hexdigest()
    assert digest == RENDER_DIGESTS[difficulty, label]
    again, _ = synthetic.render_flower(label, seed, difficulty=difficulty, cues={})
    assert np.array_equal(again, rgb)


def test_dataset_without_cues_is_unchanged_and_keyed_as_before(tmp_path, monkeypatch):
    synthetic.generate_dataset(tmp_path, 2, 42, 0.5, progress=False, difficulty="easy")
    assert _tree_digest(tmp_path) == DATASET_DIGEST_EASY
    seen = []
    monkeypatch.setattr(workspace, "build_or_reuse", lambda kind, s, *a: seen.append(s))
    workspace.ensure_dataset(60, 42, 0.95, difficulty="easy", workspace=tmp_path)
    workspace.ensure_dataset(60, 42, 0.95, difficulty="easy", workspace=tmp_path, stamp_bias=0.9)
    before = dict(  # the settings (so the key) of a data set before stamp_bias existed
        images_per_class=60,
        seed=42,
        background_bias=0.95,
        generator=synthetic.GENERATOR_VERSION,
        difficulty="easy",
    )
    assert seen[0] == before
    assert seen[1]["stamp_bias"] == 0.9 and seen[1]["cues"] == synthetic.CUES_VERSION


def test_stamp_bias_stamps_only_the_cued_class(tmp_path):
    result = synthetic.generate_dataset(
        tmp_path, 6, 3, progress=False, difficulty="easy", stamp_bias=1.0
    )
    info = pd.read_csv(result["image_info_csv"])
    assert set(info.loc[info.stamp == 1, "label"]) == {synthetic.CUED_CLASS}
    assert (info.loc[info.label == synthetic.CUED_CLASS, "stamp"] == 1).all()
    row = info[info.stamp == 1].iloc[0]
    with Image.open(tmp_path / row["image"]) as im:
        rgb = np.asarray(im.convert("RGB"), float)
    inner = binary_dilation(~cues.stamp_mask(rgb.shape[1], rgb.shape[0]), iterations=2)
    colour = rgb[~inner].mean(axis=0)  # the stamp, away from its JPEG-blurred edge
    assert np.abs(colour - cues.STAMP_COLOUR).max() < 20
    plain = synthetic.generate_dataset(tmp_path / "b", 2, 3, progress=False, difficulty="easy")
    assert "stamp" not in pd.read_csv(plain["image_info_csv"]).columns


def test_stamp_counterfactual_changes_exactly_the_stamp_and_is_deterministic():
    pair = synthetic.counterfactual(42, "daisy", 5, "stamp", (0.0, 0.5, 1.0), "easy")
    changed = [(on != pair["off"]).any(axis=-1) for on in pair["on"]]
    assert not changed[0].any()  # strength 0: no stamp
    for diff, mask in zip(changed[1:], pair["cue_masks"][1:]):
        assert diff.any() and not (diff & ~mask).any()  # only stamp pixels changed
        assert diff[mask].mean() > 0.95
    again = synthetic.counterfactual(42, "daisy", 5, "stamp", (0.0, 0.5, 1.0), "easy")
    assert all(np.array_equal(a, b) for a, b in zip(pair["on"], again["on"]))
    assert np.array_equal(pair["off"], again["off"])
    # without the stamp, the image is the data set's own one
    seed = synthetic.image_seed(42, "daisy", 5)
    kind = synthetic.background_for("daisy", (42, 0, 5, 2), 0.0)
    own, _ = synthetic.render_flower("daisy", seed, background=kind, difficulty="easy")
    assert np.array_equal(own, pair["off"])


@pytest.mark.parametrize("label", ["tulips", "roses"])
def test_sky_counterfactual_keeps_the_flower(label):
    pair = synthetic.counterfactual(7, label, 2, "sky", (1.0,), "easy")
    on, sky_region, flower = pair["on"][0], pair["cue_masks"][0], pair["flower_mask"]
    assert np.array_equal(sky_region, ~flower)
    diff = np.abs(on.astype(int) - pair["off"]).max(axis=-1) > 0
    edge = binary_dilation(sky_region, iterations=3)  # the soft edges (a thin stem: 3 px)
    assert diff[sky_region].mean() > 0.9  # the background did change
    assert not (diff & ~edge).any()  # the flower's inside did not


def test_bad_cues_raise():
    with pytest.raises(ValueError, match="unknown cue"):
        synthetic.render_flower("daisy", 1, cues={"moon": 1.0})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        synthetic.render_flower("daisy", 1, cues={"stamp": 2.0})
    with pytest.raises(ValueError, match="Generator"):
        synthetic.render_flower("daisy", np.random.default_rng(1), cues={"stamp": 1.0})
    with pytest.raises(ValueError, match="stamp_bias"):
        synthetic.generate_dataset("/nonexistent", 1, stamp_bias=-0.1)


def test_reliance_score_perfect_random_and_degenerate():
    rng = np.random.default_rng(0)
    reliance = rng.uniform(-0.2, 1, 2000)
    assert xc.reliance_score(np.exp(reliance), reliance) == pytest.approx(1.0)
    assert xc.reliance_score(-reliance, reliance) == pytest.approx(-1.0)
    assert abs(xc.reliance_score(rng.random(2000), reliance)) < 0.1
    assert np.isnan(xc.reliance_score(np.ones(10), np.arange(10.0)))
    with pytest.raises(ValueError, match="shape"):
        xc.reliance_score(np.ones(3), np.ones(4))


def test_score_table_is_method_by_cue():
    rng = np.random.default_rng(1)
    rel = rng.random(50)
    rows = [
        dict(method=m, cue=c, share=rel if m == "perfect" else rng.random(50), reliance=rel)
        for m in ("perfect", "random")
        for c in ("sky", "stamp")
    ]
    rows = pd.DataFrame(rows).explode(["share", "reliance"]).astype({"share": float})
    table = xc.score_table(rows.astype({"reliance": float}))
    assert list(table.columns) == ["sky", "stamp"]
    assert np.allclose(table.loc["perfect"], 1.0)
    assert (table.loc["random"].abs() < 0.5).all()


def test_cue_set_off_image_is_the_data_set_file(tmp_path):
    synthetic.generate_dataset(tmp_path, 1, 42, progress=False, difficulty="easy")
    s = xc.cue_set([("daisy", 0)], "stamp", (0.5, 1.0), 32, 42, "easy")
    assert s.on.shape == (2, 32, 32, 3) and s.off.shape == (1, 32, 32, 3)
    own = read_and_preprocess(str(tmp_path / "flower_photos/daisy/daisy_0000.jpg"), 32, 32)
    assert np.array_equal(s.off[0], own.numpy())
    assert s.masks.any(axis=(1, 2)).all() and s.masks.mean() < 0.1
    # a perfect explainer (all its mass on the cue) has share 1; a "model" that reads the
    # stamp's colour relies on it the more the stronger it is
    assert np.allclose(xc.cue_share(s.masks.astype(float), s), 1.0)

    def predict(images):
        magenta = images[..., 0] + images[..., 2] - 2 * images[..., 1]
        p = np.clip(magenta.max(axis=(1, 2)) / 2, 0, 1)
        return np.stack([1 - p, p], axis=1)

    reliance = xc.true_reliance(predict, s, 1)
    assert 0 < reliance[0] < reliance[1]
