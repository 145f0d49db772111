"""Action constraints: box clip, Euclidean projection onto the L1 ball, and the searched action space.

Actions follow the world model's robot space (:class:`vjepa2_ac.model.space.RobotSpace`; DROID's Franka
``[dx, dy, dz, droll, dpitch, dyaw, dg]`` by default). Planners search the position, joint and gripper deltas (the
released 4 numbers ``[dx, dy, dz, dg]`` for DROID, rotation deltas fixed to 0), plus the rotation deltas with
``search_rotation=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral
from typing import Literal

import torch
from torch import Tensor

from vjepa2_ac.model.space import DROID_FRANKA, RobotSpace

Constraint = Literal["box", "l1_ball"]


def clip_box(x: Tensor, bound: float) -> Tensor:
    """Clip every entry of ``x`` to ``[-bound, bound]`` (a per-axis box, the released xyz constraint)."""
    if not bound >= 0:
        raise ValueError(f"bound must be >= 0, got {bound}")
    return torch.clip(x, min=-bound, max=bound)


def project_l1_ball(x: Tensor, radius: float) -> Tensor:
    """Euclidean projection of each row ``x[..., n]`` onto ``{y : ||y||_1 <= radius}`` (Duchi et al. 2008).

    Sort-based, vectorised over the leading dims; rows already inside the ball are returned unchanged.
    """
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension [..., n]")
    ax = x.abs()
    u = ax.sort(dim=-1, descending=True).values
    css = u.cumsum(dim=-1)
    k = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype)
    # rho = number of coordinates that stay non-zero: last k with u_k > (css_k - r) / k (a prefix of True).
    rho = ((u - (css - radius) / k) > 0).sum(dim=-1, keepdim=True).clamp_min(1)
    theta = (css.gather(-1, rho - 1) - radius) / rho.to(x.dtype)
    projected = torch.sign(x) * (ax - theta).clamp_min(0)
    inside = ax.sum(dim=-1, keepdim=True) <= radius
    return torch.where(inside, x, projected)


@dataclass(frozen=True)
class ActionSpace:
    """The searched action variables and their constraints.

    The searched vector is the robot space's position, (rotation,) joint and gripper deltas, in that order
    (DROID: ``[dx, dy, dz, dg]``, or all 7 with ``search_rotation``); :meth:`to_full` puts them at their indices.

    constraint: ``"box"`` clips each position delta to ``[-maxnorm, maxnorm]``; ``"l1_ball"`` projects the
        position deltas onto the L1 ball of radius ``maxnorm``.
    search_rotation: search the 3 rotation deltas too (clipped to ``[-rotation_maxnorm, rotation_maxnorm]``);
        otherwise they are 0.
    joint_maxnorm: joint deltas (rad) are clipped to ``[-joint_maxnorm, joint_maxnorm]``.
    gripper_max: dg is clipped to ``[-gripper_max, gripper_max]`` (released: 0.75).
    axis: ``{action index: value}`` fixes searched dims (released ``axis``; note the released code indexed its
        4-vector, where the gripper was 3; here an index is the robot space's, the DROID gripper is 6).
    close_gripper: from this horizon step on, dg is forced to 1.0 (released ``close_gripper``).
    open_gripper: from this horizon step on, dg is forced to -1.0 (the mirror of ``close_gripper``, not in the
        released code: e.g. release the object on a "placed" sub-goal). At most one of the two.
    robot: the world model's robot space (planners take it from the world model they plan with).
    """

    constraint: Constraint = "box"
    maxnorm: float = 0.05
    search_rotation: bool = False
    rotation_maxnorm: float = 0.1
    gripper_max: float = 0.75
    axis: Mapping[int, float] = field(default_factory=dict)
    close_gripper: int | None = None
    open_gripper: int | None = None
    joint_maxnorm: float = 0.1
    robot: RobotSpace = DROID_FRANKA

    def __post_init__(self) -> None:
        if self.constraint not in ("box", "l1_ball"):
            raise ValueError(f"constraint must be 'box' or 'l1_ball', got {self.constraint!r}")
        if not isinstance(self.robot, RobotSpace):
            raise ValueError(f"robot must be a RobotSpace, got {type(self.robot).__name__}")
        for name in ("maxnorm", "rotation_maxnorm", "gripper_max", "joint_maxnorm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for index in self.axis:
            if index not in self.dims:
                hint = " (the released 4-vector used 3 for the gripper; here it is 6)" if index == 3 else ""
                raise ValueError(
                    f"axis key {index} is not a searched action index {self.dims} "
                    f"({', '.join(self.robot.action_names[i] for i in self.dims)}){hint}"
                )
        for name in ("close_gripper", "open_gripper"):
            step = getattr(self, name)
            if step is not None and (isinstance(step, bool) or not isinstance(step, Integral) or step < 0):
                raise ValueError(f"{name} must be None or an int >= 0 (a horizon step), got {step!r}")
        if self.close_gripper is not None and self.open_gripper is not None:
            raise ValueError("give at most one of close_gripper and open_gripper")
        if self.forced_gripper is not None and self.robot.gripper is None:
            raise ValueError(f"close_gripper / open_gripper need a gripper; robot space {self.robot.describe()} "
                             "has none")
        if self.search_rotation and not self.robot.rotation:
            raise ValueError(f"search_rotation needs rotation dims; robot space {self.robot.describe()} has none")

    def _group_indices(self) -> list[tuple[str, tuple[int, ...]]]:
        r = self.robot
        groups = [("xyz", r.position), ("rotation", r.rotation if self.search_rotation else ()), ("joints", r.joints),
                  ("gripper", () if r.gripper is None else (r.gripper,))]
        return [(name, idx) for name, idx in groups if idx]

    @property
    def dims(self) -> tuple[int, ...]:
        """Indices of the searched variables in the robot's action (DROID: ``(0, 1, 2, 6)`` or ``0..6``)."""
        return tuple(i for _, idx in self._group_indices() for i in idx)

    @property
    def size(self) -> int:
        return len(self.dims)

    def groups(self) -> list[tuple[str, slice]]:
        """Named slices of the searched vector: ``xyz``, (``rotation``), ``joints``, ``gripper`` (those present)."""
        out, start = [], 0
        for name, idx in self._group_indices():
            out.append((name, slice(start, start + len(idx))))
            start += len(idx)
        return out

    def _position(self, action_index: int) -> int:
        return self.dims.index(action_index)

    def project(self, a: Tensor) -> Tensor:
        """Constrain searched vectors ``[..., d]`` (xyz box/L1 ball, rotation and gripper clip, fixed axes)."""
        if a.shape[-1] != self.size:
            raise ValueError(f"searched actions must have last dim {self.size}, got shape {tuple(a.shape)}")
        parts = []
        for name, sl in self.groups():
            x = a[..., sl]
            if name == "xyz":
                x = clip_box(x, self.maxnorm) if self.constraint == "box" else project_l1_ball(x, self.maxnorm)
            elif name == "rotation":
                x = clip_box(x, self.rotation_maxnorm)
            elif name == "joints":
                x = clip_box(x, self.joint_maxnorm)
            else:
                x = clip_box(x, self.gripper_max)
            parts.append(x)
        out = torch.cat(parts, dim=-1)
        if self.axis:
            out = out.clone()
            for index, value in self.axis.items():
                out[..., self._position(index)] = value
        return out

    def to_full(self, a: Tensor) -> Tensor:
        """Searched ``[..., H, d]`` -> robot actions ``[..., H, A]`` (unsearched dims 0, ``close_gripper`` /
        ``open_gripper`` applied)."""
        if a.ndim < 2 or a.shape[-1] != self.size:
            raise ValueError(f"searched actions must be [..., H, {self.size}], got shape {tuple(a.shape)}")
        dims = self.dims
        if dims == tuple(range(self.robot.dim)):
            full = a
        else:  # scatter the searched columns into zeros (out of place: differentiable for the gradient planner)
            zeros = a.new_zeros(*a.shape[:-1], 1)
            where = {d: k for k, d in enumerate(dims)}
            full = torch.cat([a[..., where[i]:where[i] + 1] if i in where else zeros for i in range(self.robot.dim)],
                             dim=-1)
        forced = self.forced_gripper
        if forced is not None and forced[0] < a.shape[-2]:
            full = full.clone()
            full[..., forced[0] :, self.robot.gripper] = forced[1]
        return full

    @property
    def forced_gripper(self) -> tuple[int, float] | None:
        """``(first horizon step, dg)`` where the gripper delta is forced (1.0 closes, -1.0 opens), else ``None``."""
        if self.close_gripper is not None:
            return self.close_gripper, 1.0
        if self.open_gripper is not None:
            return self.open_gripper, -1.0
        return None

    def initial_mean(self, horizon: int, device: torch.device | str | None = None) -> Tensor:
        """``[H, d]`` zeros with the ``axis`` values filled in (released initial mean)."""
        mean = torch.zeros(horizon, self.size, device=device)
        for index, value in self.axis.items():
            mean[:, self._position(index)] = value
        return mean

    def initial_std(
        self,
        horizon: int,
        xyz_std: float,
        gripper_std: float,
        rotation_std: float = 0.0,
        device: torch.device | str | None = None,
        joint_std: float | None = None,
    ) -> Tensor:
        """``[H, d]`` per-group initial standard deviations (joints: ``joint_std``, default ``joint_maxnorm``)."""
        values = {"xyz": xyz_std, "rotation": rotation_std, "gripper": gripper_std,
                  "joints": self.joint_maxnorm if joint_std is None else joint_std}
        cols = [torch.full((horizon, sl.stop - sl.start), values[name], device=device) for name, sl in self.groups()]
        return torch.cat(cols, dim=-1)


def check_actions(actions: Tensor, space: ActionSpace, atol: float = 1e-6) -> None:
    """Raise ``ValueError`` if robot actions ``[..., H, A]`` break the constraints of ``space``."""
    r = space.robot
    r.check(actions, "actions")
    xyz, rot, joints = actions[..., list(r.position)], actions[..., list(r.rotation)], actions[..., list(r.joints)]
    grip = actions[..., r.gripper] if r.gripper is not None else actions.new_zeros(actions.shape[:-1])
    if joints.numel() and joints.abs().amax() > space.joint_maxnorm + atol:
        raise ValueError(f"joint deltas exceed {space.joint_maxnorm}")
    if xyz.numel():
        size = xyz.abs().amax() if space.constraint == "box" else xyz.abs().sum(-1).amax()
        if size > space.maxnorm + atol:
            raise ValueError(f"xyz deltas leave the {space.constraint} of size {space.maxnorm}")
    limit = space.rotation_maxnorm if space.search_rotation else 0.0
    if rot.numel() and rot.abs().amax() > limit + atol:
        raise ValueError(f"rotation deltas exceed {limit}")
    if space.forced_gripper is not None:
        grip = grip[..., : space.forced_gripper[0]]  # forced to +-1.0 from close_gripper / open_gripper on
    if grip.numel() and grip.abs().amax() > space.gripper_max + atol:
        raise ValueError(f"gripper deltas exceed {space.gripper_max}")
