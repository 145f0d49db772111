"""Small world models with known behaviour, for tests, examples and planner debugging (torch only).

* :class:`PoseLinearWorldModel`: the latent of a frame is a fixed linear map of the end-effector pose, so the
  energy ``mean |W (p - p_goal)|`` is convex with its unique minimum at the goal pose.
* :class:`PredictorWorldModel`: any predictor with the official forward ``predictor(x [B, T*N, D],
  actions [B, T, 7], states [B, T, 7]) -> [B, T*N, D]`` as a :class:`~planners.protocol.WorldModelLike`,
  re-running the whole prefix at every step exactly like the released planning loop (slow; a reference).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from vjepa2_ac.model.pose import compute_new_pose

_POSE_BYTES = 28  # 7 float32


def l1_energy(z_pred: Tensor, z_goal: Tensor) -> Tensor:
    """``[B, 1, N, D]`` vs ``[B or 1, 1, N, D]`` -> ``[B]``: mean |z_pred - z_goal| (the released objective)."""
    diff = z_pred - z_goal
    return torch.mean(torch.abs(diff.flatten(1)), dim=-1)


def _propagate(s0: Tensor, actions: Tensor, t0: int) -> Tensor:
    """States ``[B, H, 7]`` after the H new actions ``actions[:, t0-1:]``, from the last context state."""
    state, states = s0[:, -1], []
    for h in range(t0 - 1, actions.shape[1]):
        # float64 like the released scipy pose update, then back to the state dtype
        state = compute_new_pose(state.double(), actions[:, h].double()).to(s0.dtype)
        states.append(state)
    return torch.stack(states, dim=1)


def _check_rollout_args(z0: Tensor, s0: Tensor, actions: Tensor) -> int:
    t0 = z0.shape[1]
    if s0.shape[:2] != z0.shape[:2] or s0.shape[-1] != 7:
        raise ValueError(f"s0 must be [B, T0, 7] matching z0 {tuple(z0.shape[:2])}, got {tuple(s0.shape)}")
    if actions.ndim != 3 or actions.shape[0] != z0.shape[0] or actions.shape[1] < t0 or actions.shape[2] != 7:
        raise ValueError(f"actions must be [B={z0.shape[0]}, T0-1+H >= {t0}, 7], got {tuple(actions.shape)}")
    return t0


class PoseLinearWorldModel:
    """World model whose latent is ``z[n, d] = sum_k W[n, d, k] * pose_k`` (``W`` fixed, random).

    ``encode`` reads the pose back from images made by :meth:`render` (the pose's float32 bytes), so an
    agent loop can be tested end to end. ``calls`` records every action batch passed to ``rollout``
    when ``record=True``.
    """

    def __init__(self, tokens: int = 4, dim: int = 8, seed: int = 0, record: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(tokens, dim, 7, generator=g)
        self.record = record
        self.calls: list[Tensor] = []

    def latent(self, pose: Tensor) -> Tensor:
        """``[..., 7]`` -> ``[..., N, D]``."""
        return torch.einsum("ndk,...k->...nd", self.weight.to(pose), pose)

    def rollout(self, z0: Tensor, s0: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        t0 = _check_rollout_args(z0, s0, actions)
        if self.record:
            self.calls.append(actions.detach().clone())
        states = _propagate(s0, actions, t0)
        return self.latent(states), states

    def energy(self, z_pred: Tensor, z_goal: Tensor) -> Tensor:
        return l1_energy(z_pred, z_goal)

    @staticmethod
    def render(pose: Tensor) -> Tensor:
        """Pose ``[7]`` -> a uint8 "image" ``[1, 10, 3]`` carrying its float32 bytes."""
        raw = torch.as_tensor(pose, dtype=torch.float32).reshape(7).contiguous().view(torch.uint8)
        return torch.cat([raw, raw.new_zeros(30 - _POSE_BYTES)]).reshape(1, 10, 3)

    def encode(self, frames) -> Tensor:
        """uint8 ``[B, T, 1, 10, 3]`` or ``[T, 1, 10, 3]`` from :meth:`render` -> ``[B, T, N, D]``."""
        frames = torch.as_tensor(frames)
        if frames.dtype != torch.uint8 or frames.ndim not in (4, 5):
            raise ValueError(f"frames must be uint8 [B, T, H, W, 3] or [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
        if frames.ndim == 4:
            frames = frames[None]
        b, t = frames.shape[:2]
        poses = frames.reshape(b * t, -1)[:, :_POSE_BYTES].reshape(-1).clone().view(torch.float32).reshape(b * t, 7)
        return self.latent(poses).reshape(b, t, *self.weight.shape[:2])


class PredictorWorldModel:
    """Official-signature predictor -> :class:`~planners.protocol.WorldModelLike` with full-prefix recompute.

    Step h runs ``predictor`` on all frames so far, keeps the last ``N`` output tokens and applies the
    non-affine ``layer_norm`` (as ``world_model_wrapper.step_predictor``); poses use ``compute_new_pose``
    in float64. ``encode`` is not available (pass latents).
    """

    def __init__(self, predictor: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
        self.predictor = predictor

    def rollout(self, z0: Tensor, s0: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        t0 = _check_rollout_args(z0, s0, actions)
        b, _, n, d = z0.shape
        states = _propagate(s0, actions, t0)
        reps, poses = z0, s0
        for h in range(actions.shape[1] - t0 + 1):
            t = t0 + h
            out = self.predictor(reps.flatten(1, 2), actions[:, :t], poses)[:, -n:]
            nxt = F.layer_norm(out, (out.size(-1),)).view(b, 1, n, d)
            reps = torch.cat([reps, nxt], dim=1)
            poses = torch.cat([poses, states[:, h : h + 1]], dim=1)
        return reps[:, t0:], states

    def energy(self, z_pred: Tensor, z_goal: Tensor) -> Tensor:
        return l1_energy(z_pred, z_goal)

    def encode(self, frames) -> Tensor:
        raise NotImplementedError("PredictorWorldModel has no encoder; pass latents to the planners")
