"""Model builders: a small CNN for quick CPU runs, and MobileNetV2 transfer learning.

Both are functional Keras 3 models with the same structure as the book's classifier:

    input_images [img_size, img_size, 3] in [0, 1]
      -> augmentation (random zoom crop / flip / colour in training, identity at inference)
      -> feature extractor (small CNN | MobileNetV2)
      -> dense_hidden (num_hidden, relu) -> flower_prob (softmax)

Call :func:`build_model` inside ``strategy.scope()`` when distributing.
"""

from __future__ import annotations

import math

import keras

from .preprocess import augmentation_layers

MODEL_KINDS = ("small_cnn", "mobilenetv2")
DEFAULT_CROP_RATIO = 0.75


def build_model(
    model_kind: str = "small_cnn",
    num_classes: int = 5,
    img_size: int = 128,
    num_hidden: int = 16,
    crop_ratio: float = DEFAULT_CROP_RATIO,
    with_color_distort: bool = True,
    weights: str | None = None,
    lrate: float = 1e-3,
    seed: int | None = 42,
    l2: float = 0.0,
    augment: bool = True,
    decay_steps: int | None = None,
    compile: bool = True,
    flip: bool = True,
    alpha: float = 1.0,
    freeze_backbone: bool = True,
) -> keras.Model:
    """A compiled classifier taking float32 ``[None, img_size, img_size, 3]`` in [0, 1].

    crop_ratio / flip / with_color_distort / augment: the training-time augmentation
    (:func:`pmlv_utils.preprocess.augmentation_layers`); at inference the model sees the
    whole ``img_size`` image.
    weights (mobilenetv2 only): None (random init, whole network trained), a local
    ``.h5`` / ``.weights.h5`` file of no-top weights (e.g. the offline backbone of
    :func:`pmlv_utils.workspace.ensure_backbone`), or ``"imagenet"`` (downloads: needs the
    network). Both go through ``keras.applications.MobileNetV2(weights=...)``.
    alpha (mobilenetv2 only): width multiplier; must be the one the weights were made with.
    freeze_backbone: with pretrained weights, train only the head (transfer learning, as in
    the book); False fine-tunes the backbone too (its batch norm stays in inference mode).
    decay_steps: if given, the learning rate follows a cosine decay from ``lrate`` to
    5% of it over that many steps (the trainer passes steps per epoch x epochs).
    """
    if model_kind not in MODEL_KINDS:
        raise ValueError(f"model_kind must be one of {MODEL_KINDS}, got {model_kind!r}")
    if weights is not None and model_kind != "mobilenetv2":
        raise ValueError(f"weights= only applies to mobilenetv2, not {model_kind!r}")
    seed_of = (lambda k: None) if seed is None else (lambda k: seed * 100 + k)

    inputs = keras.Input(shape=(img_size, img_size, 3), name="input_images")
    x = inputs
    for layer in augmentation_layers(
        img_size, crop_ratio, with_color_distort, augment, seed=seed_of(1), flip=flip
    ):
        x = layer(x)
    if model_kind == "small_cnn":
        x = _small_cnn_features(x, seed_of)
    else:
        x = _mobilenetv2_features(x, img_size, weights, alpha, freeze_backbone)
    outputs = _classifier_head(x, num_hidden, num_classes, l2, seed_of)
    model = keras.Model(inputs, outputs, name=f"flowers_{model_kind}")
    if compile:
        compile_model(model, lrate, decay_steps)
    return model


def compile_model(model: keras.Model, lrate: float = 1e-3, decay_steps: int | None = None):
    """Adam (cosine decay from ``lrate`` to 5% of it over ``decay_steps``, if given), sparse
    categorical cross-entropy, accuracy."""
    learning_rate = lrate
    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(lrate, int(decay_steps), alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )


def _classifier_head(x, num_hidden: int, num_classes: int, l2: float, seed_of):
    """dense_hidden (ReLU) -> flower_prob (softmax), L2-regularised when ``l2``."""
    regularizer = keras.regularizers.l2(l2) if l2 else None
    x = keras.layers.Dense(
        num_hidden,
        activation="relu",
        kernel_regularizer=regularizer,
        kernel_initializer=keras.initializers.HeNormal(seed_of(50)),
        name="dense_hidden",
    )(x)
    return keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=regularizer,
        kernel_initializer=keras.initializers.GlorotUniform(seed_of(51)),
        name="flower_prob",
    )(x)


def _small_cnn_features(x, seed_of, filters=(32, 64, 128, 128), stem_stride=2):
    """Four conv blocks (3x3 conv, batch norm, ReLU; max-pool after the first three)
    and global average pooling: ~240k parameters. The first convolution has stride
    ``stem_stride`` (2: a 128 px image becomes 64 px feature maps, a quarter of the work of
    stride 1, ~8 s an epoch on 800 128 px images on 2 cores; the last block is img_size/16).

    BatchNormalization momentum 0.9 (Keras: 0.99): a quick run has only ~100 steps, too few
    for the slower moving averages that inference uses to settle."""
    for i, width in enumerate(filters):
        x = keras.layers.Conv2D(
            width,
            3,
            strides=stem_stride if i == 0 else 1,
            padding="same",
            use_bias=False,
            kernel_initializer=keras.initializers.HeNormal(seed_of(10 + i)),
            name=f"conv{i + 1}",
        )(x)
        x = keras.layers.BatchNormalization(momentum=0.9, synchronized=True, name=f"bn{i + 1}")(x)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
        if i < len(filters) - 1:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)


def mobilenetv2_backbone(size: int, weights=None, alpha: float = 1.0) -> keras.Model:
    """``keras.applications.MobileNetV2`` without its top, global-average pooled, for
    ``[size, size, 3]`` inputs in [-1, 1]; ``weights``: None, "imagenet" or a local file."""
    if size < 32:
        raise ValueError(f"mobilenetv2 needs images of at least 32x32, got {size}x{size}")
    try:
        return keras.applications.MobileNetV2(
            input_shape=(size, size, 3),
            alpha=alpha,
            include_top=False,
            weights=weights,
            pooling="avg",
        )
    except ValueError as e:
        if weights in (None, "imagenet"):
            raise
        raise ValueError(f"{weights}: not no-top MobileNetV2 weights of alpha={alpha} ({e})") from e


def _mobilenetv2_features(x, size: int, weights, alpha: float, freeze: bool):
    backbone = mobilenetv2_backbone(size, weights, alpha)
    pretrained = weights is not None
    backbone.trainable = not (pretrained and freeze)  # pretrained + freeze: feature extractor
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(x)  # MobileNetV2 range
    # pretrained: batch norm keeps the statistics it learnt (also when fine-tuning)
    return backbone(x, training=False if pretrained else None)


def count_params(model: keras.Model) -> dict:
    """Total and trainable parameter counts."""
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return {"total": int(model.count_params()), "trainable": trainable}
