"""Energy landscapes: one-step energies over a grid of xyz moves around the current pose (the paper's figure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass
class Landscape:
    """One-step energies over a grid of xyz deltas (rotation and gripper deltas 0).

    deltas: ``[G]`` offsets (m) per axis; energies: ``[G, G, G]`` indexed ``(dx, dy, dz)``; actions ``[G^3, 7]``
    (dz fastest, the official notebook's order); argmin_delta ``[3]``; reference_delta ``[3]`` or None
    (e.g. the ground-truth move between the example frames).
    """

    deltas: np.ndarray
    energies: np.ndarray
    actions: np.ndarray
    argmin_delta: np.ndarray
    reference_delta: np.ndarray | None = None


def landscape_actions(grid: int = 5, radius: float = 0.075) -> Tensor:
    """``[grid^3, 7]`` actions: xyz deltas on ``linspace(-radius, radius, grid)`` per axis (dz fastest)."""
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an int >= 2, got {grid!r}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius!r}")
    d = torch.linspace(-radius, radius, grid, dtype=torch.float32)
    xyz = torch.stack(torch.meshgrid(d, d, d, indexing="ij"), -1).reshape(-1, 3)
    return torch.cat([xyz, xyz.new_zeros(xyz.shape[0], 4)], dim=1)


@torch.no_grad()
def energy_landscape(world_model: Any, frame: Any, goal: Any, state: Any, *, grid: int = 5, radius: float = 0.075,
                     reference_delta: Any = None, chunk_size: int | None = None) -> Landscape:
    """Energies of every one-step move on a ``grid^3`` lattice of xyz deltas in ``[-radius, radius]``.

    frame, goal: uint8 images ``[H, W, 3]`` (encoded here) or latents ``[1, 1, N, D]``; state: ``[7]``.
    """
    z0, z_goal = _as_latent(world_model, frame, "frame"), _as_latent(world_model, goal, "goal")
    device = z0.device
    s0 = torch.as_tensor(np.asarray(state, np.float32) if not isinstance(state, Tensor) else state)
    if s0.shape != (7,):
        raise ValueError(f"state must be [7] = [x, y, z, roll, pitch, yaw, g], got shape {tuple(s0.shape)}")
    actions = landscape_actions(grid, radius).to(device)
    b = actions.shape[0]
    z_pred, _ = world_model.rollout(z0.expand(b, -1, -1, -1), s0.to(device, torch.float32).expand(b, 1, 7),
                                    actions[:, None], chunk_size=chunk_size)
    energies = world_model.energy(z_pred, z_goal).float().cpu()
    best = int(energies.argmin())
    ref = None if reference_delta is None else np.asarray(reference_delta, float)[:3]
    return Landscape(deltas=np.linspace(-radius, radius, grid), energies=energies.reshape(grid, grid, grid).numpy(),
                     actions=actions.cpu().numpy(), argmin_delta=actions[best, :3].cpu().numpy(), reference_delta=ref)


def _as_latent(world_model: Any, x: Any, name: str) -> Tensor:
    if isinstance(x, Tensor) and x.is_floating_point():
        if x.ndim != 4 or x.shape[:2] != (1, 1):
            raise ValueError(f"{name} latents must be [1, 1, N, D], got {tuple(x.shape)}")
        return x.to(world_model.device)
    img = torch.from_numpy(np.array(x)) if not isinstance(x, Tensor) else x  # a copy: frames may be read-only
    if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"{name} must be a uint8 image [H, W, 3] or latents [1, 1, N, D], "
                         f"got {img.dtype} {tuple(img.shape)}")
    return world_model.encode(img[None])


__all__ = ["Landscape", "energy_landscape", "landscape_actions"]
