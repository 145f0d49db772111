"""What planners see of a world model, what every planner offers, and what a plan returns.

Shapes: ``B`` samples, ``T0`` context frames, ``H`` planning horizon, ``N`` tokens per frame, ``D`` channels,
``A`` numbers per state and action (7 in DROID's Franka space; a world model with a ``space`` attribute, a
:class:`vjepa2_ac.model.space.RobotSpace`, says otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from torch import Tensor


class NonFiniteError(ValueError):
    """A NaN or inf where a planner needs finite numbers (inputs, or the energies the world model predicts): the
    plan is refused, so no action comes out of it. Usually corrupted weights or a broken camera frame."""


@runtime_checkable
class WorldModelLike(Protocol):
    """The only part of a world model the planners use (``vjepa2_ac.WorldModel`` satisfies it). An optional
    ``space`` attribute (:class:`~vjepa2_ac.model.space.RobotSpace`) names its state and action dims."""

    def rollout(self, z0: Tensor, s0: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """z0 ``[B, T0, N, D]``, s0 ``[B, T0, A]``, actions ``[B, T0-1+H, A]`` -> latents ``[B, H, N, D]``,
        states ``[B, H, A]``.

        ``z0``/``s0`` may be expanded views (stride 0) of a ``[1, ...]`` context. Differentiable w.r.t.
        ``actions`` when grad is enabled. Latents are layer-normed (comparable with goal latents)."""
        ...

    def energy(self, z_pred: Tensor, z_goal: Tensor) -> Tensor:
        """z_pred ``[B, 1, N, D]`` vs z_goal ``[B or 1, 1, N, D]`` -> ``[B]``: mean |z_pred - z_goal| over N, D."""
        ...

    def encode(self, frames: Any) -> Tensor:
        """uint8 ``[B, T, H, W, 3]`` or ``[T, H, W, 3]`` -> ``[B, T, N, D]`` (used only by ``MPCAgent``)."""
        ...


@dataclass
class Plan:
    """Result of one planning call.

    actions: ``[H, A]`` float32 action sequence (execute ``actions[0]``, re-plan: receding horizon).
    energy: predicted energy of ``actions`` (the planner's objective, ``nan`` if not evaluated).
    history: one dict per iteration (planner-specific keys, e.g. ``mean``/``std`` ``[H, d]``,
        ``energies`` ``[S]`` of the evaluated samples, ``best_energy``).
    """

    actions: Tensor
    energy: float
    history: list[dict[str, Any]] = field(default_factory=list)


@runtime_checkable
class Planner(Protocol):
    """Anything that turns (context, goal) into a :class:`Plan`."""

    def plan(
        self,
        world_model: WorldModelLike,
        z0: Tensor,
        s0: Tensor,
        z_goal: Tensor,
        *,
        context_actions: Tensor | None = None,
        generator: Any = None,
    ) -> Plan:
        """z0 ``[1, T0, N, D]``, s0 ``[1, T0, A]``, z_goal ``[1, 1, N, D]``; context_actions ``[1, T0-1, A]``
        (the known actions between the context frames, required when ``T0 > 1``)."""
        ...

    def reset(self) -> None:
        """Forget warm-start state (call at the start of an episode)."""
        ...
