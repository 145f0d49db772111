"""Receding-horizon control with any planner and any world model: plan, execute the first action, re-plan.

An episode is a list of :class:`Phase` s, each a goal (an image, encoded once at construction, or a latent
``[1, 1, N, D]``) with its own planner. A phase ends after ``steps`` actions, or as soon as the observed frame's
energy to its goal drops below ``switch_energy``; the last one runs to the end of the episode. The paper's
pick-and-place is three phases (grasped 4, lifted over the target 10, placed); a longer look-ahead after ten
actions is two phases on the same goal with different planners.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from torch import Tensor

from planners.common import check_finite
from planners.protocol import NonFiniteError, Plan, Planner, WorldModelLike
from vjepa2_ac.model.space import RobotSpace, robot_space_of


@dataclass
class Phase:
    """One stretch of an episode, planned towards one goal.

    goal: uint8 image ``[H, W, 3]`` or latent ``[1, 1, N, D]``.
    planner: the planner used while this phase is active.
    steps: actions planned in this phase before the next one starts; ``None``: no step limit (the last phase runs
        to the end of the episode; an earlier one then needs ``switch_energy``).
    switch_energy: the next phase starts once the observed frame's energy to this goal drops below it.
    name: a label recorded with each step (the planning file uses the goal image's name).
    """

    goal: Any
    planner: Planner
    steps: int | None = None
    switch_energy: float | None = None
    name: str | None = None


@dataclass
class StepRecord:
    """What happened at one ``act`` call."""

    action: np.ndarray  # [A] float32, the executed action
    plan_energy: float  # predicted energy of the plan
    frame_energy: float  # energy of the observed frame to the active phase's goal (before planning)
    phase: int  # index of the phase that planned this step
    latency_s: float  # encode + plan wall time
    plan: Plan = field(repr=False)


def _check_phases(phases: Sequence[Phase]) -> list[Phase]:
    phases = list(phases)
    if not phases:
        raise ValueError("phases must not be empty")
    for i, ph in enumerate(phases):
        if not isinstance(ph, Phase):
            raise ValueError(f"phases[{i}] must be a planners.Phase, got {type(ph).__name__}")
        if not callable(getattr(ph.planner, "plan", None)):
            raise ValueError(f"phases[{i}].planner must be a planner (with .plan), got {type(ph.planner).__name__}")
        if ph.steps is not None and (isinstance(ph.steps, bool) or not isinstance(ph.steps, Integral)
                                     or ph.steps < 1):
            raise ValueError(f"phases[{i}].steps must be an int >= 1 or None, got {ph.steps!r}")
        if ph.switch_energy is not None and (isinstance(ph.switch_energy, bool)
                                             or not isinstance(ph.switch_energy, Real) or not ph.switch_energy > 0):
            raise ValueError(f"phases[{i}].switch_energy must be a number > 0 or None, got {ph.switch_energy!r}")
    check_phase_ends([(ph.steps, ph.switch_energy) for ph in phases])
    return phases


def check_phase_ends(ends: Sequence[tuple[int | None, float | None]]) -> None:
    """The rule every list of phases follows (``(steps, switch_energy)`` per phase): each phase but the last ends
    (after its steps or at its switch energy); the last runs to the end of the episode."""
    last = len(ends) - 1
    for i, (steps, switch_energy) in enumerate(ends):
        if i == last and (steps is not None or switch_energy is not None):
            raise ValueError(f"phases[{i}] is the last phase and runs to the end of the episode: give it "
                             f"steps=None (null) and no switch_energy (got steps={steps!r}, "
                             f"switch_energy={switch_energy!r})")
        if i < last and steps is None and switch_energy is None:
            raise ValueError(f"phases[{i}] never ends: give it steps or switch_energy (only the last phase may run "
                             "to the end of the episode)")


class MPCAgent:
    """``agent = MPCAgent(wm, CEM(CEMConfig.paper()), goal=img)`` (one phase) or
    ``MPCAgent(wm, phases=[Phase(grasped, cem_open, steps=4), Phase(lifted, cem_closed, steps=10),
    Phase(placed, cem)])``; then ``action = agent.act(frame, state)`` with frame uint8 ``[H, W, 3]``, state ``[7]``.

    seed: seeds the planner's ``torch.Generator`` (on the latents' device); ``reset()`` re-seeds it, so an
        episode replays bit for bit. ``None``: the global RNG.
    Planning files (``planning.json``) describe phases by goal name; ``vjepa2_ac.agent.build_agent`` turns one
    into an ``MPCAgent``.
    """

    def __init__(
        self,
        world_model: WorldModelLike,
        planner: Planner | None = None,
        goal: Any = None,
        *,
        phases: Sequence[Phase] | None = None,
        seed: int | None = 0,
    ) -> None:
        if phases is None:
            if planner is None or goal is None:
                raise ValueError("pass planner=... and goal=... (one phase), or phases=[Phase(...), ...]")
            phases = [Phase(goal=goal, planner=planner)]
        elif planner is not None or goal is not None:
            raise ValueError("pass either planner=... and goal=... or phases=[...], not both")
        self.world_model = world_model
        self.phases = _check_phases(phases)
        self.seed = seed
        encoded: dict[int, Tensor] = {}  # a goal shared by several phases is encoded once
        for ph in self.phases:
            if id(ph.goal) not in encoded:
                encoded[id(ph.goal)] = self._encode_goal(ph.goal)
        self.goals = [encoded[id(ph.goal)] for ph in self.phases]  # [1, 1, N, D] per phase
        self.reset()

    def _encode_goal(self, goal: Any) -> Tensor:
        if isinstance(goal, Tensor) and goal.is_floating_point():
            if goal.ndim != 4 or goal.shape[:2] != (1, 1):
                raise ValueError(f"a latent goal must be [1, 1, N, D], got {tuple(goal.shape)}")
            check_finite(goal, "the goal latent")
            return goal
        frames = torch.as_tensor(np.asarray(goal)) if not isinstance(goal, Tensor) else goal
        if frames.dtype != torch.uint8 or frames.ndim != 3 or frames.shape[-1] != 3:
            raise ValueError(f"a goal image must be uint8 [H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
        with torch.no_grad():
            z = self.world_model.encode(frames[None])  # [T=1, H, W, 3] -> [1, 1, N, D]
        check_finite(z, "the goal image's latent (the encoder's weights?)")
        return z

    def reset(self) -> None:
        """Start a new episode: first phase, empty records, planner warm start cleared, generator re-seeded."""
        self.step = 0
        self.phase_index = 0
        self._steps_in_phase = 0
        self.records: list[StepRecord] = []
        for planner in {id(ph.planner): ph.planner for ph in self.phases}.values():
            planner.reset()
        self._generator: torch.Generator | None = None

    @property
    def space(self) -> RobotSpace:
        """The world model's robot space: what ``state`` and the returned action hold (DROID's Franka space
        unless the model says otherwise)."""
        return robot_space_of(self.world_model)

    @property
    def phase(self) -> Phase:
        """The active phase."""
        return self.phases[self.phase_index]

    @property
    def planner(self) -> Planner:
        """The active phase's planner."""
        return self.phase.planner

    @property
    def goal(self) -> Tensor:
        """The active phase's goal latent ``[1, 1, N, D]``."""
        return self.goals[self.phase_index]

    def _generator_for(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device.type != device.type:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def _next_phase(self) -> None:
        self.phase_index += 1
        self._steps_in_phase = 0

    def act(self, frame: Any, state: Any) -> np.ndarray:
        """Observed frame uint8 ``[H, W, 3]`` and state ``[A]`` (numpy or torch; A = 7 for DROID's Franka space, see
        :attr:`space`) -> action float32 ``[A]``.

        Raises :class:`~planners.protocol.NonFiniteError` instead of returning an action when a latent, an energy or
        the plan is not finite (the robot loop then stops the arm)."""
        state_t = torch.as_tensor(np.asarray(state, dtype=np.float32) if not isinstance(state, Tensor) else state)
        self.space.check(state_t, "state", ())
        check_finite(state_t, "state")
        frame_t = torch.as_tensor(np.asarray(frame)) if not isinstance(frame, Tensor) else frame
        if frame_t.dtype != torch.uint8 or frame_t.ndim != 3 or frame_t.shape[-1] != 3:
            raise ValueError(f"frame must be uint8 [H, W, 3], got {frame_t.dtype} {tuple(frame_t.shape)}")
        if self.phase.steps is not None and self._steps_in_phase >= self.phase.steps:
            self._next_phase()
        start = time.perf_counter()
        with torch.no_grad():
            z = self.world_model.encode(frame_t[None])  # [1, 1, N, D]
            check_finite(z, "the observed frame's latent (the encoder's weights?)")
            frame_energy = float(self.world_model.energy(z, self.goal)[0])
            if self.phase.switch_energy is not None and frame_energy < self.phase.switch_energy:
                self._next_phase()
                frame_energy = float(self.world_model.energy(z, self.goal)[0])
        s0 = state_t.to(device=z.device, dtype=torch.float32).reshape(1, 1, -1)
        plan = self.planner.plan(self.world_model, z, s0, self.goal, generator=self._generator_for(z.device))
        action = plan.actions[0].detach().float().cpu().numpy()
        if not np.isfinite(action).all() or np.isinf(plan.energy):  # nan energy: the planner did not evaluate it
            raise NonFiniteError(f"the planner returned a non-finite action {action.tolist()} (energy {plan.energy})")
        latency = time.perf_counter() - start
        self.records.append(StepRecord(action, plan.energy, frame_energy, self.phase_index, latency, plan))
        self.step += 1
        self._steps_in_phase += 1
        return action

    # -- recorded statistics ------------------------------------------------------------------------------
    @property
    def latencies(self) -> list[float]:
        return [r.latency_s for r in self.records]

    @property
    def energies(self) -> list[float]:
        return [r.plan_energy for r in self.records]

    @property
    def actions(self) -> np.ndarray:
        """``[steps, A]`` executed actions."""
        return np.stack([r.action for r in self.records]) if self.records else np.zeros((0, self.space.dim), np.float32)

    def stats(self) -> dict[str, float]:
        """Latency summary (seconds) and the last energies of the episode so far."""
        lat = np.asarray(self.latencies)
        if lat.size == 0:
            return {"steps": 0}
        return {
            "steps": int(lat.size),
            "latency_mean_s": float(lat.mean()),
            "latency_median_s": float(np.median(lat)),
            "latency_p90_s": float(np.quantile(lat, 0.9)),
            "last_plan_energy": self.records[-1].plan_energy,
            "last_frame_energy": self.records[-1].frame_energy,
        }
