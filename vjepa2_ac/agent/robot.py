"""Closed-loop V-JEPA 2-AC control of a robot (real or ``SimDriver``) through the safety layer.

    from envs.robot import SafeDriver, SafetyLimits, SimDriver
    from vjepa2_ac.agent import build_agent, load_world_model, run_robot_episode

    wm, planning, _ = load_world_model("vjepa2-ac-sim-small")
    sim = SimDriver("reach", **planning.env_kwargs_for("reach"))
    agent = build_agent(wm, planning, "reach", {"final": sim.goal_image})   # a real robot: a captured image
    with SafeDriver(sim, SafetyLimits(), camera=sim) as robot:
        run = run_robot_episode(robot, agent, steps=20, episode_path="runs/ep_000.h5")

Each step is recorded in the library's episode format (frame, state, executed action, and per-step ``energy``,
``frame_energy``, ``planning_latency_s``, ``phase`` (the index of the phase that planned it),
``requested_action``, ``loop_overhead_s``), so real runs become training data. A run that ends in a fault keeps the steps recorded so far (``stopped_by`` attribute).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.robot.loop import LoopResult, run_loop
from envs.robot.safety import SafeDriver
from vjepa2_ac.model.space import DROID_FRANKA


class AgentPolicy:
    """Adapts ``MPCAgent.act`` to the loop's policy: returns ``(action [A], extras)``."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def __call__(self, frame: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        action = self.agent.act(frame, state.astype(np.float32))
        rec = self.agent.records[-1]
        return action, {"energy": rec.plan_energy, "frame_energy": rec.frame_energy,
                        "planning_latency_s": rec.latency_s, "phase": float(rec.phase)}


@dataclass
class RobotEpisode:
    """Result of ``run_robot_episode``: the loop outcome and the episode file (``None`` if not recorded)."""

    loop: LoopResult
    path: Path | None


def run_robot_episode(
    robot: SafeDriver | Any,
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

    ``robot`` is a :class:`~envs.robot.SafeDriver` for a Franka in DROID's end-effector space; a robot in another
    space (the agent's ``space``) comes with its own safety layer, any object with ``read_frame``, ``get_state``,
    ``move`` and ``stop`` (see ``envs.robot.loop.run_loop``).
    """
    space = getattr(agent, "space", DROID_FRANKA)
    if isinstance(robot, SafeDriver) and space != DROID_FRANKA:
        raise ValueError(f"the Franka safety layer (SafeDriver) checks DROID end-effector commands; the agent's robot "
                         f"space is {space.describe()}: pass that robot's own driver with its own safety layer")
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
            "driver": type(getattr(robot, "driver", robot)).__name__,
            "camera_source": type(getattr(robot, "camera", None)).__name__,
            "dry_run": bool(getattr(robot, "dry_run", False)),
            "safety_limits": json.dumps(robot.limits.to_dict()) if isinstance(robot, SafeDriver) else "",
            "policy": type(agent).__name__,
            "planner": type(getattr(agent, "planner", None)).__name__,
            "planner_config": repr(getattr(getattr(agent, "planner", None), "config", None)),
            **(metadata or {}),
        }
        writer = EpisodeWriter(episode_path, camera=camera_name, metadata=meta, intrinsics=intrinsics, space=space)
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
