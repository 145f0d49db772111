"""Simulated Franka Panda tabletop environments (Gymnasium) for V-JEPA 2-AC planning.

Importing ``envs`` sets ``MUJOCO_GL=egl`` (unless already set) before anything imports mujoco, and registers:

* ``vjepa2ac/FrankaReach-v0``            reach a goal position with the gripper
* ``vjepa2ac/FrankaGrasp-v0``            grasp the object and lift it >= 5 cm (goal images: grasped, lifted)
* ``vjepa2ac/FrankaReachWithObject-v0``  carry the (already grasped) object to a goal position
* ``vjepa2ac/FrankaPickPlace-v0``        pick the object and place it at a target (grasped, lifted, placed)

(the task names, ids and goal-image names are defined once, in ``envs.tasks``),
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
from envs.tasks import TASK_NAMES, TASKS, TaskSpec, task_spec  # noqa: E402

ENV_IDS = {spec.env_id: (spec.name, spec.max_episode_steps) for spec in TASKS.values()}

for _spec in TASKS.values():
    if _spec.env_id not in registry:
        register(id=_spec.env_id, entry_point="envs.franka_env:FrankaEnv", max_episode_steps=_spec.max_episode_steps,
                 kwargs={"task": _spec.name})

__all__ = ["ENV_IDS", "TASKS", "TASK_NAMES", "FrankaEnv", "FrankaEnvConfig", "ScriptedExpert", "TaskSpec",
           "scripted_expert", "task_spec"]
