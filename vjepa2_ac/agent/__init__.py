"""The agent layer: planning files (phases), THE agent builder, loading a model with its planning file, and the
robot episode.

    from vjepa2_ac.agent import build_agent, load_world_model, make_env
    wm, planning, _ = load_world_model("vjepa2-ac-sim-small")
    env = make_env(planning, "reach")
    obs, info = env.reset(seed=0)
    agent = build_agent(wm, planning, "reach", info["goals"])
"""

from vjepa2_ac.agent.builder import build_agent, build_planner
from vjepa2_ac.agent.loading import (
    BUNDLED_MODEL,
    RELEASED_ENCODER,
    ModelNotAvailable,
    load_world_model,
    make_env,
)
from vjepa2_ac.agent.planning import PhaseSpec, PlannerSpec, PlanningConfig, TaskPlan, upgrade_planning_dict

__all__ = ["BUNDLED_MODEL", "RELEASED_ENCODER", "ModelNotAvailable", "PhaseSpec", "PlannerSpec", "PlanningConfig",
           "TaskPlan", "build_agent", "build_planner", "load_world_model", "make_env", "run_robot_episode",
           "upgrade_planning_dict"]


def __getattr__(name: str):
    if name in ("run_robot_episode", "RobotEpisode", "AgentPolicy"):  # imports envs.robot: only on use
        from vjepa2_ac.agent import robot

        return getattr(robot, name)
    raise AttributeError(f"module 'vjepa2_ac.agent' has no attribute {name!r}")
