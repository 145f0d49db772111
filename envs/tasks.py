"""The task registry: every task name is defined here once, with one spelling used everywhere (CLI, planning files,
``FrankaEnvConfig.task``, Gymnasium ids, output file names).

    from envs.tasks import TASKS, task_spec
    spec = task_spec("pick-place")    # TaskSpec(name="pick-place", env_id="vjepa2ac/FrankaPickPlace-v0", ...)
    spec.goal_names(pregrasp=True)    # ("pregrasp", "grasped", "lifted", "placed")

Goal images are named. A task renders, in order, the images of :attr:`TaskSpec.goals` (and ``"pregrasp"`` first when
the env's ``pregrasp_height > 0`` and the task has a grasp); ``"final"`` is always the last of them, the task's own
goal (reach and reach-with-object render that one only). The env returns them as ``info["goals"]`` (a dict, name -> uint8 ``[H, W, 3]``).
"""

from __future__ import annotations

from dataclasses import dataclass

FINAL = "final"  # the name of a task's own goal image (the last one it renders)
PREGRASP = "pregrasp"


@dataclass(frozen=True)
class TaskSpec:
    """One task: its name, Gymnasium id, default episode length, objects, and named goal images."""

    name: str
    env_id: str
    max_episode_steps: int
    objects: tuple[str, ...]
    goals: tuple[str, ...]  # the named goal images in order, without the optional pre-grasp image
    description: str

    @property
    def has_grasp(self) -> bool:
        """Whether the task starts with a grasp (then it can render a pre-grasp image first)."""
        return "grasped" in self.goals

    def goal_names(self, pregrasp: bool = False) -> tuple[str, ...]:
        """Names of the goal images the env renders, in order (``"final"`` aliases the last one)."""
        return ((PREGRASP,) if pregrasp and self.has_grasp else ()) + self.goals


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("reach", "vjepa2ac/FrankaReach-v0", 40, ("cube", "cup", "none"), (FINAL,),
                 "reach a goal position with the gripper"),
        TaskSpec("grasp", "vjepa2ac/FrankaGrasp-v0", 40, ("cube", "cup"), ("grasped", "lifted"),
                 "grasp the object and lift it >= 5 cm"),
        TaskSpec("reach-with-object", "vjepa2ac/FrankaReachWithObject-v0", 40, ("cube", "cup"), (FINAL,),
                 "carry the (already grasped) object to a goal position"),
        TaskSpec("pick-place", "vjepa2ac/FrankaPickPlace-v0", 80, ("cube", "cup"), ("grasped", "lifted", "placed"),
                 "pick the object and place it at a target"),
    )
}
TASK_NAMES = tuple(TASKS)


def task_spec(name: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``name``; ``ValueError`` naming the valid spellings otherwise."""
    if name in TASKS:
        return TASKS[name]
    hint = ""
    if isinstance(name, str) and name.strip().lower().replace("_", "-") in TASKS:
        hint = f" (did you mean {name.strip().lower().replace('_', '-')!r}?)"
    raise ValueError(f"unknown task {name!r}{hint}; expected one of {list(TASK_NAMES)}")
