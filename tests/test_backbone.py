"""pmlv_utils.backbone: the shapes pretext task, the cached backbone, few-label fine-tuning.

The backbone is pretrained once per module at a tiny size (32 px, 2 images a shape class, one
epoch) through ``workspace.ensure_backbone``; the "flowers" of the fine-tuning test are five
of the shape classes written as GZIP TFRecords in the course's schema.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
Image = pytest.importorskip("PIL.Image")

from pmlv_utils import backbone, model, tfrecords, training, workspace  # noqa: E402
from pmlv_utils.backbone import shapes  # noqa: E402

TINY = dict(img_size=32, alpha=0.35, images_per_class=2, epochs=1, seed=3)
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    return ws, workspace.ensure_backbone(workspace=ws, **TINY)


def test_shapes_are_deterministic_and_differ():
    a = shapes.render_shape(4, (0, 4, 1), 40)
    assert a.shape == (40, 40, 3) and a.dtype == np.uint8
    assert np.array_equal(a, shapes.render_shape(4, (0, 4, 1), 40))
    assert not np.array_equal(a, shapes.render_shape(4, (0, 4, 2), 40))
    images, labels = shapes.make_shapes(2, seed=1, size=24)
    assert images.shape == (2 * len(shapes.SHAPES), 24, 24, 3)
    assert list(labels[: len(shapes.SHAPES)]) == list(range(len(shapes.SHAPES)))
    held_out, _ = shapes.make_shapes(1, seed=1, size=24, offset=2)
    assert not any(np.array_equal(held_out[0], im) for im in images)


def test_pretext_shapes_stand_out_and_batch_norm_statistics_follow():
    rng = np.random.default_rng(0)
    for _ in range(20):
        background = shapes._background(rng, 32)
        colour = np.array(shapes._contrasting_colour(rng, background))
        mean = np.asarray(background, dtype=float).reshape(-1, 3).mean(0)
        assert np.abs(colour - mean).sum() >= shapes.MIN_CONTRAST
    _, net = backbone.pretrain.pretext_model(backbone.BackboneConfig(img_size=32))
    norms = [la for la in net.layers if isinstance(la, keras.layers.BatchNormalization)]
    assert norms and all(la.momentum == 0.9 for la in norms)  # Keras's default is 0.999


def test_ensure_backbone_caches_a_loadable_no_top_file(cached, capsys):
    ws, folder = cached
    info = backbone.read_info(folder)
    assert info["alpha"] == 0.35 and info["settings"]["img_size"] == 32
    assert 0.0 <= info["pretext_val_accuracy"] <= 1.0 and info["wall_seconds"] > 0
    assert workspace.ensure_backbone(workspace=ws, **TINY) == folder
    assert "reusing backbone" in capsys.readouterr().out
    assert not [p for p in os.listdir(folder.parent) if ".build-" in p]  # published by rename
    # the no-top file loads at another input size, like weights="imagenet"
    net = model.build_model(
        "mobilenetv2", img_size=48, weights=backbone.weights_path(folder), alpha=0.35
    )
    inner = next(layer for layer in net.layers if layer.name.startswith("mobilenetv2"))
    saved = model.mobilenetv2_backbone(48, backbone.weights_path(folder), 0.35)
    assert all(np.array_equal(a, b) for a, b in zip(inner.get_weights(), saved.get_weights()))
    fresh = model.mobilenetv2_backbone(48, None, 0.35)
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), saved.get_weights()))
    with pytest.raises(ValueError, match="alpha=0.5"):
        model.mobilenetv2_backbone(48, backbone.weights_path(folder), 0.5)


def _write_shape_records(folder, per_split: dict) -> None:
    """Five shape classes as "flowers": dict.txt and one GZIP shard a split."""
    (folder / "dict.txt").write_text("\n".join(CLASSES) + "\n")
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for s, (split, n) in enumerate(per_split.items()):
        with tf.io.TFRecordWriter(str(folder / f"{split}-00000-of-00001.gz"), options) as w:
            for k, label in enumerate(CLASSES):
                for i in range(n):
                    pixels = shapes.render_shape(k, (9, s, k, i), 36)
                    buffer = io.BytesIO()
                    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
                    path = str(folder / label / f"{split}_{i}.jpg")
                    example = tfrecords.make_example(buffer.getvalue(), (36, 36, 3), label, k, path)
                    w.write(example.SerializeToString())


def test_subset_and_fine_tune_table(cached, tmp_path):
    _, folder = cached
    data = tmp_path / "data"
    data.mkdir()
    _write_shape_records(data, {"train": 4, "valid": 2, "test": 2})
    kept = backbone.subset_per_class(str(data / "train-*"), str(tmp_path / "sub"), 3, seed=0)
    assert kept == {k: 3 for k in range(5)}
    assert backbone.subset_per_class(str(data / "train-*"), str(tmp_path / "s9"), 9) == {
        k: 4 for k in range(5)
    }  # a class with fewer keeps them all
    config = training.TrainConfig(img_size=32, batch_size=8, num_epochs=1)
    table = backbone.fine_tune_table(
        str(data), str(data / "dict.txt"), str(folder), str(tmp_path / "ft"), (2,), config,
        log=lambda *a: None,
    )  # fmt: skip
    assert list(table["labels_per_class"]) == [2, 2]  # one MobileNetV2 fit: they are slow
    assert list(table["train_images"]) == [10, 10]
    assert set(table["variant"]) == set(backbone.transfer.VARIANTS)
    assert table["test_accuracy"].between(0, 1).all()
    wide = backbone.transfer.pivot(table)
    assert wide.shape == (1, 2) and list(wide.index) == [2]
