"""End-effector pose algebra in the DROID convention, vectorised in torch.

State  ``[x, y, z, roll, pitch, yaw, g]``: position (m), extrinsic ``"xyz"`` Euler angles (rad, as scipy's
``Rotation.from_euler("xyz", ...)``), gripper closedness ``g`` in [0, 1].
Action ``[dx, dy, dz, droll, dpitch, dyaw, dg]``: ``xyz' = xyz + dxyz``, ``R' = R(d) · R``, ``g' = clip(g + dg, 0, 1)``.

All functions take any leading batch shape ``[..., 7]`` and are differentiable (except at the gripper clip).
"""

from __future__ import annotations

import torch
from torch import Tensor

POSE_DIM = 7


def euler_xyz_to_matrix(euler: Tensor) -> Tensor:
    """Extrinsic xyz Euler angles ``[..., 3]`` -> rotation matrices ``[..., 3, 3]`` (``R = Rz · Ry · Rx``)."""
    cr, cp, cy = torch.cos(euler).unbind(-1)
    sr, sp, sy = torch.sin(euler).unbind(-1)
    row0 = torch.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], -1)
    row1 = torch.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], -1)
    row2 = torch.stack([-sp, cp * sr, cp * cr], -1)
    return torch.stack([row0, row1, row2], -2)


def matrix_to_euler_xyz(matrix: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> extrinsic xyz Euler angles ``[..., 3]`` in scipy's ranges.

    roll, yaw in (-pi, pi], pitch in [-pi/2, pi/2]. At gimbal lock (|pitch| = pi/2) scipy sets the third
    angle (yaw) to zero and folds the rotation into roll; this does the same.
    """
    r00, r10, r20 = matrix[..., 0, 0], matrix[..., 1, 0], matrix[..., 2, 0]
    r21, r22 = matrix[..., 2, 1], matrix[..., 2, 2]
    cos_pitch = torch.sqrt(r00 * r00 + r10 * r10)
    pitch = torch.atan2(-r20, cos_pitch)
    eps = 1e-7 if matrix.dtype == torch.float64 else 1e-6
    locked = cos_pitch < eps
    roll = torch.where(locked, torch.atan2(-matrix[..., 1, 2], matrix[..., 1, 1]), torch.atan2(r21, r22))
    yaw = torch.where(locked, torch.zeros_like(r00), torch.atan2(r10, r00))
    # In the locked case the sign of pitch decides how roll absorbs yaw: R = Rz(0) Ry(+-pi/2) Rx(roll).
    roll = torch.where(locked & (r20 > 0), torch.atan2(-matrix[..., 0, 1], matrix[..., 1, 1]), roll)
    roll = torch.where(locked & (r20 <= 0), torch.atan2(matrix[..., 0, 1], matrix[..., 1, 1]), roll)
    return torch.stack([roll, pitch, yaw], -1)


def compute_new_pose(pose: Tensor, action: Tensor) -> Tensor:
    """Apply action ``[..., 7]`` to pose ``[..., 7]`` -> ``[..., 7]`` (official ``compute_new_pose``): the DROID
    Franka space's :meth:`~vjepa2_ac.model.space.RobotSpace.advance`."""
    from vjepa2_ac.model.space import DROID_FRANKA

    _check_last_dim(pose, "pose")
    _check_last_dim(action, "action")
    return DROID_FRANKA.advance(pose, action)


def poses_to_diff(pose: Tensor, next_pose: Tensor) -> Tensor:
    """Action taking ``pose`` to ``next_pose`` (both ``[..., 7]``): ``[dxyz, euler(R1 · R0^T), dg]``."""
    from vjepa2_ac.model.space import DROID_FRANKA

    _check_last_dim(pose, "pose")
    _check_last_dim(next_pose, "next_pose")
    return DROID_FRANKA.diff(pose, next_pose)


def states_to_actions(states: Tensor) -> Tensor:
    """Per-step actions between consecutive states: ``[..., T, 7] -> [..., T-1, 7]``."""
    return poses_to_diff(states[..., :-1, :], states[..., 1:, :])


def _check_last_dim(x: Tensor, name: str) -> None:
    if x.shape[-1] != POSE_DIM:
        raise ValueError(f"{name} must have last dimension {POSE_DIM} ([x,y,z,roll,pitch,yaw,g]), got shape {tuple(x.shape)}")
