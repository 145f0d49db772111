"""Closed-loop V-JEPA 2-AC control of a robot (real or ``SimDriver``) through the safety layer.

    from envs.robot import SafeDriver, SafetyLimits, SimDriver
    from vjepa2_ac.robot_loop import build_agent, run_robot_episode

    sim = SimDriver()
    agent = build_agent(world_model, goal=sim.goal_image, planner="cem", samples=100)
    # or with a model's planning.json (its planner and per-task settings, as `eval` uses them):
    # agent = build_agent_from_planning(world_model, PlanningConfig.load(model_dir), "reach", goal=sim.goal_image)
    with SafeDriver(sim, SafetyLimits(), camera=sim) as robot:
        run = run_robot_episode(robot, agent, steps=20, episode_path="runs/ep_000.h5")

Each step is recorded in the library's episode format (frame, state, executed action, and per-step ``energy``,
``frame_energy``, ``planning_latency_s``, ``goal_index``, ``fallback`` (1 where the planning config's fallback
planner planned the step), ``requested_action``, ``loop_overhead_s``), so real
runs become training data. A run that ends in a fault keeps the steps recorded so far (``stopped_by`` attribute).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.robot.loop import LoopResult, run_loop
from envs.robot.safety import SafeDriver

PLANNERS = ("cem", "mppi", "icem")
PRESETS = ("official", "paper")


def build_planner(name: str = "cem", preset: str = "paper", **overrides: Any) -> Any:
    """A planner by name: ``"cem"`` (``preset`` ``"official"`` or ``"paper"``), ``"mppi"`` or ``"icem"``;
    ``overrides`` are config fields (``samples``, ``iterations``, ``horizon`` ...; ``None`` values are ignored).
    When ``samples`` is given without ``topk``, CEM / iCEM use ``topk = min(preset topk, samples)``."""
    from planners import CEM, ICEM, MPPI, CEMConfig, ICEMConfig, MPPIConfig

    overrides = {k: v for k, v in overrides.items() if v is not None}
    if name not in PLANNERS:
        raise ValueError(f"planner: expected one of {PLANNERS}, got {name!r}")
    if name == "mppi":
        return MPPI(MPPIConfig(**overrides))
    if "samples" in overrides and "topk" not in overrides:
        default_topk = (ICEMConfig() if name == "icem" else CEMConfig()).topk
        overrides["topk"] = min(default_topk, overrides["samples"])
    if name == "icem":
        return ICEM(ICEMConfig(**overrides))
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {PRESETS}, got {preset!r}")
    return CEM(getattr(CEMConfig, preset)(**overrides))


def build_agent(
    world_model: Any,
    goal: np.ndarray | None = None,
    *,
    subgoals: Sequence[np.ndarray] | None = None,
    switch_after: Sequence[int] | None = None,
    planner: str | Any = "cem",
    preset: str = "paper",
    seed: int | None = 0,
    **planner_overrides: Any,
) -> Any:
    """``MPCAgent`` for a goal image uint8 ``[H, W, 3]`` or sub-goal images with a ``switch_after`` schedule."""
    from planners import MPCAgent

    plan = build_planner(planner, preset, **planner_overrides) if isinstance(planner, str) else planner
    if subgoals is not None:
        return MPCAgent(world_model, plan, subgoals=list(subgoals), switch_after=switch_after, seed=seed)
    return MPCAgent(world_model, plan, goal=goal, seed=seed)


def build_agent_from_planning(
    world_model: Any,
    planning: Any,
    task: str,
    *,
    goal: np.ndarray | None = None,
    subgoals: Sequence[np.ndarray] | None = None,
    switch_after: Sequence[int] | None = None,
    require_subgoals: bool = False,
    planner: str | None = None,
    seed: int | None = 0,
    **planner_overrides: Any,
) -> Any:
    """``MPCAgent`` for ``task`` with a :class:`~vjepa2_ac.planning_config.PlanningConfig`, as ``eval`` builds it:
    the file's planner, the task's per-sub-goal settings and switch schedule.

    goal / subgoals: uint8 ``[H, W, 3]`` images; the agent plans through ``subgoals`` when the task has a switch
    rule (``switch_after`` here overrides the file's), else to ``goal`` (default: the last sub-goal).
    require_subgoals: raise ``ValueError`` when the sub-goals would not be used (fewer than two, or no switch rule).
    planner_overrides: config fields (``samples``, ``iterations``, ``horizon`` ...; ``None`` values are ignored);
    ``samples`` below the file's ``topk`` lowers ``topk`` to it.
    """
    from dataclasses import replace

    from vjepa2_ac.evaluation import make_agent
    from vjepa2_ac.planning_config import task_name

    overrides = {k: v for k, v in planner_overrides.items() if v is not None}
    settings = planning.task(task)
    if switch_after is not None:
        settings = replace(settings, switch_after=[int(n) for n in switch_after], switch_energy=None)
        planning = replace(planning, tasks={**planning.tasks, task_name(task): settings})
    subgoals = list(subgoals) if subgoals is not None else []
    if require_subgoals and len(subgoals) < 2:
        raise ValueError(f"planning through sub-goals needs at least two sub-goal images, got {len(subgoals)}")
    if require_subgoals and not settings.plans_subgoals:
        raise ValueError(f"task {task!r} has no switch rule in the planning config, so the sub-goals would not be "
                         "used; give switch_after (--switch-after: steps per sub-goal)")
    if "samples" in overrides and "topk" not in overrides:
        topk = getattr(planning.build_planner(task, planner=planner).config, "topk", None)
        if topk is not None and topk > overrides["samples"]:
            overrides["topk"] = overrides["samples"]
    if goal is None and subgoals:
        goal = subgoals[-1]
    if goal is None:
        raise ValueError("a goal image (or sub-goal images) is required")
    info = {"goal_pixels": goal, "subgoals": subgoals}
    return make_agent(world_model, planning, task, info, seed=0 if seed is None else seed, planner=planner,
                      **overrides)


class AgentPolicy:
    """Adapts ``MPCAgent.act`` to the loop's policy: returns ``(action [7], extras)``."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def __call__(self, frame: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        action = self.agent.act(frame, state.astype(np.float32))
        rec = self.agent.records[-1]
        return action, {"energy": rec.plan_energy, "frame_energy": rec.frame_energy,
                        "planning_latency_s": rec.latency_s, "goal_index": float(rec.goal_index),
                        "fallback": float(rec.fallback)}


@dataclass
class RobotEpisode:
    """Result of ``run_robot_episode``: the loop outcome and the episode file (``None`` if not recorded)."""

    loop: LoopResult
    path: Path | None


def run_robot_episode(
    robot: SafeDriver,
    agent: Any,
    *,
    steps: int,
    episode_path: str | os.PathLike | None = None,
    metadata: dict[str, Any] | None = None,
    done: Callable[[int, np.ndarray], bool] | None = None,
    success: Callable[[], bool] | None = None,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    camera_name: str = "exterior_1",
) -> RobotEpisode:
    """Run ``agent`` for up to ``steps`` steps on a connected ``robot`` (with a camera) and record the episode.

    ``success()`` (optional) decides the episode's ``is_success`` (real runs: unknown -> False). A fault ends the
    loop with the arm stopped; the steps so far are still saved, with the reason in the ``stopped_by`` attribute.
    """
    writer = None
    if episode_path is not None:
        from vjepa2_ac.data import EpisodeWriter

        intrinsics = None
        try:
            k = robot.camera.intrinsics
            intrinsics = np.array([[k.fx, 0, k.cx], [0, k.fy, k.cy], [0, 0, 1]], dtype=np.float64)
        except (AttributeError, RuntimeError):
            pass
        meta = {
            "source": "robot",
            "driver": type(robot.driver).__name__,
            "camera_source": type(robot.camera).__name__,
            "dry_run": robot.dry_run,
            "safety_limits": json.dumps(robot.limits.to_dict()),
            "policy": type(agent).__name__,
            "planner": type(getattr(agent, "planner", None)).__name__,
            "planner_config": repr(getattr(getattr(agent, "planner", None), "config", None)),
            **(metadata or {}),
        }
        writer = EpisodeWriter(episode_path, camera=camera_name, metadata=meta, intrinsics=intrinsics)
    reset = getattr(agent, "reset", None)
    if callable(reset):
        reset()
    result = run_loop(robot, AgentPolicy(agent), steps, recorder=writer, done=done, on_step=on_step)
    path = None
    if writer is not None:
        if writer.num_steps == 0:
            writer.abort()
        else:
            writer.metadata["stopped_by"] = result.stopped_by or ""
            writer.metadata["loop_summary"] = json.dumps(result.summary())
            is_success = bool(success()) if success is not None and result.ok else False
            path = writer.close(is_success=is_success)
    return RobotEpisode(result, path)
