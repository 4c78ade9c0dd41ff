"""tf.data ingest: shapes, labels, determinism, and clear errors on bad shards."""

import collections
import importlib
import types

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import pmlv_utils  # noqa: E402
from pmlv_utils import ingest  # noqa: E402

IMG = 16
LABELS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


# ---- stand-ins for modules owned by others, used only while they do not exist yet ----
def _standin_tfrecords():
    def parse_example(serialized):
        features = {
            "image": tf.io.FixedLenFeature([], tf.string),
            "shape": tf.io.FixedLenFeature([3], tf.int64),
            "label": tf.io.FixedLenFeature([], tf.string),
            "label_int": tf.io.FixedLenFeature([], tf.int64),
            "path": tf.io.FixedLenFeature([], tf.string),
        }
        return tf.io.parse_single_example(serialized, features)

    return types.SimpleNamespace(parse_example=parse_example)


def _standin_preprocess():
    def preprocess_image(image_bytes, height, width):
        img = tf.io.decode_jpeg(image_bytes, channels=3)
        img = tf.image.convert_image_dtype(img, tf.float32)
        img = tf.image.resize(img, [height, width])
        return tf.reshape(img, [height, width, 3])

    return types.SimpleNamespace(preprocess_image=preprocess_image)


@pytest.fixture(autouse=True)
def contract_modules(monkeypatch):
    for name, standin in (("tfrecords", _standin_tfrecords), ("preprocess", _standin_preprocess)):
        try:
            importlib.import_module(f"pmlv_utils.{name}")
        except ImportError:
            monkeypatch.setattr(pmlv_utils, name, standin(), raising=False)


def _example(i, label_int, h=20, w=30):
    rng = np.random.default_rng(i)
    pixels = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    jpeg = tf.io.encode_jpeg(pixels).numpy()

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def ints(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=v))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": b(jpeg),
                "shape": ints([h, w, 3]),
                "label": b(LABELS[label_int].encode()),
                "label_int": ints([label_int]),
                "path": b(f"/x/{LABELS[label_int]}/{i}.jpg".encode()),
            }
        )
    ).SerializeToString()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """3 GZIP shards + 1 empty one (as Beam writes): 23 records, labels i % 5."""
    folder = tmp_path_factory.mktemp("tfr")
    sizes = [10, 8, 5, 0]
    labels, i = [], 0
    for s, n in enumerate(sizes):
        with tf.io.TFRecordWriter(
            str(folder / f"train-{s:05d}-of-{len(sizes):05d}.gz"), options="GZIP"
        ) as w:
            for _ in range(n):
                w.write(_example(i, i % 5))
                labels.append(i % 5)
                i += 1
    return folder, labels


def _labels(ds):
    return [int(x) for _, l in ds for x in np.atleast_1d(l.numpy())]


def test_shapes_dtypes_labels(shards):
    folder, labels = shards
    ds = ingest.make_dataset(str(folder / "train-*"), batch_size=4, img_size=IMG)
    batches = list(ds)
    images, label_int = batches[0]
    assert images.shape == (4, IMG, IMG, 3) and images.dtype == tf.float32
    assert label_int.dtype in (tf.int32, tf.int64)
    all_images = np.concatenate([b[0].numpy() for b in batches])
    assert all_images.min() >= 0.0 and all_images.max() <= 1.0
    # evaluation order is repeatable; without interleave it is the file order
    assert _labels(batches) == _labels(ingest.make_dataset(str(folder / "train-*"), img_size=IMG))
    assert collections.Counter(_labels(batches)) == collections.Counter(labels)
    assert (
        _labels(ingest.make_dataset(str(folder / "train-*"), img_size=IMG, interleave=False))
        == labels
    )


def test_rectangular_size(shards):
    folder, _ = shards
    images, _ = next(
        iter(ingest.make_dataset(str(folder / "train-*"), batch_size=2, img_size=(8, 12)))
    )
    assert images.shape == (2, 8, 12, 3)


def test_seeded_training_order_is_deterministic(shards):
    folder, labels = shards
    pattern = str(folder / "train-*")

    def order(seed):
        ds = ingest.make_dataset(
            pattern, batch_size=None, img_size=IMG, training=True, shuffle_seed=seed
        )
        return [tuple(np.round(img.numpy()[0, 0], 4)) for img, _ in ds]

    a, b, c = order(7), order(7), order(8)
    assert a == b
    assert a != c
    assert len(a) == len(labels)


@pytest.mark.parametrize(
    "table,variants", [("read", ingest.READ_VARIANTS), ("train", ingest.TRAIN_VARIANTS)]
)
def test_every_variant_yields_the_same_labels(shards, table, variants):
    folder, labels = shards
    for name in variants:
        ds = ingest.make_variant(name, str(folder / "train-*"), img_size=IMG, table=table)
        assert collections.Counter(_labels(ds)) == collections.Counter(labels), name


def test_bytes_dataset_matches_tfrecords(shards):
    folder, labels = shards
    images, ints = ingest.load_image_bytes(str(folder / "train-*"))
    assert ints == labels
    from_bytes = np.concatenate(
        [x.numpy() for x, _ in ingest.make_bytes_dataset(images, ints, img_size=IMG)]
    )
    from_records = np.concatenate(
        [
            x.numpy()
            for x, _ in ingest.make_dataset(str(folder / "train-*"), img_size=IMG, interleave=False)
        ]
    )
    np.testing.assert_allclose(from_bytes, from_records)
    assert ingest.drain(ingest.make_bytes_dataset(images, img_size=IMG, batch_size=5)) == len(
        labels
    )


def test_file_dataset(tmp_path):
    paths = []
    for i in range(6):
        p = tmp_path / f"{i}.jpg"
        p.write_bytes(tf.io.encode_jpeg(np.full((10, 14, 3), 40 * i, np.uint8)).numpy())
        paths.append(str(p))
    ds = ingest.make_file_dataset(paths, [i % 5 for i in range(6)], batch_size=4, img_size=IMG)
    images, labels = next(iter(ds))
    assert images.shape == (4, IMG, IMG, 3)
    assert labels.numpy().tolist() == [0, 1, 2, 3]
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        ingest.make_file_dataset([str(tmp_path / "nope.jpg")], [0])


def test_empty_pattern_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "valid-*")
    with pytest.raises(FileNotFoundError, match="valid-"):
        ingest.make_dataset(pattern)


def test_only_empty_shards_is_an_error(tmp_path):
    with tf.io.TFRecordWriter(str(tmp_path / "test-00000-of-00001.gz"), options="GZIP"):
        pass
    with pytest.raises(ValueError, match="hold no records"):
        ingest.make_dataset(str(tmp_path / "test-*"))


@pytest.mark.parametrize("damage", ["not_gzip", "truncated", "zero_bytes"])
def test_corrupt_shard_names_the_file(shards, tmp_path, damage):
    folder, _ = shards
    good = (folder / "train-00000-of-00004.gz").read_bytes()
    bad = tmp_path / "train-00009-of-00010.gz"
    bad.write_bytes(
        {"not_gzip": b"garbage" * 50, "truncated": good[: len(good) // 2], "zero_bytes": b""}[
            damage
        ]
    )
    with pytest.raises(ingest.ShardError, match="train-00009-of-00010.gz"):
        ingest.make_dataset([str(folder / "train-*"), str(bad)])


def test_plain_variant_is_really_plain(shards):
    """tf.data must not parallelise the map or add a prefetch on its own in the plain variant."""
    folder, _ = shards
    plain = ingest.make_variant("plain", str(folder / "train-*"), img_size=IMG).options()
    assert plain.experimental_optimization.map_parallelization is False
    assert plain.experimental_optimization.inject_prefetch is False
    fast = ingest.make_dataset(str(folder / "train-*"), img_size=IMG).options()
    assert fast.experimental_optimization.map_parallelization is True


def test_keras_knows_the_steps_per_epoch(shards):
    folder, labels = shards
    ds = ingest.make_dataset(str(folder / "train-*"), batch_size=4, img_size=IMG)
    assert int(ds.cardinality()) == -(-len(labels) // 4)


def test_probe_model_trains_on_the_dataset(shards):
    folder, labels = shards
    ds = ingest.make_variant(
        "prefetch + cache", str(folder / "train-*"), img_size=IMG, table="train"
    )
    history = ingest.train_probe(ds, IMG, epochs=2)
    assert len(history.history["loss"]) == 2
    assert ingest.read_loop(ds, epochs=2) == 2 * len(labels)
