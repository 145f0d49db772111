"""``planning.json``: how to plan with a world model, stored next to its ``config.json``: the camera and image size
it was trained on, its planner, and per task the episode length and the *phases* of an episode.

    cfg = PlanningConfig.load("vjepa2_ac/models/vjepa2-ac-sim-small")   # built-in defaults when there is no file
    env = gymnasium.make(cfg.env_id("pick-place"), **cfg.env_kwargs_for("pick-place", object="cube"))
    agent = vjepa2_ac.agent.build_agent(world_model, cfg, "pick-place", info["goals"])

A file (every key optional; unknown keys are an error)::

    {"camera": "dual", "image_size": 128, "env_kwargs": {"pregrasp_height": 0.1},
     "planner": {"type": "cem", "preset": "paper", "samples": 64, "iterations": 5},
     "stop_on_success": true,
     "tasks": {
       "reach": {"max_steps": 40, "phases": [{"goal": "final", "steps": 10},
                                             {"goal": "final", "steps": null, "planner": {"horizon": 2}}]},
       "pick-place": {"max_steps": 30, "phases": [
         {"goal": "grasped", "steps": 8, "gripper": "open", "constraint": "box"},
         {"goal": "lifted", "steps": 14, "gripper": "closed"},
         {"goal": "placed", "steps": null, "gripper": "open"}]}}}

``planner``: ``type`` (``cem``, ``mppi``, ``icem``, ``gradient``), ``preset`` (``paper`` / ``official``: start from
``CEMConfig.paper()`` / ``.official()``; ``paper`` gives other planners the paper's search region; ``null``: the
config class defaults) and config fields (``samples``, ``iterations``, ``horizon``, ``maxnorm``, ``dtype`` as a name
or ``"auto"`` ...). A phase plans to the goal image ``goal`` (a name the env renders, see ``envs.tasks``: ``final``
is the task's own goal) for ``steps`` actions (``null``: to the end of the episode, the last phase only) or until the
observed frame's energy to it drops below ``switch_energy``; ``gripper`` is ``search`` (the planner searches dg),
``open`` or ``closed`` (dg forced to -1 / +1: the released CEM's ``close_gripper`` and its mirror); ``constraint``
(``l1_ball`` / ``box``) and ``planner`` override the file's planner fields while the phase is active. The look-ahead
above is reach's two phases on one goal: horizon 1 for ten actions, then horizon 2.

Files written before phases existed are refused with a pointer to ``vjepa2-ac upgrade-planning`` (see
:func:`upgrade_planning_dict`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from envs.tasks import FINAL, TASK_NAMES, task_spec
from planners.mpc import check_phase_ends
from vjepa2_ac.atomic import atomic_write_text

FILE_NAME = "planning.json"

# planner type -> (module, planner class, config class)
PLANNERS: dict[str, tuple[str, str, str]] = {
    "cem": ("planners.cem", "CEM", "CEMConfig"),
    "mppi": ("planners.mppi", "MPPI", "MPPIConfig"),
    "icem": ("planners.icem", "ICEM", "ICEMConfig"),
    "gradient": ("planners.gradient", "GradientPlanner", "GradientConfig"),
}
PRESETS = ("paper", "official", None)
GRIPPER_MODES = ("search", "open", "closed")
CONSTRAINTS = ("l1_ball", "box")
_PHASE_KEYS = {"gripper": "close_gripper / open_gripper", "constraint": "constraint"}  # phase key -> planner field(s)

# keys of the format before phases (refused with a pointer to the converter)
_OLD_TOP = {"planner_preset", "planner_config"}
_OLD_TASK = {"switch_after", "switch_energy", "use_subgoals", "planner_config", "subgoal_planner_config",
             "subgoal_order", "fallback_after", "fallback_planner_config"}


def task_name(name: str) -> str:
    """``name`` if it is a task of the registry (``envs.tasks``); ``ValueError`` naming the valid ones otherwise."""
    return task_spec(name).name


def _is_int(value: Any, low: int = 1) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= low


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(value).__name__}")
    return dict(value)


def _check_keys(data: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; valid: {sorted(known)}")


@dataclass
class PlannerSpec:
    """The file's planner: ``type``, ``preset`` and config ``fields`` (JSON: one object, fields flattened)."""

    type: str = "cem"
    preset: str | None = "paper"
    fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in PLANNERS:
            raise ValueError(f"planner.type must be one of {list(PLANNERS)}, got {self.type!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"planner.preset must be one of {list(PRESETS)}, got {self.preset!r}")
        self.fields = _object(self.fields, "planner")
        _reject_phase_fields(self.fields, "planner")

    @classmethod
    def from_dict(cls, data: Any) -> PlannerSpec:
        data = _object(data, "planner")
        return cls(type=data.pop("type", "cem"), preset=data.pop("preset", "paper"), fields=data)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "preset": self.preset, **self.fields}


def _reject_phase_fields(values: dict, where: str) -> None:
    for key in ("close_gripper", "open_gripper"):
        if key in values:
            raise ValueError(f"{where} sets {key!r}: say it per phase with \"gripper\": \"closed\" / \"open\"")


@dataclass
class PhaseSpec:
    """One phase of a task in a planning file (see the module docstring)."""

    goal: str = FINAL
    steps: int | None = None
    switch_energy: float | None = None
    gripper: str = "search"
    constraint: str | None = None
    planner: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.goal, str) or not self.goal:
            raise ValueError(f"goal must be the name of a goal image, got {self.goal!r}")
        if self.steps is not None and not _is_int(self.steps):
            raise ValueError(f"steps must be an int >= 1 or null, got {self.steps!r}")
        if self.switch_energy is not None and (isinstance(self.switch_energy, bool)
                                               or not isinstance(self.switch_energy, Real)
                                               or not self.switch_energy > 0):
            raise ValueError(f"switch_energy must be a number > 0, got {self.switch_energy!r}")
        if self.gripper not in GRIPPER_MODES:
            raise ValueError(f"gripper must be one of {list(GRIPPER_MODES)}, got {self.gripper!r}")
        if self.constraint not in (*CONSTRAINTS, None):
            raise ValueError(f"constraint must be one of {list(CONSTRAINTS)}, got {self.constraint!r}")
        self.planner = _object(self.planner, "planner")
        _reject_phase_fields(self.planner, "planner")
        for key in ("constraint", "type", "preset"):
            if key in self.planner:
                hint = "the phase's own \"constraint\"" if key == "constraint" else "the file's \"planner\""
                raise ValueError(f"a phase's planner overrides must not set {key!r} (use {hint})")

    def planner_fields(self) -> dict[str, Any]:
        """This phase's planner field overrides, with ``gripper`` and ``constraint`` spelled as config fields."""
        out = dict(self.planner)
        if self.gripper == "closed":
            out["close_gripper"] = 0
        elif self.gripper == "open":
            out["open_gripper"] = 0
        if self.constraint is not None:
            out["constraint"] = self.constraint
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"goal": self.goal, "steps": self.steps}
        if self.switch_energy is not None:
            out["switch_energy"] = self.switch_energy
        out["gripper"] = self.gripper
        if self.constraint is not None:
            out["constraint"] = self.constraint
        if self.planner:
            out["planner"] = dict(self.planner)
        return out


@dataclass
class TaskPlan:
    """A task's ``max_steps`` (actions per episode) and ``phases`` (the last one runs to the end)."""

    max_steps: int = 20
    phases: list[PhaseSpec] = field(default_factory=lambda: [PhaseSpec()])

    def __post_init__(self) -> None:
        if not _is_int(self.max_steps):
            raise ValueError(f"max_steps must be an int >= 1, got {self.max_steps!r}")
        if not isinstance(self.phases, (list, tuple)) or not self.phases:
            raise ValueError(f"phases must be a non-empty list, got {self.phases!r}")
        phases = []
        for i, ph in enumerate(self.phases):
            if isinstance(ph, PhaseSpec):
                phases.append(ph)
                continue
            ph = _object(ph, f"phases[{i}]")
            _check_keys(ph, {f.name for f in fields(PhaseSpec)}, f"phases[{i}]")
            try:
                phases.append(PhaseSpec(**ph))
            except ValueError as err:
                raise ValueError(f"phases[{i}]: {err}") from None
        check_phase_ends([(ph.steps, ph.switch_energy) for ph in phases])  # the rule MPCAgent applies
        self.phases = phases

    @classmethod
    def from_dict(cls, data: Any, where: str = "task") -> TaskPlan:
        data = _object(data, where)
        old = sorted(set(data) & _OLD_TASK)
        if old:
            raise ValueError(f"{where} uses the old planning format ({old}); a task is now "
                             "{\"max_steps\": N, \"phases\": [...]}: convert the file with "
                             "`vjepa2-ac upgrade-planning FILE`")
        _check_keys(data, {"max_steps", "phases"}, where)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {"max_steps": self.max_steps, "phases": [p.to_dict() for p in self.phases]}


def _default_tasks() -> dict[str, TaskPlan]:
    # The paper's protocol (V-JEPA 2, Sec. 4; the ``paper`` evaluation suite): one goal image per task, the gripper
    # searched, except reach-with-object, which starts with the object in the hand and holds it (the released
    # planner's ``close_gripper``); pick-and-place through the three sub-goal images switched after 4 and 10
    # actions, then 4 more.
    pick_place = [PhaseSpec("grasped", 4), PhaseSpec("lifted", 10), PhaseSpec("placed")]
    return {"reach": TaskPlan(20), "grasp": TaskPlan(20),
            "reach-with-object": TaskPlan(20, [PhaseSpec(gripper="closed")]),
            "pick-place": TaskPlan(18, pick_place)}


@dataclass
class PlanningConfig:
    """How to plan with a given world model (see the module docstring for the JSON layout).

    camera, image_size: the env camera and square frame size the model was trained on (goal images use them too).
    env_kwargs: further ``FrankaEnvConfig`` fields passed to ``gymnasium.make``.
    planner: the planner type, preset and config fields (:class:`PlannerSpec`).
    stop_on_success: end an episode as soon as the task reports success (the result counts as a success).
    tasks: per task, :class:`TaskPlan` (tasks not listed use the built-in defaults).
    source: the file this was read from (``None`` = built-in defaults); not saved.
    """

    camera: str = "exterior_1"
    image_size: int = 256
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    planner: PlannerSpec = field(default_factory=PlannerSpec)
    stop_on_success: bool = True
    tasks: dict[str, TaskPlan] = field(default_factory=_default_tasks)
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _is_int(self.image_size, 16) or self.image_size > 1024:
            raise ValueError(f"image_size must be an int in 16..1024 (square frames), got {self.image_size!r}")
        self.env_kwargs = _object(self.env_kwargs, "env_kwargs")
        clash = {"camera", "image_size", "task", "object", "backend"} & set(self.env_kwargs)
        if clash:
            raise ValueError(f"env_kwargs must not set {sorted(clash)} (use the top-level fields / arguments)")
        if not isinstance(self.stop_on_success, bool):
            raise ValueError(f"stop_on_success must be true or false, got {self.stop_on_success!r}")
        if not isinstance(self.planner, PlannerSpec):
            self.planner = PlannerSpec.from_dict(self.planner)
        tasks = _default_tasks()
        for name, value in _object(self.tasks, "tasks").items():
            where = f"tasks[{name!r}]"
            tasks[task_name(name)] = value if isinstance(value, TaskPlan) else TaskPlan.from_dict(value, where)
        self.tasks = tasks
        for name, plan in self.tasks.items():
            rendered = self.goal_names(name)
            for i, ph in enumerate(plan.phases):
                if ph.goal not in rendered:
                    raise ValueError(f"tasks[{name!r}].phases[{i}] plans to goal {ph.goal!r}, which the {name} env "
                                     f"does not render with these env_kwargs; it renders {list(rendered)}")

    # ------------------------------------------------------------------------------------------ per task
    def task(self, name: str) -> TaskPlan:
        """Settings of task ``name`` (the defaults when the file does not list it)."""
        return self.tasks[task_name(name)]

    def goal_names(self, name: str) -> tuple[str, ...]:
        """The goal images task ``name``'s env renders with :attr:`env_kwargs` (``"final"`` included)."""
        rendered = task_spec(name).goal_names(pregrasp=float(self.env_kwargs.get("pregrasp_height", 0) or 0) > 0)
        return rendered if FINAL in rendered else (*rendered, FINAL)

    @staticmethod
    def env_id(name: str) -> str:
        """Gymnasium id of task ``name``."""
        return task_spec(name).env_id

    def env_kwargs_for(self, name: str, *, object: str = "cube", backend: str = "mujoco", **extra: Any) -> dict:
        """``gymnasium.make`` keyword arguments for task ``name`` (``extra`` wins over the file)."""
        task_name(name)
        return {"object": object, "backend": backend, "camera": self.camera,
                "image_size": (self.image_size, self.image_size), **self.env_kwargs, **extra}

    def planner_fields(self, phase: PhaseSpec | None = None, **overrides: Any) -> dict[str, Any]:
        """Planner config fields: the file's, then ``phase``'s (its planner overrides, gripper, constraint), then
        ``overrides`` (JSON values converted: ``dtype`` names -> ``torch.dtype``)."""
        merged = {**self.planner.fields, **(phase.planner_fields() if phase is not None else {}), **overrides}
        return _convert_planner_fields(merged)

    # ------------------------------------------------------------------------------------------ files
    @classmethod
    def load(cls, model_dir: str | os.PathLike | None) -> PlanningConfig:
        """Read ``<model_dir>/planning.json`` (or a ``.json`` file given directly); built-in defaults when
        ``model_dir`` is ``None`` or the directory has no such file."""
        if model_dir is None:
            return cls()
        path = Path(model_dir)
        if path.is_dir():
            path = path / FILE_NAME
            if not path.is_file():
                return cls()
        elif not path.is_file():
            raise FileNotFoundError(f"planning config not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        try:
            config = cls.from_dict(data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err
        config.source = str(path)
        return config

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanningConfig:
        data = _object(data, "a planning config")
        old = sorted(set(data) & _OLD_TOP) + (["planner (a string)"] if isinstance(data.get("planner"), str) else [])
        if old:
            raise ValueError(f"this planning config uses the old format ({old}); \"planner\" is now one object "
                             "{\"type\": ..., \"preset\": ..., fields...} and tasks list phases: convert the file "
                             "with `vjepa2-ac upgrade-planning FILE`")
        _check_keys(data, {f.name for f in fields(cls)} - {"source"}, "the planning config")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {"camera": self.camera, "image_size": self.image_size, "env_kwargs": dict(self.env_kwargs),
                "planner": self.planner.to_dict(), "stop_on_success": self.stop_on_success,
                "tasks": {name: plan.to_dict() for name, plan in self.tasks.items()}}

    def save(self, directory_or_file: str | os.PathLike) -> Path:
        """Write ``planning.json`` into a directory (or to the given ``.json`` path) atomically."""
        path = Path(directory_or_file)
        if path.suffix != ".json":
            path = path / FILE_NAME
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2, default=str) + "\n")


_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


def _convert_planner_fields(values: dict[str, Any]) -> dict[str, Any]:
    """JSON values -> config values: ``dtype`` names -> ``torch.dtype``, ``axis`` keys -> int, lists -> tuples
    for ``betas``."""
    out = dict(values)
    dtype = out.get("dtype")
    if isinstance(dtype, str) and dtype != "auto":  # "auto" is resolved per device by the planner
        import torch

        name = dtype.removeprefix("torch.")
        if name not in _DTYPES:
            raise ValueError(f"planner dtype must be one of {sorted(_DTYPES) + ['auto']}, got {dtype!r}")
        out["dtype"] = getattr(torch, _DTYPES[name])
    if isinstance(out.get("axis"), dict):
        out["axis"] = {int(k): float(v) for k, v in out["axis"].items()}
    if isinstance(out.get("betas"), list):
        out["betas"] = tuple(out["betas"])
    return out


# ---------------------------------------------------------------------------------------------- the old format
def upgrade_planning_dict(old: dict[str, Any]) -> dict[str, Any]:
    """A planning config of the format before phases -> the same plan as phases (what ``vjepa2-ac
    upgrade-planning`` writes). Sub-goals become phases named after the env's goal images; ``switch_after``
    their ``steps``; ``subgoal_planner_config`` their ``gripper`` / ``constraint`` / ``planner``; a fallback one
    more phase on the final goal. Episodes planned with the result take the same actions."""
    old = _object(old, "a planning config")
    new = {k: v for k, v in old.items() if k not in ("planner", "planner_preset", "planner_config", "tasks")}
    new["planner"] = {"type": old.get("planner", "cem"), "preset": old.get("planner_preset", "paper"),
                      **_object(old.get("planner_config", {}), "planner_config")}
    env_kwargs = _object(old.get("env_kwargs", {}), "env_kwargs")
    pregrasp = float(env_kwargs.get("pregrasp_height", 0) or 0) > 0
    new["tasks"] = {}
    for name, task in _object(old.get("tasks", {}), "tasks").items():
        task = _object(task, f"tasks[{name!r}]")
        canon = str(name).strip().lower().replace("_", "-")
        new["tasks"][task_name(canon)] = _upgrade_task(task, task_spec(canon).goal_names(pregrasp), canon)
    return new


def _upgrade_task(task: dict[str, Any], goal_names: tuple[str, ...], name: str) -> dict[str, Any]:
    if "phases" in task:
        return task
    base = _object(task.get("planner_config", {}), "planner_config")
    switch_after, switch_energy = task.get("switch_after"), task.get("switch_energy")
    uses_subgoals = task.get("use_subgoals", True) and (switch_after is not None or switch_energy is not None)
    if uses_subgoals and len(goal_names) > 1:
        order = task.get("subgoal_order") or list(range(len(goal_names)))
        per_goal = task.get("subgoal_planner_config") or [{}] * len(order)
        if len(per_goal) != len(order):
            raise ValueError(f"tasks[{name!r}].subgoal_planner_config has {len(per_goal)} entries for {len(order)} "
                             "sub-goals")
        phases = [{"goal": goal_names[i], **_phase_fields({**base, **cfg}, name)} for i, cfg in zip(order, per_goal)]
        for i, phase in enumerate(phases[:-1]):
            if switch_after is not None:
                phase["steps"] = int(switch_after[i])
            else:
                phase["steps"], phase["switch_energy"] = None, float(switch_energy)
    else:
        phases = [{"goal": FINAL, **_phase_fields(base, name)}]
    phases[-1]["steps"] = None
    if task.get("fallback_after") is not None:
        last = phases[-1]
        last["steps"] = int(task["fallback_after"])
        last_goal = (task.get("subgoal_planner_config") or [{}])[-1] if uses_subgoals and len(goal_names) > 1 else {}
        fallback = {**base, **last_goal, **_object(task["fallback_planner_config"], "fallback_planner_config")}
        phases.append({"goal": last["goal"], "steps": None, **_phase_fields(fallback, name)})
    return {"max_steps": task.get("max_steps", 20), "phases": [_ordered(p) for p in phases]}


def _phase_fields(planner: dict[str, Any], name: str) -> dict[str, Any]:
    planner = dict(planner)
    out: dict[str, Any] = {}
    close, opened = planner.pop("close_gripper", None), planner.pop("open_gripper", None)
    if close not in (None, 0) or opened not in (None, 0):
        raise ValueError(f"tasks[{name!r}]: close_gripper / open_gripper from horizon step > 0 has no phase form")
    out["gripper"] = "closed" if close == 0 else "open" if opened == 0 else "search"
    if "constraint" in planner:
        out["constraint"] = planner.pop("constraint")
    if planner:
        out["planner"] = planner
    return out


def _ordered(phase: dict[str, Any]) -> dict[str, Any]:
    keys = ("goal", "steps", "switch_energy", "gripper", "constraint", "planner")
    return {k: phase[k] for k in keys if k in phase}


__all__ = ["CONSTRAINTS", "FILE_NAME", "GRIPPER_MODES", "PLANNERS", "TASK_NAMES", "PhaseSpec", "PlannerSpec",
           "PlanningConfig", "TaskPlan", "task_name", "upgrade_planning_dict"]
