"""The official repository's example trajectory: two real Franka lab frames and their states (MIT, Meta Platforms)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

FRANKA_EXAMPLE = Path(__file__).parent.parent / "assets" / "franka_example_traj.npz"


def load_franka_example(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The official repository's example (two real Franka lab frames, MIT, Meta Platforms).

    Returns ``frames`` uint8 ``[2, 256, 256, 3]``, ``states`` float32 ``[2, 7]`` and ``gt_action`` ``[7]`` (the
    move from frame 0 to frame 1, ``poses_to_diff``)."""
    from vjepa2_ac.model.pose import poses_to_diff

    path = Path(path) if path is not None else FRANKA_EXAMPLE
    if not path.is_file():
        raise FileNotFoundError(f"Franka example trajectory not found: {path}")
    with np.load(path) as data:
        frames = np.asarray(data["observations"][0])
        states = np.asarray(data["states"][0], np.float32)
    gt = poses_to_diff(torch.from_numpy(states[0]).double(), torch.from_numpy(states[1]).double()).numpy()
    return {"frames": frames, "states": states, "gt_action": gt.astype(np.float32)}


__all__ = ["FRANKA_EXAMPLE", "load_franka_example"]
