"""The record schema: one ``tf.train.Example`` per image (``SCHEMA_VERSION``).

image      bytes     the encoded JPEG, RGB (the source bytes when the source already is one)
shape      int64[3]  (height, width, 3)
label      bytes     e.g. b"daisy"
label_int  int64     index of the label in dict.txt
path       bytes     the image's path as resolved from the CSV
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

# 2: records serialised deterministically (map order fixed), shards by a hash of the path, in a
# fixed order: two runs over the same CSV write byte-identical files. Same features as 1.
SCHEMA_VERSION = "jpeg-rgb-2"


def _bytes_feature(values) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _int_feature(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def make_example(image: bytes, shape: Sequence[int], label: str, label_int: int, path: str):
    """A ``tf.train.Example`` in the course's schema (write ``serialize(example)``)."""
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": _bytes_feature([image]),
                "shape": _int_feature(shape),
                "label": _bytes_feature([label.encode("utf-8")]),
                "label_int": _int_feature([label_int]),
                "path": _bytes_feature([path.encode("utf-8")]),
            }
        )
    )


def serialize(example) -> bytes:
    """The bytes of a record: deterministic (the feature map in key order, not hash order), so
    the same image gives the same bytes on every run and every worker."""
    return example.SerializeToString(deterministic=True)


def feature_spec() -> dict:
    """The ``tf.io.parse_single_example`` spec of the schema."""
    return {
        "image": tf.io.FixedLenFeature([], tf.string),
        "shape": tf.io.FixedLenFeature([3], tf.int64),
        "label": tf.io.FixedLenFeature([], tf.string),
        "label_int": tf.io.FixedLenFeature([], tf.int64),
        "path": tf.io.FixedLenFeature([], tf.string),
    }


def parse_example(serialized):
    """Parse one serialized record into a dict of tensors (usable inside ``tf.data`` maps)."""
    return tf.io.parse_single_example(serialized, feature_spec())


def decode_image(image_bytes):
    """The stored JPEG as a uint8 tensor [height, width, 3]."""
    return tf.io.decode_jpeg(image_bytes, channels=3)
