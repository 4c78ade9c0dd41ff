"""Pretrain a MobileNetV2 backbone on the shapes task and save it as a no-top weights file.

The file is what ``keras.applications.MobileNetV2(include_top=False, weights=<file>)`` loads
(the same code path as ``weights="imagenet"``), so
``model.build_model("mobilenetv2", weights=<file>, alpha=<its alpha>)`` and the trainer's
``TrainConfig(weights=..., alpha=...)`` use it like the ImageNet weights. The folder::

    mobilenetv2_backbone.weights.h5   the backbone's weights (no top, any input size)
    backbone.json                     settings, pretext accuracy, wall and CPU seconds
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import keras
import tensorflow as tf

from .. import safe_io
from ..model import compile_model, mobilenetv2_backbone
from . import shapes

PRETRAIN_VERSION = "2"  # bump when the weights of the same settings change meaning
WEIGHTS_FILE = "mobilenetv2_backbone.weights.h5"
INFO_FILE = "backbone.json"


@dataclass(frozen=True)
class BackboneConfig:
    """The pretraining settings (they name the cached artifact).

    img_size: side of the pretext images; the weights work at any input size.
    alpha: MobileNetV2's width multiplier (0.35: ~0.4 M parameters, fast on a CPU).
    images_per_class: training images per shape class (24 classes), plus
    ``valid_per_class`` held out to report the pretext accuracy.
    lrate: Adam's learning rate, constant (measured: a MobileNetV2 from scratch needs ~5
    epochs at 2e-3 before it leaves chance; a cosine decay ends that too soon).
    """

    img_size: int = 64
    alpha: float = 0.35
    images_per_class: int = 300
    valid_per_class: int = 20
    epochs: int = 20
    batch_size: int = 64
    lrate: float = 2e-3
    seed: int = 0

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "shapes": shapes.GENERATOR_VERSION}


def weights_path(folder: str | os.PathLike) -> str:
    """The weights file in a backbone folder."""
    return os.path.join(str(folder), WEIGHTS_FILE)


def read_info(folder: str | os.PathLike) -> dict:
    """``backbone.json`` of a backbone folder (its settings, accuracy and timings)."""
    return safe_io.read_json(os.path.join(str(folder), INFO_FILE))


def pretext_model(config: BackboneConfig) -> tuple[keras.Model, keras.Model]:
    """``(classifier, backbone)``: uint8-range images -> random flip -> MobileNetV2 (no top,
    pooled) -> 24-way softmax; the backbone is the part that is saved."""
    size = config.img_size
    inputs = keras.Input((size, size, 3), name="shape_images")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_minus1_1")(inputs)
    x = keras.layers.RandomFlip("horizontal", seed=config.seed, name="random_lr_flip")(x)
    backbone = mobilenetv2_backbone(size, None, config.alpha)
    fast_batch_norm_statistics(backbone)
    outputs = keras.layers.Dense(len(shapes.SHAPES), activation="softmax", name="shape_prob")(
        backbone(x)
    )
    return keras.Model(inputs, outputs, name="shapes_pretext"), backbone


def fast_batch_norm_statistics(network: keras.Model, momentum: float = 0.9) -> None:
    """Keras's MobileNetV2 keeps batch-norm moving statistics with momentum 0.999: after the
    ~2,000 steps of a CPU pretraining they are still near their initial values, and a model
    that uses them (validation, the frozen backbone later) sees wrong activations."""
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def pretrain_backbone(
    out_dir: str | os.PathLike, config: BackboneConfig | None = None, verbose: int = 2, log=print
) -> dict:
    """Generate the shapes, train the pretext classifier, save the backbone's weights and
    ``backbone.json`` in ``out_dir``; returns the info (accuracy, wall and CPU seconds)."""
    config = config or BackboneConfig()
    os.makedirs(str(out_dir), exist_ok=True)
    wall, cpu = time.perf_counter(), time.process_time()
    train_x, train_y = shapes.make_shapes(config.images_per_class, config.seed, config.img_size)
    valid_x, valid_y = shapes.make_shapes(
        config.valid_per_class, config.seed, config.img_size, offset=config.images_per_class
    )
    data_seconds = time.perf_counter() - wall
    log(f"pretext data: {len(train_x)} + {len(valid_x)} images ({data_seconds:.0f} s)")
    keras.utils.set_random_seed(config.seed)
    model, backbone = pretext_model(config)
    compile_model(model, config.lrate)
    train_ds = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(len(train_x), seed=config.seed)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    history = model.fit(
        train_ds,
        validation_data=(valid_x, valid_y),
        epochs=config.epochs,
        verbose=verbose,
        shuffle=False,
    ).history
    backbone.save_weights(weights_path(out_dir))
    info = {
        "settings": config.to_dict(),
        "version": PRETRAIN_VERSION,
        "classes": list(shapes.SHAPES),
        "weights_file": WEIGHTS_FILE,
        "alpha": config.alpha,
        "pretext_train_accuracy": float(history["accuracy"][-1]),
        "pretext_val_accuracy": float(history["val_accuracy"][-1]),
        "history": {k: [float(v) for v in vs] for k, vs in history.items()},
        "backbone_params": int(backbone.count_params()),
        "data_seconds": round(data_seconds, 1),
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
    }
    safe_io.write_json(os.path.join(str(out_dir), INFO_FILE), info)
    log(
        f"backbone: pretext val accuracy {info['pretext_val_accuracy']:.3f} "
        f"({info['wall_seconds']:.0f} s wall, {info['cpu_seconds']:.0f} s CPU)"
    )
    return info
