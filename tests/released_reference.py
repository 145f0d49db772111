"""The released planning pipeline's behaviour, re-implemented as a baseline and test oracle.

Written from the documented behaviour of the released code (predictor forward, world-model step, ``cem``); it
reproduces how the released code computes, not its text:

* :func:`released_predictor_forward` evaluates an :class:`~vjepa2_ac.model.predictor.ACPredictor`'s weights the way
  the released module does: RoPE angles recomputed on every call, action/state tokens projected and rotated
  separately and concatenated back, a slice of a prebuilt full-size mask, no cache; plain ``F.linear`` / ``F.gelu``
  / ``F.scaled_dot_product_attention`` on the weights (not our modules' forwards or kernels).
* :func:`released_world_model_step` re-runs the predictor on the whole trajectory so far and updates poses one
  sample at a time with scipy on the CPU.
* :func:`released_cem` is the released CEM (xyz + gripper searched, per-axis clip, "momentum" on the old
  mean/std, unbiased top-k std, rounding of the gripper), with draws from a ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation
from torch import Tensor

from vjepa2_ac.model.predictor import ACPredictor, rope_rotary_dim

# ------------------------------------------------------------------------------------------ predictor forward


def _linear(layer: torch.nn.Linear, x: Tensor) -> Tensor:
    return F.linear(x, layer.weight, layer.bias)


def _rotate_released(x: Tensor, pos: Tensor) -> Tensor:
    """Angles recomputed per call in x's dtype, frequencies tiled (the released quirk), adjacent pairs."""
    half = x.shape[-1] // 2
    freqs = 1.0 / 10000 ** (torch.arange(half, dtype=x.dtype, device=x.device) / half)
    angles = pos.to(x.dtype)[:, None] * freqs[None]
    sin, cos = angles.sin().repeat(1, 2), angles.cos().repeat(1, 2)
    pairs = x.unflatten(-1, (-1, 2))
    partner = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos + partner * sin


def _released_attention(block, x: Tensor, mask: Tensor, T: int, grid: int, cond: int) -> Tensor:
    attn = block.attn
    B, S, C = x.shape
    heads, hd = attn.num_heads, attn.head_dim
    d = rope_rotary_dim(hd)
    steps = x.view(B, T, cond + grid * grid, C)

    def project(tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        qkv = _linear(attn.qkv, tokens).unflatten(-1, (3, heads, hd)).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    t_ids = torch.arange(T, device=x.device)
    cq, ck, cv = [], [], []
    for i in range(cond):  # each conditioning token: temporal chunk rotated by its step index
        q, k, v = project(steps[:, :, i])
        cq.append(torch.cat([_rotate_released(q[..., :d], t_ids), q[..., d:]], -1))
        ck.append(torch.cat([_rotate_released(k[..., :d], t_ids), k[..., d:]], -1))
        cv.append(v)
    q, k, v = project(steps[:, :, cond:].flatten(1, 2))
    ids = torch.arange(T * grid * grid, device=x.device)
    positions = (ids // (grid * grid), (ids % (grid * grid)) // grid, ids % grid)
    q = torch.cat([_rotate_released(q[..., j * d:(j + 1) * d], p) for j, p in enumerate(positions)] + [q[..., 3 * d:]], -1)
    k = torch.cat([_rotate_released(k[..., j * d:(j + 1) * d], p) for j, p in enumerate(positions)] + [k[..., 3 * d:]], -1)

    def merge(frame: Tensor, conds: list[Tensor]) -> Tensor:
        frame = frame.view(B, heads, T, grid * grid, hd)
        c = torch.stack(conds, dim=3)  # [B, heads, T, cond, hd]
        return torch.cat([c, frame], dim=3).flatten(2, 3)

    out = F.scaled_dot_product_attention(merge(q, cq), merge(k, ck), merge(v, cv), attn_mask=mask)
    return _linear(attn.proj, out.transpose(1, 2).reshape(B, S, C))


def released_predictor_forward(pred: ACPredictor, x: Tensor, actions: Tensor, states: Tensor) -> Tensor:
    """Official signature: ``x [B, T*N, D]``, ``actions, states [B, T, 7]`` -> ``[B, T*N, D]``."""
    c = pred.config
    if c.predict_residual:
        raise ValueError("the released predictor has no predict_residual option; use a predictor built with "
                         "predict_residual=False")
    grid, cond = c.grid_size, c.cond_tokens
    B, TN, _ = x.shape
    T = TN // (grid * grid)
    h = _linear(pred.predictor_embed, x).view(B, T, grid * grid, -1)
    a = _linear(pred.action_encoder, actions).unsqueeze(2)
    s = _linear(pred.state_encoder, states).unsqueeze(2)
    h = torch.cat([a, s, h], dim=2).flatten(1, 2)
    L = cond + grid * grid
    full = c.max_steps * L  # the released module slices a prebuilt [max_steps*L, max_steps*L] mask
    block = torch.arange(full, device=x.device) // L
    mask = (block[None, :] <= block[:, None])[: T * L, : T * L]
    for blk in pred.predictor_blocks:
        h = h + _released_attention(blk, blk.norm1(h), mask, T, grid, cond)
        h = h + _linear(blk.mlp.fc2, F.gelu(_linear(blk.mlp.fc1, blk.norm2(h))))
    h = h.view(B, T, L, -1)[:, :, cond:].flatten(1, 2)
    return _linear(pred.predictor_proj, pred.predictor_norm(h))


# ------------------------------------------------------------------------------------------ world-model step


def released_compute_new_pose(pose: Tensor, action: Tensor) -> Tensor:
    """``pose, action [S, 1, 7]`` -> ``[S, 1, 7]``; scipy, one sample at a time on the CPU."""
    p = pose[:, 0].detach().cpu().numpy()
    a = action[:, 0].detach().cpu().numpy()
    rows = []
    for pi, ai in zip(p, a):
        rot = Rotation.from_matrix(Rotation.from_euler("xyz", ai[3:6]).as_matrix()
                                   @ Rotation.from_euler("xyz", pi[3:6]).as_matrix())
        rows.append(np.concatenate([pi[:3] + ai[:3], rot.as_euler("xyz"), np.clip(pi[6:] + ai[6:], 0.0, 1.0)]))
    return torch.from_numpy(np.stack(rows)).to(pose.device, pose.dtype)[:, None]


def released_world_model_step(predictor: Callable, tokens_per_frame: int) -> Callable:
    """``step(reps [S, t, N, D], actions [S, t, 7], poses [S, t, 7]) -> (next rep [S, 1, N, D], pose [S, 1, 7])``
    re-running ``predictor`` (official signature) on the whole trajectory."""

    def step(reps: Tensor, actions: Tensor, poses: Tensor) -> tuple[Tensor, Tensor]:
        S, _, N, D = reps.shape
        out = predictor(reps.flatten(1, 2), actions, poses)[:, -tokens_per_frame:]
        nxt = F.layer_norm(out, (D,)).view(S, 1, N, D)
        return nxt, released_compute_new_pose(poses[:, -1:], actions[:, -1:])

    return step


# ------------------------------------------------------------------------------------------ CEM


RELEASED_WORLD_MODEL_ARGS = dict(horizon=2, samples=400, topk=10, iterations=10, momentum_mean=0.15,
                                 momentum_std=0.15, maxnorm=0.05)


def released_cem(z0: Tensor, s0: Tensor, z_goal: Tensor, step: Callable, *, horizon: int = 1, iterations: int = 100,
                 samples: int = 100, topk: int = 10, maxnorm: float = 0.05, momentum_mean: float = 0.25,
                 momentum_std: float = 0.95, momentum_mean_gripper: float = 0.15, momentum_std_gripper: float = 0.15,
                 axis: dict[int, float] | None = None, close_gripper: int | None = None,
                 generator: torch.Generator | None = None, history: list | None = None) -> Tensor:
    """Released ``cem`` semantics (defaults of the released function). ``z0, z_goal [1, 1, N, D]``,
    ``s0 [1, 1, 7]``, ``step`` as from :func:`released_world_model_step`. Returns ``[horizon, 7]``.

    ``axis`` maps an index of the searched 4-vector ``[dx, dy, dz, dg]`` to a fixed value. ``history`` receives
    ``(mean [H, 4], std [H, 4])`` after every iteration."""
    axis = axis or {}
    device = z0.device
    ctx_z, ctx_s = z0.expand(samples, -1, -1, -1), s0.expand(samples, -1, -1)
    goal = z_goal.reshape(1, -1)
    mean = torch.zeros(horizon, 4, device=device)
    std = torch.tensor([maxnorm, maxnorm, maxnorm, 1.0], device=device).repeat(horizon, 1)
    for i, value in axis.items():
        mean[:, i] = value
    m_mean = torch.tensor([momentum_mean] * 3 + [momentum_mean_gripper], device=device)
    m_std = torch.tensor([momentum_std] * 3 + [momentum_std_gripper], device=device)
    zeros = torch.zeros(samples, 3, device=device)
    for _ in range(iterations):
        reps, poses, acts = ctx_z, ctx_s, torch.zeros(samples, 0, 7, device=device)
        for h in range(horizon):
            draw = torch.randn(samples, 4, device=device, generator=generator) * std[h] + mean[h]
            xyz = draw[:, :3].clamp(-maxnorm, maxnorm)
            grip = draw[:, 3:].clamp(-0.75, 0.75)
            searched = torch.cat([xyz, grip], -1)
            for i, value in axis.items():
                searched[:, i] = value
            act = torch.cat([searched[:, :3], zeros, searched[:, 3:]], -1)
            if close_gripper is not None and h >= close_gripper:
                act[:, 6] = 1.0
            acts = torch.cat([acts, act[:, None]], 1)
            nxt, pose = step(reps, acts, poses)
            reps, poses = torch.cat([reps, nxt], 1), torch.cat([poses, pose], 1)
        energy = (reps[:, -1].reshape(samples, -1) - goal).abs().mean(-1)
        elite = acts[energy.topk(topk, largest=False).indices][..., [0, 1, 2, 6]]  # [k, H, 4]
        mean = (1 - m_mean) * elite.mean(0) + m_mean * mean
        std = (1 - m_std) * elite.std(0) + m_std * std
        if history is not None:
            history.append((mean.clone(), std.clone()))
    grip = torch.where(mean[:, 3:].abs() < 0.25, torch.zeros_like(mean[:, 3:]), mean[:, 3:])
    return torch.cat([mean[:, :3], torch.zeros(horizon, 3, device=device), grip], -1)
