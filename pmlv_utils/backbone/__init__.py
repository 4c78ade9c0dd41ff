"""Transfer learning offline: a MobileNetV2 backbone pretrained on a task the project draws.

    folder = workspace.ensure_backbone()          # once, cached (pretrain.pretrain_backbone)
    TrainConfig(model_kind="mobilenetv2", weights=backbone.weights_path(folder), alpha=0.35)

Submodules:

    shapes    -> the pretext task: 24 shape classes on plain, noisy or patterned backgrounds
    pretrain  -> BackboneConfig, pretrain_backbone: train, save the no-top weights file
    transfer  -> fine_tune_table: few flower labels, from scratch vs the frozen backbone
"""

from . import pretrain, shapes, transfer
from .pretrain import BackboneConfig, pretrain_backbone, read_info, weights_path
from .transfer import fine_tune_table, subset_per_class

__all__ = [
    "BackboneConfig",
    "fine_tune_table",
    "pretrain",
    "pretrain_backbone",
    "read_info",
    "shapes",
    "subset_per_class",
    "transfer",
    "weights_path",
]
