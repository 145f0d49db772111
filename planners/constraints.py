"""Action constraints: box clip, Euclidean projection onto the L1 ball, and the searched action space.

Actions are ``[dx, dy, dz, droll, dpitch, dyaw, dg]``. Planners search either the released 4 numbers
``[dx, dy, dz, dg]`` (rotation deltas fixed to 0) or all 7 (``search_rotation=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral
from typing import Literal

import torch
from torch import Tensor

Constraint = Literal["box", "l1_ball"]
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dg")
XYZ_GRIPPER_DIMS = (0, 1, 2, 6)
ALL_DIMS = (0, 1, 2, 3, 4, 5, 6)


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

    constraint: ``"box"`` clips each of dx, dy, dz to ``[-maxnorm, maxnorm]``; ``"l1_ball"`` projects
        (dx, dy, dz) onto the L1 ball of radius ``maxnorm``.
    search_rotation: search the 3 rotation deltas too (clipped to ``[-rotation_maxnorm, rotation_maxnorm]``);
        otherwise they are 0.
    gripper_max: dg is clipped to ``[-gripper_max, gripper_max]`` (released: 0.75).
    axis: ``{action index (0..6): value}`` fixes searched dims (released ``axis``; note the released code
        indexed its 4-vector, where the gripper was 3; here the gripper is 6).
    close_gripper: from this horizon step on, dg is forced to 1.0 (released ``close_gripper``).
    open_gripper: from this horizon step on, dg is forced to -1.0 (the mirror of ``close_gripper``, not in the
        released code: e.g. release the object on a "placed" sub-goal). At most one of the two.
    """

    constraint: Constraint = "box"
    maxnorm: float = 0.05
    search_rotation: bool = False
    rotation_maxnorm: float = 0.1
    gripper_max: float = 0.75
    axis: Mapping[int, float] = field(default_factory=dict)
    close_gripper: int | None = None
    open_gripper: int | None = None

    def __post_init__(self) -> None:
        if self.constraint not in ("box", "l1_ball"):
            raise ValueError(f"constraint must be 'box' or 'l1_ball', got {self.constraint!r}")
        for name in ("maxnorm", "rotation_maxnorm", "gripper_max"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for index in self.axis:
            if index not in self.dims:
                hint = " (the released 4-vector used 3 for the gripper; here it is 6)" if index == 3 else ""
                raise ValueError(
                    f"axis key {index} is not a searched action index {self.dims} "
                    f"({', '.join(ACTION_NAMES[i] for i in self.dims)}){hint}"
                )
        for name in ("close_gripper", "open_gripper"):
            step = getattr(self, name)
            if step is not None and (isinstance(step, bool) or not isinstance(step, Integral) or step < 0):
                raise ValueError(f"{name} must be None or an int >= 0 (a horizon step), got {step!r}")
        if self.close_gripper is not None and self.open_gripper is not None:
            raise ValueError("give at most one of close_gripper and open_gripper")

    @property
    def dims(self) -> tuple[int, ...]:
        """Indices of the searched variables in the 7-D action."""
        return ALL_DIMS if self.search_rotation else XYZ_GRIPPER_DIMS

    @property
    def size(self) -> int:
        return len(self.dims)

    def groups(self) -> list[tuple[str, slice]]:
        """Named slices of the searched vector: ``xyz``, (``rotation``), ``gripper``."""
        if self.search_rotation:
            return [("xyz", slice(0, 3)), ("rotation", slice(3, 6)), ("gripper", slice(6, 7))]
        return [("xyz", slice(0, 3)), ("gripper", slice(3, 4))]

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
        """Searched ``[..., H, d]`` -> 7-D actions ``[..., H, 7]`` (unsearched dims 0, ``close_gripper`` /
        ``open_gripper`` applied)."""
        if a.ndim < 2 or a.shape[-1] != self.size:
            raise ValueError(f"searched actions must be [..., H, {self.size}], got shape {tuple(a.shape)}")
        if self.search_rotation:
            full = a
        else:
            zeros = a.new_zeros(*a.shape[:-1], 3)
            full = torch.cat([a[..., :3], zeros, a[..., 3:]], dim=-1)
        forced = self.forced_gripper
        if forced is not None and forced[0] < a.shape[-2]:
            full = full.clone()
            full[..., forced[0] :, 6] = forced[1]
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
    ) -> Tensor:
        """``[H, d]`` per-group initial standard deviations."""
        values = {"xyz": xyz_std, "rotation": rotation_std, "gripper": gripper_std}
        cols = [torch.full((horizon, sl.stop - sl.start), values[name], device=device) for name, sl in self.groups()]
        return torch.cat(cols, dim=-1)


def check_actions(actions: Tensor, space: ActionSpace, atol: float = 1e-6) -> None:
    """Raise ``ValueError`` if 7-D ``actions [..., H, 7]`` break the constraints of ``space``."""
    xyz, rot, grip = actions[..., :3], actions[..., 3:6], actions[..., 6]
    if space.constraint == "box":
        bad = xyz.abs().amax() > space.maxnorm + atol
    else:
        bad = xyz.abs().sum(-1).amax() > space.maxnorm + atol
    if bad:
        raise ValueError(f"xyz deltas leave the {space.constraint} of size {space.maxnorm}")
    limit = space.rotation_maxnorm if space.search_rotation else 0.0
    if rot.abs().amax() > limit + atol:
        raise ValueError(f"rotation deltas exceed {limit}")
    if space.forced_gripper is not None:
        grip = grip[..., : space.forced_gripper[0]]  # forced to +-1.0 from close_gripper / open_gripper on
    if grip.numel() and grip.abs().amax() > space.gripper_max + atol:
        raise ValueError(f"gripper deltas exceed {space.gripper_max}")
