"""End-effector pose helpers in numpy (the DROID convention; ``envs`` must not import torch).

State  ``[x, y, z, roll, pitch, yaw, g]``: base-frame position (m), extrinsic ``"xyz"`` Euler angles (rad),
gripper closedness ``g`` in [0, 1] (0 open).
Action ``[dx, dy, dz, droll, dpitch, dyaw, dg]``: ``xyz' = xyz + dxyz``, ``R' = R(d) · R``, ``g' = clip(g + dg, 0, 1)``.
Same maths as ``vjepa2_ac.model.pose`` (torch), checked against each other in the tests.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

STATE_DIM = 7


def apply_delta(state: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``state [7] ⊕ delta [7] -> [7]`` (float64), rotation composed in the base frame."""
    state = np.asarray(state, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    rot = Rotation.from_euler("xyz", delta[3:6]) * Rotation.from_euler("xyz", state[3:6])
    grip = np.clip(state[6] + delta[6], 0.0, 1.0)
    return np.concatenate([state[:3] + delta[:3], rot.as_euler("xyz"), [grip]])


def state_from_pose(position: np.ndarray, quat_xyzw: np.ndarray, closedness: float) -> np.ndarray:
    """Base-frame position ``[3]``, quaternion ``[4]`` (x, y, z, w) and closedness -> state ``[7]``."""
    euler = Rotation.from_quat(np.asarray(quat_xyzw, dtype=np.float64)).as_euler("xyz")
    return np.concatenate([np.asarray(position, dtype=np.float64), euler, [float(closedness)]])


def state_to_pose(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """State ``[7]`` -> (position ``[3]``, quaternion ``[4]`` in x, y, z, w order)."""
    state = np.asarray(state, dtype=np.float64)
    return state[:3].copy(), Rotation.from_euler("xyz", state[3:6]).as_quat()


def rotation_angle(euler_a: np.ndarray, euler_b: np.ndarray | None = None) -> float:
    """Angle (rad) of ``R(a)`` or, given ``b``, of the relative rotation ``R(b) · R(a)^T``."""
    rot = Rotation.from_euler("xyz", euler_a)
    if euler_b is not None:
        rot = Rotation.from_euler("xyz", euler_b) * rot.inv()
    return float(rot.magnitude())


def closedness_to_width(closedness: float, max_width: float) -> float:
    """DROID gripper closedness in [0, 1] -> finger opening width (m): ``max_width · (1 - g)``."""
    return float(max_width) * (1.0 - float(np.clip(closedness, 0.0, 1.0)))


def width_to_closedness(width: float, max_width: float) -> float:
    """Finger opening width (m) -> closedness ``1 - width / max_width`` clipped to [0, 1]."""
    if max_width <= 0:
        raise ValueError(f"max_width must be > 0, got {max_width}")
    return float(np.clip(1.0 - float(width) / float(max_width), 0.0, 1.0))
