"""``RobotSpace``: what the numbers of a robot's state and action mean, and how an action advances a state.

The default is DROID's Franka end-effector space (:data:`DROID_FRANKA`): state ``[x, y, z, roll, pitch, yaw, g]``,
action ``[dx, dy, dz, droll, dpitch, dyaw, dg]`` (``DESIGN.md``). Another robot is described by naming its state
dims and saying which of them are a Cartesian position, an orientation, joint positions and a gripper::

    arm6 = RobotSpace(name="arm6-joints", names=("j1", "j2", "j3", "j4", "j5", "j6", "gripper"),
                      joints=(0, 1, 2, 3, 4, 5), gripper=6, joint_limits=((-2.9, 2.9),) * 6)

An action has one number per state dim, the change it asks for (``action[i]`` advances ``state[i]``):

* ``position`` (m) and ``joints`` (rad) add (joints then clipped to ``joint_limits`` when given);
* ``rotation`` (three dims, extrinsic ``"xyz"`` Euler angles in rad) compose in the base frame, ``R' = R(d) · R``;
* ``gripper`` (closedness, 0 open, 1 closed) adds and is clipped to ``[0, 1]``.

The space is part of a model's :class:`~vjepa2_ac.model.predictor.ACPredictorConfig` (``robot``): the predictor's
action and state width, pose propagation in rollouts, the planners' searched dims and the data readers follow it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used: data collection reads spaces without it
    from torch import Tensor

GROUPS = ("position", "rotation", "joints", "gripper")


@dataclass(frozen=True)
class RobotSpace:
    """A robot's state and action space (both ``[..., dim]``, one action number per state number).

    name: a short identifier, saved with the model (e.g. ``"droid-franka-ee"``).
    names: one name per state dim (actions are their changes).
    position: indices of a Cartesian position (m): added.
    rotation: ``()`` or the three indices of extrinsic ``"xyz"`` Euler angles (rad): composed, ``R' = R(d) · R``.
    joints: indices of joint positions (rad): added, then clipped to ``joint_limits`` (``(low, high)`` per joint,
        in the order of ``joints``; ``None``: not clipped).
    gripper: index of the gripper closedness (0 open, 1 closed): added, clipped to ``[0, 1]``; ``None``: no gripper.

    Every dim belongs to exactly one of position, rotation, joints and gripper.
    """

    name: str
    names: tuple[str, ...]
    position: tuple[int, ...] = ()
    rotation: tuple[int, ...] = ()
    joints: tuple[int, ...] = ()
    gripper: int | None = None
    joint_limits: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        # Accept lists (JSON / YAML) and store tuples, so that equal spaces compare and hash equal.
        for f in ("names", "position", "rotation", "joints"):
            value = getattr(self, f)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ValueError(f"RobotSpace.{f} must be a sequence, got {value!r}")
            object.__setattr__(self, f, tuple(value))
        if self.joint_limits is not None:
            try:
                limits = tuple((float(lo), float(hi)) for lo, hi in self.joint_limits)
            except (TypeError, ValueError) as err:
                raise ValueError(f"RobotSpace.joint_limits must be (low, high) pairs, got {self.joint_limits!r}") from err
            object.__setattr__(self, "joint_limits", limits)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"RobotSpace.name must be a non-empty string, got {self.name!r}")
        if not self.names or not all(isinstance(n, str) and n for n in self.names):
            raise ValueError(f"RobotSpace.names must be non-empty strings, one per state dim, got {self.names!r}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"RobotSpace.names must be distinct, got {self.names!r}")
        dim = len(self.names)
        indices = [*self.position, *self.rotation, *self.joints, *([] if self.gripper is None else [self.gripper])]
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < dim:
                raise ValueError(f"RobotSpace index {i!r} is not a state dim in [0, {dim})")
        if sorted(indices) != list(range(dim)):
            missing = sorted(set(range(dim)) - set(indices))
            repeated = sorted({i for i in indices if indices.count(i) > 1})
            wrong = ([f"not in any: {[self.names[i] for i in missing]}"] if missing else []) + (
                [f"in two: {[self.names[i] for i in repeated]}"] if repeated else [])
            raise ValueError(f"every state dim of {list(self.names)} must be in exactly one of position, rotation, "
                             f"joints, gripper ({'; '.join(wrong)})")
        if len(self.rotation) not in (0, 3):
            raise ValueError(f"RobotSpace.rotation must be () or 3 indices (extrinsic xyz Euler), got {self.rotation}")
        if len(self.position) > 3:
            raise ValueError(f"RobotSpace.position must have at most 3 indices, got {self.position}")
        if self.joint_limits is not None:
            if len(self.joint_limits) != len(self.joints):
                raise ValueError(f"RobotSpace.joint_limits must have one (low, high) per joint ({len(self.joints)}), "
                                 f"got {len(self.joint_limits)}")
            for j, (lo, hi) in zip(self.joints, self.joint_limits, strict=True):
                if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                    raise ValueError(f"joint_limits of {self.names[j]!r} must be finite with low < high, got {(lo, hi)}")

    # ------------------------------------------------------------------------------------------------ shape
    @property
    def dim(self) -> int:
        """Numbers per state and per action."""
        return len(self.names)

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(f"d{n}" for n in self.names)

    def describe(self) -> str:
        """``name [n1, n2, ...]`` for error messages."""
        return f"{self.name} [{', '.join(self.names)}]"

    def check(self, x: Any, name: str, lead: tuple[int, ...] | None = None) -> None:
        """``ValueError`` naming ``name`` unless ``x`` is ``[*lead, dim]`` (any leading shape when ``lead`` is None)."""
        shape = tuple(getattr(x, "shape", ()))
        ok = len(shape) >= 1 and shape[-1] == self.dim and (lead is None or shape[:-1] == tuple(lead))
        if not ok:
            want = f"{[*lead, self.dim]}" if lead is not None else f"[..., {self.dim}]"
            raise ValueError(f"{name} must have shape {want} (robot space {self.describe()}), got {shape}")

    # ------------------------------------------------------------------------------------------------ dynamics
    def advance(self, state: Tensor, action: Tensor) -> Tensor:
        """The state after ``action``: ``[..., dim]`` x ``[..., dim]`` -> ``[..., dim]`` (float64 if either input
        is, else float32; outside autocast). For :data:`DROID_FRANKA` this is the official ``compute_new_pose``,
        bit for bit."""
        import torch

        from vjepa2_ac.model.pose import euler_xyz_to_matrix, matrix_to_euler_xyz

        self.check(state, "state")
        self.check(action, "action")
        with torch.autocast(state.device.type, enabled=False):  # poses stay in full precision under bf16 autocast
            dtype = torch.float64 if torch.float64 in (state.dtype, action.dtype) else torch.float32
            state, action = state.to(dtype), action.to(dtype)
            cols = list((state + action).unbind(-1))
            if self.rotation:
                r = list(self.rotation)
                rot = matrix_to_euler_xyz(euler_xyz_to_matrix(action[..., r]) @ euler_xyz_to_matrix(state[..., r]))
                for i, col in zip(r, rot.unbind(-1), strict=True):
                    cols[i] = col
            if self.joint_limits is not None:
                for j, (lo, hi) in zip(self.joints, self.joint_limits, strict=True):
                    cols[j] = cols[j].clamp(lo, hi)
            if self.gripper is not None:
                cols[self.gripper] = cols[self.gripper].clamp(0.0, 1.0)
            return torch.stack(cols, -1)

    def diff(self, state: Tensor, next_state: Tensor) -> Tensor:
        """The action taking ``state`` to ``next_state`` (``[..., dim]`` each): differences, and for a rotation
        ``euler(R1 · R0ᵀ)``. For :data:`DROID_FRANKA` this is ``pose.poses_to_diff``, bit for bit."""
        import torch

        from vjepa2_ac.model.pose import euler_xyz_to_matrix, matrix_to_euler_xyz

        self.check(state, "state")
        self.check(next_state, "next_state")
        cols = list((next_state - state).unbind(-1))
        if self.rotation:
            r = list(self.rotation)
            r0, r1 = euler_xyz_to_matrix(state[..., r]), euler_xyz_to_matrix(next_state[..., r])
            for i, col in zip(r, matrix_to_euler_xyz(r1 @ r0.transpose(-1, -2)).unbind(-1), strict=True):
                cols[i] = col
        return torch.stack(cols, -1)

    def deltas(self, states: Tensor) -> Tensor:
        """Actions between consecutive states: ``[..., T, dim] -> [..., T-1, dim]``."""
        return self.diff(states[..., :-1, :], states[..., 1:, :])

    # ------------------------------------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists, not tuples); :meth:`from_dict` reads it back."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: ([list(p) for p in v] if k == "joint_limits" and v is not None else
                    list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | RobotSpace) -> RobotSpace:
        """A space from :meth:`to_dict`'s dict (or a space, returned as is); unknown keys are an error."""
        if isinstance(d, RobotSpace):
            return d
        if not isinstance(d, Mapping):
            raise ValueError(f"a robot space must be a mapping of RobotSpace fields, got {d!r}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown RobotSpace fields {unknown}; expected a subset of {sorted(names)}")
        return cls(**d)


#: DROID's Franka end-effector space: the released model's, and the default everywhere.
DROID_FRANKA = RobotSpace(name="droid-franka-ee", names=("x", "y", "z", "roll", "pitch", "yaw", "gripper"),
                          position=(0, 1, 2), rotation=(3, 4, 5), gripper=6)


def robot_space_of(obj: Any) -> RobotSpace:
    """The robot space of a world model (its ``space`` attribute; :data:`DROID_FRANKA` when it has none)."""
    space = getattr(obj, "space", None)
    return space if isinstance(space, RobotSpace) else DROID_FRANKA
