"""THE preprocessing function, and the augmentation layers that run inside the model.

One function, :func:`preprocess_image`, turns encoded image bytes into the model's input
(float32 ``[height, width, 3]`` in [0, 1]). Training (through ``pmlv_utils.ingest``), the
exported signatures, the server, TFLite calibration and the explainers all call it, so the
model never sees pixels prepared differently in production than in training.

Augmentation is *not* done here: it lives in Keras layers at the start of the model
(:func:`augmentation_layers`), which are random only when ``training=True`` and are the
identity at inference, so the model sees the WHOLE preprocessed image there (what a learner
is shown, and what an explanation map is drawn over):

* :class:`RandomZoomCrop` crops a random square window per image (its side a random
  fraction in ``[crop_ratio, 1]`` of the image's) and resizes it back to the image size: a
  random zoom and shift. Keras 3's ``RandomCrop`` would crop every image of a batch at the
  same place and change the output size.
* ``RandomFlip`` / ``RandomBrightness`` / ``RandomContrast`` (Keras 3) draw per image from a
  seeded ``SeedGenerator``.

:class:`RandomCropOrCenter` is the crop of trainer versions up to 4 (a fixed-size crop,
centred at inference); it stays registered so that models saved then still load.
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
    """Side of the smallest square window the model's random crop takes, in training, from an
    ``img_size`` image (at inference the model sees the whole image)."""
    if not 0.0 < crop_ratio <= 1.0:
        raise ValueError(f"crop_ratio must be in (0, 1], got {crop_ratio}")
    return max(1, int(round(img_size * crop_ratio)))


@keras.saving.register_keras_serializable(package="pmlv")
class RandomZoomCrop(keras.layers.Layer):
    """In training, a random square window of each image (side: a random fraction in
    ``[min_scale, 1]`` of the image's, anywhere inside it) resized back to the image size;
    at inference the identity.

    ``height`` / ``width``: the output size, which is the input size (static, so the
    exported signatures and TFLite keep their shapes). ``min_scale=1`` never crops.
    """

    def __init__(
        self, height: int, width: int, min_scale: float = 0.75, seed: int | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        if not 0.0 < float(min_scale) <= 1.0:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
        self.height, self.width, self.seed = int(height), int(width), seed
        self.min_scale = float(min_scale)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        in_h, in_w = images.shape[1], images.shape[2]
        if (in_h, in_w) != (self.height, self.width):
            raise ValueError(
                f"{self.name}: built for {self.height}x{self.width} images, got {images.shape}"
            )
        if not training or self.min_scale >= 1.0:
            return images
        batch = tf.shape(images)[0]
        scale = keras.random.uniform([batch], self.min_scale, 1.0, seed=self.seed_generator)
        # top-left corner anywhere that keeps the window inside the image (relative units)
        top = keras.random.uniform([batch], 0.0, 1.0, seed=self.seed_generator) * (1.0 - scale)
        left = keras.random.uniform([batch], 0.0, 1.0, seed=self.seed_generator) * (1.0 - scale)
        boxes = tf.stack([top, left, top + scale, left + scale], axis=1)
        out = tf.image.crop_and_resize(
            images, boxes, tf.range(batch), [self.height, self.width], method="bilinear"
        )
        return tf.clip_by_value(out, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def get_config(self):
        return {
            **super().get_config(),
            "height": self.height,
            "width": self.width,
            "min_scale": self.min_scale,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="pmlv")
class RandomCropOrCenter(keras.layers.Layer):
    """Crop ``height`` x ``width`` windows: random per image in training, centred otherwise
    (always centred with ``random=False``). The crop of trainer versions up to 4, kept so
    their saved models load; new models use :class:`RandomZoomCrop`.
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
    flip: bool = True,
) -> list:
    """The model's first layers, each random in training only and the identity at inference:
    random zoom crop (``crop_ratio`` < 1), horizontal flip (``flip``), brightness and
    contrast (``with_color_distort``). ``augment=False``: none of them.

    Layer names: random_crop, random_lr_flip, random_brightness, random_contrast.
    Each random layer gets its own seed derived from ``seed``.
    """
    if not 0.0 < crop_ratio <= 1.0:
        raise ValueError(f"crop_ratio must be in (0, 1], got {crop_ratio}")
    if not augment:
        return []
    sub = (lambda k: None) if seed is None else (lambda k: seed * 10 + k)
    layers = []
    if crop_ratio < 1.0:
        layers.append(
            RandomZoomCrop(img_size, img_size, crop_ratio, seed=sub(1), name="random_crop")
        )
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=sub(2), name="random_lr_flip"))
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
    flip: bool = True,
):
    """What the model's first layers make of one preprocessed image ``[S, S, 3]``:
    ``(count training-mode views, the inference-mode view)``, as numpy arrays (the
    inference view is the image itself)."""
    size = int(image.shape[0])
    layers = augmentation_layers(size, crop_ratio, with_color_distort, seed=seed, flip=flip)

    def apply(x, training):
        for layer in layers:
            x = layer(x, training=training)
        return np.asarray(x)

    batch = tf.repeat(tf.convert_to_tensor(image, tf.float32)[None], count, axis=0)
    return apply(batch, True), apply(batch[:1], False)[0]
