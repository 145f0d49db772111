"""Simulated Franka Panda tabletop environments (Gymnasium) for V-JEPA 2-AC planning.

Importing ``envs`` sets ``MUJOCO_GL=egl`` (unless already set) before anything imports mujoco, and registers:

* ``vjepa2ac/FrankaReach-v0``            reach a goal position with the gripper
* ``vjepa2ac/FrankaGrasp-v0``            grasp the object and lift it >= 5 cm (2 sub-goal images: grasped, lifted)
* ``vjepa2ac/FrankaReachWithObject-v0``  carry the (already grasped) object to a goal position
* ``vjepa2ac/FrankaPickPlace-v0``        pick the object and place it at a target (3 sub-goal images)

each taking ``object="cube"|"cup"``, ``backend="mujoco"|"pybullet"`` and any :class:`FrankaEnvConfig` field.
This package never imports torch.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] == "egl":
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from gymnasium.envs.registration import register, registry  # noqa: E402

from envs.experts import ScriptedExpert, scripted_expert  # noqa: E402
from envs.franka_env import FrankaEnv, FrankaEnvConfig  # noqa: E402

ENV_IDS = {
    "vjepa2ac/FrankaReach-v0": ("reach", 40),
    "vjepa2ac/FrankaGrasp-v0": ("grasp", 40),
    "vjepa2ac/FrankaReachWithObject-v0": ("reach_with_object", 40),
    "vjepa2ac/FrankaPickPlace-v0": ("pick_place", 80),
}

for _env_id, (_task, _steps) in ENV_IDS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point="envs.franka_env:FrankaEnv", max_episode_steps=_steps,
                 kwargs={"task": _task})

__all__ = ["ENV_IDS", "FrankaEnv", "FrankaEnvConfig", "ScriptedExpert", "scripted_expert"]
