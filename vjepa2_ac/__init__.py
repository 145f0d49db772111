"""vjepa2-ac: robot planning with the V-JEPA 2-AC world model.

Public API::

    from vjepa2_ac import Encoder, ACPredictor, ACPredictorConfig, WorldModel, RobotSpace

Heavy modules (transformers) are imported on first use so that ``import vjepa2_ac`` stays fast.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:  # the one place the version is typed is pyproject.toml
    __version__ = version("vjepa2-ac")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {
    "Encoder": "vjepa2_ac.model.encoder",
    "ACPredictor": "vjepa2_ac.model.predictor",
    "ACPredictorConfig": "vjepa2_ac.model.predictor",
    "WorldModel": "vjepa2_ac.model.world_model",
    "RobotSpace": "vjepa2_ac.model.space",
    "DROID_FRANKA": "vjepa2_ac.model.space",
}

__all__ = ["ACPredictor", "ACPredictorConfig", "DROID_FRANKA", "Encoder", "RobotSpace", "WorldModel", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from vjepa2_ac.model.encoder import Encoder
    from vjepa2_ac.model.predictor import ACPredictor, ACPredictorConfig
    from vjepa2_ac.model.space import DROID_FRANKA, RobotSpace
    from vjepa2_ac.model.world_model import WorldModel


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vjepa2_ac' has no attribute {name!r}")
