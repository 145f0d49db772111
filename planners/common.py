"""Pieces shared by all planners: the common config fields, input checks and batched energy evaluation."""

from __future__ import annotations

import contextlib
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from planners.constraints import ActionSpace, Constraint
from planners.protocol import NonFiniteError, WorldModelLike
from vjepa2_ac.model.space import DROID_FRANKA, RobotSpace, robot_space_of

EnergyOn = Literal["final", "sum"]
_AUTOCAST_DTYPES = (None, "auto", torch.float32, torch.bfloat16, torch.float16)


_NUMBER_TYPES = {"int": (numbers.Integral,), "float": (numbers.Real,), "bool": (bool, np.bool_)}


def _check_types(config: object) -> None:
    """``ValueError`` naming the field when a config field annotated ``int`` / ``float`` / ``bool`` (optionally
    ``| None``) gets another type (``samples=16.5``, ``horizon="2"``, ``iterations=True``) or a float field a NaN."""
    import math
    from dataclasses import fields

    for f in fields(config):
        kind, optional = str(f.type).replace(" ", ""), False
        if kind.endswith("|None"):
            kind, optional = kind.removesuffix("|None"), True
        if kind not in _NUMBER_TYPES:
            continue
        value = getattr(config, f.name)
        if value is None and optional:
            continue
        ok = isinstance(value, _NUMBER_TYPES[kind]) and (kind == "bool" or not isinstance(value, bool))
        if not ok or (kind == "float" and not math.isfinite(value)):
            expected = {"int": "an int", "float": "a finite number", "bool": "true or false"}[kind]
            raise ValueError(f"{type(config).__name__}.{f.name} must be {expected}{' or None' if optional else ''}, "
                            f"got {value!r}")


@dataclass
class SearchConfig:
    """Fields every planner config has.

    horizon: number of planned actions H.
    maxnorm, constraint, search_rotation, rotation_maxnorm, gripper_max, axis, close_gripper, open_gripper,
        joint_maxnorm: see :class:`planners.constraints.ActionSpace` (``joint_maxnorm`` only matters for a robot
        space with joints).
    energy: ``"final"`` scores the last predicted frame (released), ``"sum"`` sums the energies of all H.
    warm_start: start from the previous plan shifted by one step (call ``planner.reset()`` per episode).
    dtype: autocast dtype for the world-model calls (``torch.bfloat16`` for speed); ``None`` = no autocast;
        ``"auto"`` = bf16 where the device computes it natively (see :func:`native_low_precision`), else none.
    evaluate_plan: roll the returned plan out once more to report its energy (``Plan.energy``).
    rescore: with a low-precision ``dtype``, re-evaluate the ``rescore`` lowest-energy samples of every iteration
        in float32 before ranking them (bf16 rounding, ~1e-3 relative, reorders near-equal energies; 0 = off).
    """

    horizon: int = 1
    maxnorm: float = 0.05
    constraint: Constraint = "box"
    search_rotation: bool = False
    rotation_maxnorm: float = 0.1
    gripper_max: float = 0.75
    axis: dict[int, float] = field(default_factory=dict)
    close_gripper: int | None = None
    open_gripper: int | None = None
    energy: EnergyOn = "final"
    warm_start: bool = False
    dtype: torch.dtype | str | None = None
    evaluate_plan: bool = True
    rescore: int = 0
    joint_maxnorm: float = 0.1

    def __post_init__(self) -> None:
        _check_types(self)
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")
        if self.energy not in ("final", "sum"):
            raise ValueError(f"energy must be 'final' or 'sum', got {self.energy!r}")
        if self.dtype not in _AUTOCAST_DTYPES:
            raise ValueError(f"dtype must be one of {_AUTOCAST_DTYPES}, got {self.dtype}")
        if self.rescore < 0:
            raise ValueError(f"rescore must be >= 0, got {self.rescore}")
        self.action_space()  # validates the constraint fields

    def action_space(self, robot: RobotSpace = DROID_FRANKA) -> ActionSpace:
        """The searched space of these settings for ``robot`` (planners use their world model's space)."""
        return ActionSpace(
            robot=robot,
            joint_maxnorm=self.joint_maxnorm,
            constraint=self.constraint,
            maxnorm=self.maxnorm,
            search_rotation=self.search_rotation,
            rotation_maxnorm=self.rotation_maxnorm,
            gripper_max=self.gripper_max,
            axis=dict(self.axis),
            close_gripper=self.close_gripper,
            open_gripper=self.open_gripper,
        )


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def check_finite(x: Tensor, name: str) -> None:
    """:class:`~planners.protocol.NonFiniteError` naming ``name`` when ``x`` holds a NaN or inf (a broadcast view is
    checked once, not once per sample)."""
    while x.ndim and x.stride(0) == 0 and x.shape[0] > 1:
        x = x[:1]
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise NonFiniteError(f"{name} contains NaN or inf")


def bind_space(planner: Any, world_model: WorldModelLike) -> ActionSpace:
    """``planner.space`` for the robot space of ``world_model`` (rebuilt from ``planner.config`` when the robot
    changes; a warm start from another robot's plan is dropped)."""
    robot = robot_space_of(world_model)
    if planner.space.robot != robot:
        planner.space = planner.config.action_space(robot)
        planner.reset()
    return planner.space


def check_inputs(z0: Tensor, s0: Tensor, z_goal: Tensor, context_actions: Tensor | None,
                 robot: RobotSpace = DROID_FRANKA) -> None:
    """Validate the planner inputs (see :meth:`planners.protocol.Planner.plan`): shapes, and finite values."""
    if z0.ndim != 4 or z0.shape[0] != 1:
        raise ValueError(f"z0 must be [1, T0, N, D], got shape {tuple(z0.shape)}")
    t0, a = z0.shape[1], robot.dim
    robot.check(s0, "s0", (1, t0))
    if z_goal.ndim != 4 or z_goal.shape[0] != 1 or z_goal.shape[1] != 1 or z_goal.shape[2:] != z0.shape[2:]:
        raise ValueError(f"z_goal must be [1, 1, N, D] = [1, 1, {z0.shape[2]}, {z0.shape[3]}], got {tuple(z_goal.shape)}")
    if t0 > 1 and context_actions is None:
        raise ValueError(f"context_actions [1, T0-1={t0 - 1}, {a}] is required when z0 has T0={t0} frames")
    if context_actions is not None:
        robot.check(context_actions, "context_actions", (1, t0 - 1))
    for x, name in ((z0, "z0 (context latents)"), (s0, "s0 (context states)"), (z_goal, "z_goal (goal latents)"),
                    (context_actions, "context_actions")):
        if x is not None:
            check_finite(x, name)


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is not None and generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device}, but the context latents z0 are on {device}")


def native_low_precision(device: torch.device) -> torch.dtype | None:
    """``torch.bfloat16`` where ``device`` has native bf16 matmuls (CUDA with bf16 support; a CPU with AVX512-BF16
    or AMX), else ``None``: without them (e.g. AVX2-only CPUs) bf16 autocast is several times *slower* than fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported() else None
    return None


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype | None:
    """A config ``dtype`` for ``device``: ``"auto"`` -> :func:`native_low_precision`, others unchanged."""
    return native_low_precision(device) if dtype == "auto" else dtype


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast for the world-model calls, or nothing when ``dtype`` is None/float32."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


_NAN_PREDICTIONS = ("the world model predicted NaN or inf latents for the {b} action sequences (non-finite weights or "
                    "activations?); no plan")


def rollout_energy(
    world_model: WorldModelLike,
    z0: Tensor,
    s0: Tensor,
    z_goal: Tensor,
    actions: Tensor,
    *,
    context_actions: Tensor | None = None,
    energy: EnergyOn = "final",
    dtype: torch.dtype | None = None,
    rescore: int = 0,
) -> Tensor:
    """Energies ``[B]`` (float32) of B action sequences ``[B, H, A]`` from a ``[1, T0, ...]`` context.

    The context is expanded (no copy) to B; the known ``context_actions [1, T0-1, A]`` are prepended.
    With a low-precision ``dtype`` and ``rescore > 0``, the ``rescore`` best samples are evaluated again in float32.
    ``dtype="auto"`` is resolved for the latents' device (:func:`resolve_dtype`).
    """
    dtype = resolve_dtype(dtype, z0.device)
    if rescore > 0 and dtype not in (None, torch.float32):
        e = rollout_energy(world_model, z0, s0, z_goal, actions, context_actions=context_actions, energy=energy,
                           dtype=dtype)
        best = e.topk(min(rescore, e.shape[0]), largest=False).indices
        e[best] = rollout_energy(world_model, z0, s0, z_goal, actions[best], context_actions=context_actions,
                                 energy=energy)
        return e
    b = actions.shape[0]
    z = z0.expand(b, -1, -1, -1)
    s = s0.expand(b, -1, -1)
    if context_actions is not None and context_actions.shape[1] > 0:
        actions = torch.cat([context_actions.to(actions).expand(b, -1, -1), actions], dim=1)
    with autocast(z0.device, dtype):
        z_pred, _ = world_model.rollout(z, s, actions)
        try:
            if energy == "final":
                e = world_model.energy(z_pred[:, -1:], z_goal)
            else:
                e = sum(world_model.energy(z_pred[:, h : h + 1], z_goal) for h in range(z_pred.shape[1]))
        except ValueError as err:  # a world model that checks its energies (WorldModel does) refused them
            if bool(torch.isfinite(z_pred.detach()).all()):
                raise
            raise NonFiniteError(_NAN_PREDICTIONS.format(b=b)) from err
    bad = ~torch.isfinite(e.detach())
    if bool(bad.any()):  # a plan is never built on NaN energies (the check costs one pass over [B])
        if not bool(torch.isfinite(z_pred.detach()).all()):
            raise NonFiniteError(_NAN_PREDICTIONS.format(b=b))
        raise NonFiniteError(f"NaN or inf energies for {int(bad.sum())} of {b} action sequences; no plan")
    return e.float()


def shift_plan(previous: Tensor, initial: Tensor) -> Tensor:
    """Warm start: ``previous [H, d]`` shifted one step forward, the last step taken from ``initial [H, d]``."""
    return torch.cat([previous[1:], initial[-1:]], dim=0)
