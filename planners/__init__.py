"""Planners for the V-JEPA 2-AC world model: CEM (released and paper settings), MPPI, iCEM, gradient,
and the receding-horizon ``MPCAgent`` (an episode as a list of ``Phase`` s). Planners see a world model only through :class:`WorldModelLike`.

    from planners import CEM, CEMConfig, MPCAgent
    plan = CEM(CEMConfig.official(samples=100)).plan(wm, z0, s0, z_goal, generator=g)
"""

from planners.cem import CEM, CEMConfig
from planners.common import SearchConfig, native_low_precision, rollout_energy
from planners.constraints import ActionSpace, check_actions, clip_box, project_l1_ball
from planners.gradient import GradientConfig, GradientPlanner
from planners.icem import ICEM, ICEMConfig, colored_noise
from planners.mpc import MPCAgent, Phase, StepRecord
from planners.mppi import MPPI, MPPIConfig
from planners.protocol import NonFiniteError, Plan, Planner, WorldModelLike

__all__ = [
    "CEM",
    "CEMConfig",
    "MPPI",
    "MPPIConfig",
    "ICEM",
    "ICEMConfig",
    "GradientPlanner",
    "GradientConfig",
    "MPCAgent",
    "Phase",
    "StepRecord",
    "Plan",
    "Planner",
    "WorldModelLike",
    "NonFiniteError",
    "SearchConfig",
    "ActionSpace",
    "clip_box",
    "project_l1_ball",
    "check_actions",
    "colored_noise",
    "native_low_precision",
    "rollout_energy",
]
