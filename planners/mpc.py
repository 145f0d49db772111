"""Receding-horizon control with any planner and any world model: plan, execute the first action, re-plan.

Goals are images (encoded once, at construction) or latents ``[1, 1, N, D]``. With ``subgoals`` the agent
moves to the next sub-goal after a fixed number of steps (``switch_after``, paper pick-and-place:
``[4, 10, 4]``) or when the current frame's energy to the sub-goal drops below ``switch_energy``; each sub-goal
may have its own planner (e.g. the released CEM's ``close_gripper=0`` while lifting and carrying). A ``fallback``
planner takes over after ``fallback_after`` steps on the final goal (e.g. a longer look-ahead for an arm that a
one-step search has left on a flat stretch of the energy).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np
import torch
from torch import Tensor

from planners.protocol import Plan, Planner, WorldModelLike


@dataclass
class StepRecord:
    """What happened at one ``act`` call."""

    action: np.ndarray  # [7] float32, the executed action
    plan_energy: float  # predicted energy of the plan
    frame_energy: float  # energy of the observed frame to the active goal (before planning)
    goal_index: int
    latency_s: float  # encode + plan wall time
    plan: Plan = field(repr=False)
    fallback: bool = False  # planned by the fallback planner


class MPCAgent:
    """``agent = MPCAgent(wm, CEM(CEMConfig.paper()), subgoals=[img0, img1, img2], switch_after=[4, 10, 4])``;
    ``action = agent.act(frame, state)`` with frame uint8 ``[H, W, 3]`` and state ``[7]``.

    planner: one planner, or one per sub-goal (``planner[i]`` plans towards ``subgoals[i]``).
    fallback, fallback_after: after ``fallback_after`` steps on the final goal (the only one, without sub-goals)
        the agent plans with ``fallback`` instead, until :meth:`reset`.
    seed: seeds the planner's ``torch.Generator`` (on the latents' device); ``reset()`` re-seeds it, so an
        episode replays bit for bit. ``None``: the global RNG.
    """

    def __init__(
        self,
        world_model: WorldModelLike,
        planner: Planner | Sequence[Planner],
        goal: Any = None,
        *,
        subgoals: Sequence[Any] | None = None,
        switch_after: Sequence[int] | None = None,
        switch_energy: float | None = None,
        fallback: Planner | None = None,
        fallback_after: int | None = None,
        seed: int | None = 0,
    ) -> None:
        if (goal is None) == (subgoals is None):
            raise ValueError("pass exactly one of goal=... or subgoals=[...]")
        goals = [goal] if subgoals is None else list(subgoals)
        if not goals:
            raise ValueError("subgoals must not be empty")
        if switch_after is not None:
            if switch_energy is not None:
                raise ValueError("pass at most one of switch_after and switch_energy")
            if len(switch_after) not in (len(goals) - 1, len(goals)) or any(int(n) < 1 for n in switch_after):
                raise ValueError(
                    f"switch_after must hold {len(goals) - 1} or {len(goals)} step counts >= 1 "
                    f"(one per sub-goal), got {list(switch_after)}"
                )
        planners = list(planner) if isinstance(planner, Sequence) else [planner] * len(goals)
        if len(planners) != len(goals):
            raise ValueError(f"planner: give one planner or one per sub-goal ({len(goals)}), got {len(planners)}")
        if (fallback is None) != (fallback_after is None):
            raise ValueError("pass both fallback=... and fallback_after=... or neither")
        if fallback_after is not None and (isinstance(fallback_after, bool) or not isinstance(fallback_after, Integral)
                                           or fallback_after < 1):
            raise ValueError(f"fallback_after must be an int >= 1 (steps on the final goal), got {fallback_after!r}")
        self.world_model = world_model
        self.planners = planners
        self.fallback = fallback
        self.fallback_after = None if fallback_after is None else int(fallback_after)
        self.switch_after = None if switch_after is None else [int(n) for n in switch_after]
        self.switch_energy = switch_energy
        self.seed = seed
        self.goals = [self._encode_goal(g) for g in goals]
        self.reset()

    def _encode_goal(self, goal: Any) -> Tensor:
        if isinstance(goal, Tensor) and goal.is_floating_point():
            if goal.ndim != 4 or goal.shape[:2] != (1, 1):
                raise ValueError(f"a latent goal must be [1, 1, N, D], got {tuple(goal.shape)}")
            return goal
        frames = torch.as_tensor(np.asarray(goal)) if not isinstance(goal, Tensor) else goal
        if frames.dtype != torch.uint8 or frames.ndim != 3 or frames.shape[-1] != 3:
            raise ValueError(f"a goal image must be uint8 [H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
        with torch.no_grad():
            return self.world_model.encode(frames[None])  # [T=1, H, W, 3] -> [1, 1, N, D]

    def reset(self) -> None:
        """Start a new episode: first goal, empty records, planner warm start cleared, generator re-seeded."""
        self.step = 0
        self.goal_index = 0
        self._steps_on_goal = 0
        self.records: list[StepRecord] = []
        for planner in {id(p): p for p in [*self.planners, self.fallback] if p is not None}.values():
            planner.reset()
        self._generator: torch.Generator | None = None

    @property
    def in_fallback(self) -> bool:
        """Whether the next plan is the fallback's: ``fallback_after`` steps or more on the final goal."""
        return (self.fallback is not None and self.goal_index == len(self.goals) - 1
                and self._steps_on_goal >= self.fallback_after)

    @property
    def planner(self) -> Planner:
        """The active planner: the sub-goal's, or the fallback (:attr:`in_fallback`)."""
        return self.fallback if self.in_fallback else self.planners[self.goal_index]

    @property
    def goal(self) -> Tensor:
        """The active goal latent ``[1, 1, N, D]``."""
        return self.goals[self.goal_index]

    def _generator_for(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device.type != device.type:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def _advance_by_schedule(self) -> None:
        if self.switch_after is None or self.goal_index >= len(self.goals) - 1:
            return
        if self._steps_on_goal >= self.switch_after[self.goal_index]:
            self.goal_index += 1
            self._steps_on_goal = 0

    def act(self, frame: Any, state: Any) -> np.ndarray:
        """Observed frame uint8 ``[H, W, 3]`` and state ``[7]`` (numpy or torch) -> action float32 ``[7]``."""
        state_t = torch.as_tensor(np.asarray(state, dtype=np.float32) if not isinstance(state, Tensor) else state)
        if state_t.shape != (7,):
            raise ValueError(f"state must be [7] = [x, y, z, roll, pitch, yaw, g], got shape {tuple(state_t.shape)}")
        frame_t = torch.as_tensor(np.asarray(frame)) if not isinstance(frame, Tensor) else frame
        if frame_t.dtype != torch.uint8 or frame_t.ndim != 3 or frame_t.shape[-1] != 3:
            raise ValueError(f"frame must be uint8 [H, W, 3], got {frame_t.dtype} {tuple(frame_t.shape)}")
        self._advance_by_schedule()
        start = time.perf_counter()
        with torch.no_grad():
            z = self.world_model.encode(frame_t[None])  # [1, 1, N, D]
            frame_energy = float(self.world_model.energy(z, self.goal)[0])
        if (
            self.switch_energy is not None
            and frame_energy < self.switch_energy
            and self.goal_index < len(self.goals) - 1
        ):
            self.goal_index += 1
            self._steps_on_goal = 0
            with torch.no_grad():
                frame_energy = float(self.world_model.energy(z, self.goal)[0])
        s0 = state_t.to(device=z.device, dtype=torch.float32).reshape(1, 1, 7)
        fallback = self.in_fallback
        plan = self.planner.plan(self.world_model, z, s0, self.goal, generator=self._generator_for(z.device))
        action = plan.actions[0].detach().float().cpu().numpy()
        latency = time.perf_counter() - start
        self.records.append(StepRecord(action, plan.energy, frame_energy, self.goal_index, latency, plan,
                                       fallback))
        self.step += 1
        self._steps_on_goal += 1
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
        """``[steps, 7]`` executed actions."""
        return np.stack([r.action for r in self.records]) if self.records else np.zeros((0, 7), np.float32)

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
