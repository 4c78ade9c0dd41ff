"""THE preprocessing function, and the augmentation layers that run inside the model.

One function, :func:`preprocess_image`, turns encoded image bytes into the model's input
(float32 ``[height, width, 3]`` in [0, 1]). Training (through ``pmlv_utils.ingest``), the
exported signatures, the server, TFLite calibration and the explainers all call it, so the
model never sees pixels prepared differently in production than in training.

Augmentation is *not* done here: it lives in Keras layers at the start of the model
(:func:`augmentation_layers`), which are random only when ``training=True``. Their inference
path is deterministic and keeps the image scale seen in training:

* :class:`RandomCropOrCenter` crops a random ``crop_ratio`` window in training and the
  centre window of the same size at inference. Keras 3's own ``RandomCrop`` returns the
  input unchanged at inference (a different size and scale than in training) and crops
  every image of a batch at the same place, so it is not used.
* ``RandomFlip`` / ``RandomBrightness`` / ``RandomContrast`` (Keras 3) draw per image from a
  seeded ``SeedGenerator`` and are the identity at inference.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import tensorflow as tf


def preprocess_image(image_bytes, height: int, width: int):
    """Encoded JPEG/PNG/GIF/BMP bytes -> float32 ``[height, width, 3]`` in [0, 1].

    Decode (3 channels, first frame of an animation), centre-crop to the target aspect
    ratio, resize (bilinear, antialiased) and give the result its static shape.
    """
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image = tf.image.convert_image_dtype(image, tf.float32)  # uint8 -> [0, 1]
    image = center_crop_to_aspect(image, height / width)
    image = tf.image.resize(image, [height, width], method="bilinear", antialias=True)
    image = tf.clip_by_value(image, 0.0, 1.0)
    # A static shape keeps Conv2D a builtin op in TFLite (resize alone loses it).
    return tf.reshape(image, [height, width, 3])


def center_crop_to_aspect(image, aspect: float):
    """The largest centred window of ``image`` [h, w, c] whose height/width is ``aspect``."""
    shape = tf.shape(image)
    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    crop_h = tf.minimum(h, tf.round(w * aspect))
    crop_w = tf.minimum(w, tf.round(h / aspect))
    crop_h = tf.maximum(tf.cast(crop_h, tf.int32), 1)
    crop_w = tf.maximum(tf.cast(crop_w, tf.int32), 1)
    top = (shape[0] - crop_h) // 2
    left = (shape[1] - crop_w) // 2
    return image[top : top + crop_h, left : left + crop_w, :]


def read_and_preprocess(filename, height: int, width: int):
    """Read an image file (local path or ``gs://``) and :func:`preprocess_image` it.

    Called eagerly, a missing or non-image file raises ``ValueError`` naming the file.
    Inside a graph (tf.data, a signature) TensorFlow's own error is raised at run time.
    """
    if tf.executing_eagerly():
        name = filename.numpy().decode() if isinstance(filename, tf.Tensor) else str(filename)
        try:
            return preprocess_image(tf.io.read_file(filename), height, width)
        except tf.errors.NotFoundError as e:
            raise ValueError(f"{name}: file not found") from e
        except tf.errors.InvalidArgumentError as e:
            reason = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", e.message).strip()
            raise ValueError(f"{name}: not a decodable image ({reason})") from e
    return preprocess_image(tf.io.read_file(filename), height, width)


def crop_size(img_size: int, crop_ratio: float) -> int:
    """Side of the square window the model crops from an ``img_size`` image."""
    if not 0.0 < crop_ratio <= 1.0:
        raise ValueError(f"crop_ratio must be in (0, 1], got {crop_ratio}")
    return max(1, int(round(img_size * crop_ratio)))


@keras.saving.register_keras_serializable(package="pmlv")
class RandomCropOrCenter(keras.layers.Layer):
    """Crop ``height`` x ``width`` windows: random per image in training, centred otherwise
    (always centred with ``random=False``).

    The output has the same size (so the same pixel scale) in training and at inference.
    """

    def __init__(
        self, height: int, width: int, seed: int | None = None, random: bool = True, **kwargs
    ):
        super().__init__(**kwargs)
        self.height, self.width, self.seed, self.random = int(height), int(width), seed, random
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        in_h, in_w = images.shape[1], images.shape[2]
        if in_h is None or in_w is None:
            raise ValueError(f"{self.name}: needs a static image size, got {images.shape}")
        if in_h < self.height or in_w < self.width:
            raise ValueError(
                f"{self.name}: cannot crop {self.height}x{self.width} from {in_h}x{in_w} images"
            )
        if not (training and self.random):
            top, left = (in_h - self.height) // 2, (in_w - self.width) // 2
            return images[:, top : top + self.height, left : left + self.width, :]
        batch = tf.shape(images)[0]
        tops = self._random_offsets(batch, in_h - self.height)
        lefts = self._random_offsets(batch, in_w - self.width)
        rows = tops[:, None] + tf.range(self.height)[None, :]  # [B, height]
        cols = lefts[:, None] + tf.range(self.width)[None, :]  # [B, width]
        images = tf.gather(images, rows, axis=1, batch_dims=1)  # [B, height, W, C]
        return tf.gather(images, cols, axis=2, batch_dims=1)  # [B, height, width, C]

    def _random_offsets(self, batch, max_offset: int):
        draws = keras.random.uniform([batch], 0.0, float(max_offset + 1), seed=self.seed_generator)
        return tf.minimum(tf.cast(draws, tf.int32), max_offset)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def get_config(self):
        return {
            **super().get_config(),
            "height": self.height,
            "width": self.width,
            "seed": self.seed,
            "random": self.random,
        }


def augmentation_layers(
    img_size: int,
    crop_ratio: float = 0.75,
    with_color_distort: bool = True,
    augment: bool = True,
    seed: int | None = None,
) -> list:
    """The model's first layers: crop (random/centre), flip and colour distortion.

    ``augment=False`` keeps only the centre crop (deterministic in training too).
    Each random layer gets its own seed derived from ``seed``.
    """
    size = crop_size(img_size, crop_ratio)
    sub = (lambda k: None) if seed is None else (lambda k: seed * 10 + k)
    if not augment:
        return [RandomCropOrCenter(size, size, random=False, name="center_crop")]
    layers = [
        RandomCropOrCenter(size, size, seed=sub(1), name="random_crop"),
        keras.layers.RandomFlip("horizontal", seed=sub(2), name="random_lr_flip"),
    ]
    if with_color_distort:
        layers += [
            keras.layers.RandomBrightness(
                0.2, value_range=(0.0, 1.0), seed=sub(3), name="random_brightness"
            ),
            keras.layers.RandomContrast(
                0.3, value_range=(0.0, 1.0), seed=sub(4), name="random_contrast"
            ),
        ]
    return layers


def augmentation_examples(
    image,
    count: int = 8,
    crop_ratio: float = 0.75,
    with_color_distort: bool = True,
    seed: int | None = 1,
):
    """What the model's first layers make of one preprocessed image ``[S, S, 3]``:
    ``(count training-mode views, the inference-mode view)``, as numpy arrays."""
    size = int(image.shape[0])
    layers = keras.Sequential(augmentation_layers(size, crop_ratio, with_color_distort, seed=seed))
    batch = tf.repeat(tf.convert_to_tensor(image, tf.float32)[None], count, axis=0)
    views = np.asarray(layers(batch, training=True))
    return views, np.asarray(layers(batch[:1], training=False))[0]
