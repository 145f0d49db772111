"""One closed-loop episode: a simulated Franka task, the agent the planning config builds, and what came out.

    wm, planning, _ = load_world_model("vjepa2-ac-sim-small")
    env = make_env(planning, "pick-place", object="cube")
    result = run_episode(env, wm, planning, "pick-place", seed=0)          # EpisodeResult

``world_model=None`` runs the ``random`` baseline: actions drawn uniformly from the action space that every phase of
the task shares (xyz box of ``maxnorm`` projected like the planner's samples, gripper in ``±gripper_max`` unless all
phases force it, no rotation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vjepa2_ac.agent.builder import build_agent, build_planner
from vjepa2_ac.agent.planning import PhaseSpec, PlanningConfig, task_name


@dataclass
class EpisodeResult:
    """One closed-loop episode. Arrays are numpy; ``frames`` only when recorded.

    frames: uint8 ``[T + 1, H, W, 3]`` observations (or the ``view`` renders), first = after reset.
    goals: ``(goal name, uint8 [H, W, 3])`` of each phase of the task, in order (as seen in the ``view``).
    energies / frame_energies / phases: per action: the plan's predicted energy, the observed frame's energy to
        the active phase's goal, the active phase's index (empty for the random baseline).
    latencies: seconds per action (encode + plan; action sampling for the random baseline).
    factor: the distribution-shift factor of the scene (``None``: nominal; see ``vjepa2_ac.eval.suite``).
    """

    task: str
    object: str
    backend: str
    policy: str
    seed: int
    success: bool
    final_distance: float
    steps: int
    seconds_per_action: float
    actions: np.ndarray = field(repr=False)
    energies: list[float] = field(default_factory=list, repr=False)
    frame_energies: list[float] = field(default_factory=list, repr=False)
    phases: list[int] = field(default_factory=list, repr=False)
    latencies: list[float] = field(default_factory=list, repr=False)
    goals: list[tuple[str, np.ndarray]] = field(default_factory=list, repr=False)
    frames: np.ndarray | None = field(default=None, repr=False)
    factor: str | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-friendly scalars and per-step lists (no images)."""
        return {"task": self.task, "object": self.object, "backend": self.backend, "factor": self.factor,
                "policy": self.policy, "seed": self.seed, "success": self.success, "final_distance": self.final_distance,
                "steps": self.steps, "seconds_per_action": self.seconds_per_action,
                "energies": list(self.energies), "frame_energies": list(self.frame_energies),
                "phases": list(self.phases), "phase_goals": [name for name, _ in self.goals],
                "latencies": list(self.latencies), "actions": self.actions.tolist()}

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> EpisodeResult:
        """The result back from :meth:`summary` (an ``eval`` JSON-lines record; goal images and frames are not
        kept)."""
        keys = ("task", "object", "backend", "policy", "seed", "success", "final_distance", "steps",
                "seconds_per_action", "energies", "frame_energies", "phases", "latencies")
        missing = [k for k in (*keys, "actions") if k not in data]
        if missing:
            raise ValueError(f"an episode record lacks {missing}")
        actions = np.asarray(data["actions"], np.float32).reshape(-1, 7)
        return cls(**{k: data[k] for k in keys}, actions=actions, factor=data.get("factor"))


def task_distance(env: Any, task: str) -> float:
    """Distance (m) between what the task moves and its goal: tool centre point for reach, object otherwise."""
    base = env.unwrapped
    goal = np.asarray(base.goal["position"], float)
    achieved = base.get_ee_pose()[0] if task_name(task) == "reach" else base.get_object_pose()[0]
    return float(np.linalg.norm(np.asarray(achieved, float) - goal))


def shared_phase(phases: list[PhaseSpec]) -> PhaseSpec:
    """What all ``phases`` have in common (gripper rule, constraint, planner overrides): the random baseline's space."""
    first = phases[0]
    same = {k: v for k, v in first.planner.items() if all(p.planner.get(k, object()) == v for p in phases)}
    gripper = first.gripper if all(p.gripper == first.gripper for p in phases) else "search"
    constraint = first.constraint if all(p.constraint == first.constraint for p in phases) else None
    return PhaseSpec(goal=first.goal, gripper=gripper, constraint=constraint, planner=same)


class RandomPolicy:
    """Uniform random actions in the planner's action space (seeded; the ``random`` baseline)."""

    def __init__(self, planner: Any, seed: int = 0) -> None:
        self.space = planner.config.action_space()
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self) -> np.ndarray:
        sp = self.space
        bounds = torch.tensor([sp.maxnorm] * 3 + [sp.rotation_maxnorm] * 3 + [sp.gripper_max])[list(sp.dims)]
        u = (torch.rand(1, 1, sp.size, generator=self.generator) * 2 - 1) * bounds
        return sp.to_full(sp.project(u))[0, 0].numpy().astype(np.float32)


def run_episode(env: Any, world_model: Any | None, planning: PlanningConfig, task: str, *, seed: int,
                policy: str | None = None, factor: str | None = None, max_steps: int | None = None, planner: str | None = None,
                record_frames: bool = False, view: tuple[str, int] | None = None, progress: bool = False,
                planner_overrides: dict[str, Any] | None = None) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and run MPC with ``world_model`` (``None``: random actions) for up to
    ``max_steps`` actions (default: the task's), stopping at success if the planning config says so.

    view: ``(camera, size)`` records frames rendered from that camera at that size instead of the observations.
    policy: label stored in the result (default ``"model"``, or ``"random"`` when ``world_model`` is None).
    factor: label of the scene's distribution-shift factor stored in the result (the env applies it).
    """
    from tqdm.auto import tqdm

    task = task_name(task)
    plan = planning.task(task)
    steps = plan.max_steps if max_steps is None else int(max_steps)
    if steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {steps}")
    obs, info = env.reset(seed=seed)
    base = env.unwrapped
    overrides = planner_overrides or {}
    if world_model is None:
        agent = None
        sampler = RandomPolicy(build_planner(planning, shared_phase(plan.phases), planner=planner, **overrides),
                               seed=seed)
    else:
        agent = build_agent(world_model, planning, task, info["goals"], seed=seed, planner=planner, **overrides)
    names = [spec.goal for spec in plan.phases]
    if view is None:
        goals = [(name, info["goals"][name]) for name in names if name in info["goals"]]
    else:  # the goal images as seen in the recorded view
        configs = dict(zip(base.goal_names, base.goal["configs"], strict=True))
        configs.setdefault("final", base.goal["configs"][-1])
        goals = [(name, base.render_configuration(*configs[name], camera=view[0], image_size=(view[1], view[1])))
                 for name in names if name in configs]

    def frame_now(o: dict) -> np.ndarray:
        if view is None:
            return o["pixels"]
        return base.render(camera=view[0], image_size=(view[1], view[1]))

    frames = [frame_now(obs)] if record_frames else []
    actions, latencies = [], []
    success = bool(info.get("is_success", False))
    bar = tqdm(total=steps, desc=f"{task} seed {seed}", unit="action", disable=not progress, leave=False)
    try:
        for _ in range(steps):
            start = time.perf_counter()
            if agent is None:
                action = sampler()
                latencies.append(time.perf_counter() - start)
            else:
                action = agent.act(obs["pixels"], obs["agent_pos"])
                latencies.append(agent.records[-1].latency_s)
                bar.set_postfix(energy=f"{agent.records[-1].plan_energy:.4f}", phase=agent.records[-1].phase)
            obs, _, terminated, truncated, info = env.step(action)
            actions.append(np.asarray(action, np.float32))
            if record_frames:
                frames.append(frame_now(obs))
            bar.update(1)
            success = bool(info["is_success"])
            if (success and planning.stop_on_success) or terminated or truncated:
                break
    finally:
        bar.close()
    records = agent.records if agent is not None else []
    return EpisodeResult(
        task=task, object=base.cfg.object, backend=base.cfg.backend,
        policy=policy or ("model" if world_model is not None else "random"), seed=int(seed), success=success,
        final_distance=task_distance(env, task), steps=len(actions),
        seconds_per_action=float(np.mean(latencies)) if latencies else float("nan"),
        actions=np.stack(actions) if actions else np.zeros((0, 7), np.float32),
        energies=[float(r.plan_energy) for r in records], frame_energies=[float(r.frame_energy) for r in records],
        phases=[int(r.phase) for r in records], latencies=[float(x) for x in latencies],
        goals=goals, frames=np.stack(frames) if frames else None, factor=factor)


__all__ = ["EpisodeResult", "RandomPolicy", "run_episode", "task_distance"]
