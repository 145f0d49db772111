"""Load a world model by name together with its planning settings, and make the simulated env it plans in.

    wm, planning, description = load_world_model("vjepa2-ac-sim-small")     # bundled, a directory or a hub id
    env = make_env(planning, "pick-place", object="cube")                    # its camera and image size

Loading a model *with its planning file* belongs here, not in the model core (``vjepa2_ac.model`` knows nothing
about planning).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vjepa2_ac.agent.planning import PlanningConfig

if TYPE_CHECKING:
    from vjepa2_ac.model.world_model import WorldModel

BUNDLED_MODEL = "vjepa2-ac-sim-small"
RELEASED_ENCODER = "facebook/vjepa2-vitg-fpc64-256"


class ModelNotAvailable(FileNotFoundError):
    """The requested world model cannot be found or fetched (message says what to pass instead)."""


def load_world_model(model: str | os.PathLike = BUNDLED_MODEL, *, checkpoint: str | os.PathLike | None = None,
                     device: str | torch.device = "cpu", planning: str | os.PathLike | None = None,
                     ) -> tuple[WorldModel, PlanningConfig, str]:
    """World model + its planning settings + a one-line description.

    ``model``: a local ``save_pretrained`` directory, a bundled model name, a hub repo id, or (with
    ``checkpoint``, a released ``vjepa2-ac-vitg.pt`` path or URL) the encoder's hub id / directory, e.g.
    ``facebook/vjepa2-vitg-fpc64-256``. ``planning``: a ``planning.json`` overriding the model's own.
    Raises :class:`ModelNotAvailable` (one clear line) when the model cannot be found or fetched.
    """
    from vjepa2_ac.model import bundled
    from vjepa2_ac.model.checkpoint import CheckpointError
    from vjepa2_ac.model.world_model import WorldModel, resolve_model_dir

    check_device(device)
    name = os.fspath(model)
    try:
        if checkpoint is not None:
            from vjepa2_ac.model.checkpoint import is_url
            from vjepa2_ac.model.encoder import Encoder

            if not is_url(checkpoint) and not Path(checkpoint).expanduser().is_file():
                raise ModelNotAvailable(f"checkpoint file not found: {os.fspath(checkpoint)} (download "
                                        "https://dl.fbaipublicfiles.com/vjepa2/vjepa2-ac-vitg.pt or pass its URL)")

            encoder = Encoder.from_pretrained(name, device=device)
            wm = WorldModel.from_official_checkpoint(checkpoint, encoder=encoder, device=device)
            model_dir = None
            description = f"released AC predictor {os.fspath(checkpoint)} + encoder {name}"
        else:
            if name == BUNDLED_MODEL and name not in bundled.MODELS and not Path(name).is_dir():
                raise ModelNotAvailable(
                    f"the bundled world model {BUNDLED_MODEL!r} is not installed in this copy of vjepa2-ac "
                    f"(looked in {bundled.MODELS_ROOT}); pass --model DIR (a directory written by "
                    "WorldModel.save_pretrained, e.g. by `vjepa2-ac train`), a hub repo id, or --model "
                    f"{RELEASED_ENCODER} --checkpoint vjepa2-ac-vitg.pt")
            model_dir = resolve_model_dir(name)
            wm = WorldModel.from_pretrained(model_dir, device=device)
            description = f"{name} ({model_dir})"
    except ModelNotAvailable:
        raise
    except (OSError, ConnectionError, CheckpointError, KeyError) as err:
        raise ModelNotAvailable(f"cannot load world model {name!r}: {err}") from err
    if wm.encoder is None:
        raise ModelNotAvailable(f"world model {name!r} has no encoder; planning from images needs one")
    config = PlanningConfig.load(planning if planning is not None else model_dir)
    if checkpoint is not None and planning is None:  # the released model plans from 256 px DROID-like views
        config.image_size = wm.encoder.crop_size
    return wm.eval(), config, description


def check_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, or a ``ValueError`` naming it when it is malformed or not available here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device ({err})") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(dev.type, True):
        raise ValueError(f"device {device!r}: {dev.type} is not available on this machine (use --device cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def make_env(planning: PlanningConfig, task: str, *, object: str = "cube", backend: str = "mujoco",
             max_steps: int | None = None, **env_kwargs: Any):
    """``gymnasium.make`` for ``task`` with the planning config's camera and image size (imports ``envs``)."""
    import gymnasium as gym

    import envs  # noqa: F401  (registers the ids)

    steps = max_steps or planning.task(task).max_steps
    return gym.make(planning.env_id(task), max_episode_steps=steps, render_mode="rgb_array",
                    **planning.env_kwargs_for(task, object=object, backend=backend, **env_kwargs))


__all__ = ["BUNDLED_MODEL", "RELEASED_ENCODER", "ModelNotAvailable", "check_device", "load_world_model", "make_env"]
