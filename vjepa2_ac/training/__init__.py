"""Training: AC post-training (``train``), the latent cache (``encode_dataset``, ``LatentCache``) and V-JEPA encoder
pretraining (``pretrain``), single process or under ``torchrun`` (DDP).

::

    from vjepa2_ac.training import TrainConfig, train
    model_dir = train(TrainConfig.from_yaml("configs/ac_small_cpu.yaml"), ["data/pickplace"], "runs/ac_small")

Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "TrainConfig": "config", "PretrainConfig": "config",
    "train": "ac_trainer", "ac_losses": "ac_trainer", "enable_activation_checkpointing": "ac_trainer",
    "encode_dataset": "latent_cache", "LatentCache": "latent_cache", "is_latent_cache": "latent_cache",
    "pretrain": "pretrain", "MaskSpec": "pretrain", "multiblock_masks": "pretrain",
    "context_encoder_forward": "pretrain", "predictor_forward": "pretrain",
    "WSDSchedule": "schedule", "param_groups": "schedule",
}
__all__ = [
    "LatentCache", "MaskSpec", "PretrainConfig", "TrainConfig", "WSDSchedule", "ac_losses", "context_encoder_forward",
    "enable_activation_checkpointing", "encode_dataset", "is_latent_cache", "multiblock_masks", "param_groups",
    "predictor_forward", "pretrain", "train",
]

if TYPE_CHECKING:  # pragma: no cover
    from vjepa2_ac.training.ac_trainer import ac_losses, enable_activation_checkpointing, train
    from vjepa2_ac.training.config import PretrainConfig, TrainConfig
    from vjepa2_ac.training.latent_cache import LatentCache, encode_dataset, is_latent_cache
    from vjepa2_ac.training.pretrain import (
        MaskSpec,
        context_encoder_forward,
        multiblock_masks,
        predictor_forward,
        pretrain,
    )
    from vjepa2_ac.training.schedule import WSDSchedule, param_groups


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"vjepa2_ac.training.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'vjepa2_ac.training' has no attribute {name!r}")
