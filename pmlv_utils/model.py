"""Model builders: a small CNN for quick CPU runs, and MobileNetV2 transfer learning.

Both are functional Keras 3 models with the same structure as the book's classifier:

    input_images [img_size, img_size, 3] in [0, 1]
      -> augmentation (random crop / flip / colour in training, centre crop at inference)
      -> feature extractor (small CNN | MobileNetV2)
      -> dense_hidden (num_hidden, relu) -> flower_prob (softmax)

Call :func:`build_model` inside ``strategy.scope()`` when distributing.
"""

from __future__ import annotations

import math

import keras

from .preprocess import augmentation_layers, crop_size

MODEL_KINDS = ("small_cnn", "mobilenetv2")
DEFAULT_CROP_RATIO = 0.75


def build_model(
    model_kind: str = "small_cnn",
    num_classes: int = 5,
    img_size: int = 64,
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
) -> keras.Model:
    """A compiled classifier taking float32 ``[None, img_size, img_size, 3]`` in [0, 1].

    weights (mobilenetv2 only): None (random init, whole network trained), a local
    ``.h5`` file of no-top weights, or ``"imagenet"`` (downloads: needs the network).
    With pretrained weights the backbone is frozen (transfer learning, as in the book).
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
        img_size, crop_ratio, with_color_distort, augment, seed=seed_of(1)
    ):
        x = layer(x)
    size = crop_size(img_size, crop_ratio)
    if model_kind == "small_cnn":
        x = _small_cnn_features(x, seed_of)
    else:
        x = _mobilenetv2_features(x, size, weights)
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


def _small_cnn_features(x, seed_of, filters=(32, 64, 128, 128)):
    """Four conv blocks (3x3 conv, batch norm, ReLU; max-pool after the first three)
    and global average pooling: ~240k parameters, ~4 s an epoch on 800 64px images.

    BatchNormalization momentum 0.9 (Keras: 0.99): a quick run has only ~100 steps, too few
    for the slower moving averages that inference uses to settle."""
    for i, width in enumerate(filters):
        x = keras.layers.Conv2D(
            width,
            3,
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


def _mobilenetv2_features(x, size: int, weights):
    if size < 32:
        raise ValueError(f"mobilenetv2 needs crops of at least 32x32, got {size}x{size}")
    backbone = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), include_top=False, weights=weights, pooling="avg"
    )
    backbone.trainable = weights is None  # pretrained: frozen feature extractor
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(x)  # MobileNetV2 range
    return backbone(x, training=False if weights is not None else None)


def count_params(model: keras.Model) -> dict:
    """Total and trainable parameter counts."""
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return {"total": int(model.count_params()), "trainable": trainable}
