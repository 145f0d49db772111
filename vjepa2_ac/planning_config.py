"""``planning.json``: the settings a world model was trained and tuned for (camera, image size, planner, per-task
sub-goal schedules and step budgets), stored next to the model's ``config.json``.

    cfg = PlanningConfig.load("vjepa2_ac/models/vjepa2-ac-sim-small")   # defaults when the file is missing
    planner = cfg.build_planner("pick-place")                          # CEM / MPPI / iCEM / gradient
    env = gymnasium.make(cfg.env_id("pick-place"), **cfg.env_kwargs_for("pick-place", object="cube"))

Example file (every key optional; unknown keys are an error)::

    {"camera": "workspace", "image_size": 128, "env_kwargs": {"msaa": 0},
     "planner": "cem", "planner_preset": "paper", "planner_config": {"samples": 200, "iterations": 5},
     "stop_on_success": true,
     "tasks": {"reach": {"max_steps": 20},
               "grasp": {"max_steps": 25, "switch_after": [8], "subgoal_planner_config": [{}, {"close_gripper": 0}]},
               "pick-place": {"max_steps": 30, "switch_after": [8, 12], "planner_config": {"maxnorm": 0.05},
                              "subgoal_planner_config": [{}, {"close_gripper": 0}, {"open_gripper": 0}]}}}

``subgoal_planner_config`` gives each sub-goal its own planner fields; here the gripper is searched on the way to the
object, forced closed while lifting and carrying (the released CEM's ``close_gripper``) and forced open on the
"placed" sub-goal (``open_gripper``). Grasp plans to its goal image only unless its task entry sets ``switch_after``
(the paper's one-image protocol): a task plans through sub-goals only when it has a switch rule (``switch_after`` or
``switch_energy``). ``subgoal_order`` plans phases over the env's sub-goal images, e.g. ``[0, 0, 1, 2]`` with four
``switch_after`` and ``subgoal_planner_config`` entries: a second phase on the "grasped" image with its own settings.
``"reach": {"max_steps": 40, "fallback_after": 10, "fallback_planner_config": {"horizon": 2}}`` plans with horizon 1
for ten actions and then, if the episode is still running, looks two actions ahead (``TaskSettings.fallback_after``).

Task names are ``reach``, ``grasp``, ``reach-with-object``, ``pick-place`` (underscores are accepted too).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vjepa2_ac.atomic import atomic_write_text

FILE_NAME = "planning.json"

TASK_ENV_IDS: dict[str, str] = {
    "reach": "vjepa2ac/FrankaReach-v0",
    "grasp": "vjepa2ac/FrankaGrasp-v0",
    "reach-with-object": "vjepa2ac/FrankaReachWithObject-v0",
    "pick-place": "vjepa2ac/FrankaPickPlace-v0",
}
TASKS = tuple(TASK_ENV_IDS)

# planner name -> (module, planner class, config class)
PLANNERS: dict[str, tuple[str, str, str]] = {
    "cem": ("planners.cem", "CEM", "CEMConfig"),
    "mppi": ("planners.mppi", "MPPI", "MPPIConfig"),
    "icem": ("planners.icem", "ICEM", "ICEMConfig"),
    "gradient": ("planners.gradient", "GradientPlanner", "GradientConfig"),
}
PRESETS = ("paper", "official", None)


def task_name(name: str) -> str:
    """Canonical task name (``pick_place`` / ``PICK-PLACE`` -> ``pick-place``); ``ValueError`` if unknown."""
    canon = str(name).strip().lower().replace("_", "-")
    if canon not in TASK_ENV_IDS:
        raise ValueError(f"unknown task {name!r}; expected one of {list(TASKS)}")
    return canon


@dataclass
class TaskSettings:
    """Per-task settings.

    max_steps: actions per episode (MPC steps).
    switch_after: steps spent on each sub-goal before moving to the next (paper pick-and-place: ``[4, 10, 4]``);
        ``len(subgoals) - 1`` or ``len(subgoals)`` entries. Mutually exclusive with ``switch_energy``.
    switch_energy: move to the next sub-goal when the observed frame's energy to it drops below this.
    use_subgoals: plan through the env's sub-goal images (pick-and-place has three: grasped, lifted over the
        target, placed; grasp two: grasped, lifted) when a switch rule (``switch_after`` / ``switch_energy``) is
        set; ``False``, or no switch rule: final goal only (see :attr:`plans_subgoals`).
    planner_config: planner fields overriding :attr:`PlanningConfig.planner_config` for this task.
    subgoal_planner_config: one JSON object per sub-goal, planner fields over ``planner_config`` while that
        sub-goal is active; ``[{}, {"close_gripper": 0}, {}]`` keeps pick-and-place's gripper closed while it lifts
        and carries (the released CEM's ``close_gripper``; ``{"open_gripper": 0}`` on the last one releases the
        object at once). ``None``: one planner for every sub-goal. Not used when the episode plans to the final goal
        only (``plans_subgoals`` false, or a single goal image).
    subgoal_order: the env sub-goal image (0-based) each phase plans to, in order; ``switch_after`` and
        ``subgoal_planner_config`` then list phases. ``[0, 0, 1, 2]`` with ``[{"open_gripper": 0},
        {"close_gripper": 0}, ...]`` closes the gripper while still planning to the "grasped" image (in place)
        before lifting. ``None``: each sub-goal once.
    fallback_after, fallback_planner_config: after ``fallback_after`` actions on the final goal (the only one when
        the task plans to its goal image alone) plan with ``fallback_planner_config``'s fields over the final goal's
        (``{"horizon": 2}``: a longer look-ahead for an episode that a one-step search has not finished); both or
        neither. ``None``: one planner per goal throughout.
    """

    max_steps: int = 20
    switch_after: list[int] | None = None
    switch_energy: float | None = None
    use_subgoals: bool = True
    planner_config: dict[str, Any] = field(default_factory=dict)
    subgoal_planner_config: list[dict[str, Any]] | None = None
    subgoal_order: list[int] | None = None
    fallback_after: int | None = None
    fallback_planner_config: dict[str, Any] | None = None

    @property
    def plans_subgoals(self) -> bool:
        """Whether an episode plans through the env's sub-goal images: ``use_subgoals`` and a switch rule."""
        return self.use_subgoals and (self.switch_after is not None or self.switch_energy is not None)

    def __post_init__(self) -> None:
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be an int >= 1, got {self.max_steps!r}")
        if self.switch_after is not None:
            if not isinstance(self.switch_after, (list, tuple)) or not self.switch_after or any(
                    isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.switch_after):
                raise ValueError(f"switch_after must be a non-empty list of ints >= 1, got {self.switch_after!r}")
            self.switch_after = [int(n) for n in self.switch_after]
        if self.switch_after is not None and self.switch_energy is not None:
            raise ValueError("give at most one of switch_after and switch_energy")
        if self.switch_energy is not None and not float(self.switch_energy) > 0:
            raise ValueError(f"switch_energy must be > 0, got {self.switch_energy!r}")
        if not isinstance(self.planner_config, dict):
            raise ValueError(f"planner_config must be a JSON object, got {type(self.planner_config).__name__}")
        per_goal = self.subgoal_planner_config
        if per_goal is not None and (not isinstance(per_goal, (list, tuple)) or not per_goal
                                     or not all(isinstance(d, dict) for d in per_goal)):
            raise ValueError(f"subgoal_planner_config must be a non-empty list of JSON objects (one per sub-goal), "
                             f"got {per_goal!r}")
        order = self.subgoal_order
        if order is not None:
            if not isinstance(order, (list, tuple)) or not order or any(
                    isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in order):
                raise ValueError(f"subgoal_order must be a non-empty list of sub-goal indices >= 0, got {order!r}")
            self.subgoal_order = [int(n) for n in order]
        if (self.fallback_after is None) != (self.fallback_planner_config is None):
            raise ValueError("give both fallback_after and fallback_planner_config, or neither")
        if self.fallback_after is not None:
            if isinstance(self.fallback_after, bool) or not isinstance(self.fallback_after, int) \
                    or self.fallback_after < 1:
                raise ValueError(f"fallback_after must be an int >= 1 (actions on the final goal), "
                                 f"got {self.fallback_after!r}")
            if not isinstance(self.fallback_planner_config, dict):
                raise ValueError(f"fallback_planner_config must be a JSON object, "
                                 f"got {type(self.fallback_planner_config).__name__}")


def _default_tasks() -> dict[str, TaskSettings]:
    # Paper-like budgets: pick-and-place switches sub-goals after 4, 10 and 4 steps (V-JEPA 2, Sec. 4).
    return {
        "reach": TaskSettings(max_steps=20),
        "grasp": TaskSettings(max_steps=20),  # paper: one goal image (object held, lifted); no switch rule
        "reach-with-object": TaskSettings(max_steps=20),
        "pick-place": TaskSettings(max_steps=18, switch_after=[4, 10, 4]),
    }


@dataclass
class PlanningConfig:
    """How to plan with a given world model (see the module docstring for the JSON layout).

    camera, image_size: the env camera and square frame size the model was trained on (goal images use them too).
    env_kwargs: further ``FrankaEnvConfig`` fields passed to ``gymnasium.make``.
    planner: ``"cem" | "mppi" | "icem" | "gradient"``.
    planner_preset: ``"paper"`` / ``"official"`` start from ``CEMConfig.paper()`` / ``.official()`` (CEM only;
        other planners start from their defaults); ``None`` = the config class defaults.
    planner_config: config fields (``samples``, ``iterations``, ``horizon``, ``maxnorm``, ...); ``dtype`` may be
        ``"bfloat16"``/``"float16"``, or ``"auto"`` (bf16 where the device computes it natively, else float32).
    stop_on_success: end an episode as soon as the task reports success (the result counts as a success).
    tasks: per-task :class:`TaskSettings`; tasks not listed use the defaults.
    source: the file this was read from (``None`` = built-in defaults); not saved.
    """

    camera: str = "exterior_1"
    image_size: int = 256
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    planner: str = "cem"
    planner_preset: str | None = "paper"
    planner_config: dict[str, Any] = field(default_factory=dict)
    stop_on_success: bool = True
    tasks: dict[str, TaskSettings] = field(default_factory=_default_tasks)
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.planner not in PLANNERS:
            raise ValueError(f"planner must be one of {list(PLANNERS)}, got {self.planner!r}")
        if self.planner_preset not in PRESETS:
            raise ValueError(f"planner_preset must be one of {list(PRESETS)}, got {self.planner_preset!r}")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be an int in 16..1024 (square frames), got {self.image_size!r}")
        for name in ("env_kwargs", "planner_config"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a JSON object, got {type(getattr(self, name)).__name__}")
        clash = {"camera", "image_size", "task", "object", "backend"} & set(self.env_kwargs)
        if clash:
            raise ValueError(f"env_kwargs must not set {sorted(clash)} (use the top-level fields / arguments)")
        tasks = _default_tasks()
        for name, value in dict(self.tasks).items():
            tasks[task_name(name)] = value if isinstance(value, TaskSettings) else _task_from_dict(name, value)
        self.tasks = tasks

    # ------------------------------------------------------------------------------------------ per task
    def task(self, name: str) -> TaskSettings:
        """Settings of task ``name`` (defaults when the file does not list it)."""
        return self.tasks[task_name(name)]

    @staticmethod
    def env_id(name: str) -> str:
        """Gymnasium id of task ``name``."""
        return TASK_ENV_IDS[task_name(name)]

    def env_kwargs_for(self, name: str, *, object: str = "cube", backend: str = "mujoco", **extra: Any) -> dict:
        """``gymnasium.make`` keyword arguments for task ``name`` (``extra`` wins over the file)."""
        task_name(name)
        return {"object": object, "backend": backend, "camera": self.camera,
                "image_size": (self.image_size, self.image_size), **self.env_kwargs, **extra}

    def planner_fields(self, name: str | None = None, subgoal: int | None = None, *, fallback: bool = False,
                       **overrides: Any) -> dict[str, Any]:
        """Planner config fields: file-level, then task ``name``'s, then its sub-goal ``subgoal``'s, then (with
        ``fallback``) its ``fallback_planner_config``, then ``overrides`` (JSON values converted)."""
        settings = self.task(name) if name else None
        late = {}
        if fallback:
            if settings is None or settings.fallback_planner_config is None:
                raise ValueError(f"fallback=True: tasks[{name!r}] has no fallback_planner_config")
            late = settings.fallback_planner_config
        per_goal = {}
        if subgoal is not None:
            listed = settings.subgoal_planner_config if settings is not None else None
            if listed is None or not 0 <= subgoal < len(listed):
                raise ValueError(f"subgoal={subgoal}: tasks[{name!r}].subgoal_planner_config lists "
                                 f"{0 if listed is None else len(listed)} sub-goals")
            per_goal = listed[subgoal]
        merged = {**self.planner_config, **(settings.planner_config if settings else {}), **per_goal, **late,
                  **overrides}
        return _convert_planner_fields(merged)

    def build_planner(self, name: str | None = None, *, planner: str | None = None, subgoal: int | None = None,
                      fallback: bool = False, **overrides: Any):
        """A fresh planner for task ``name`` (and its sub-goal ``subgoal``, or its fallback with ``fallback``;
        ``planner`` overrides the file's planner name)."""
        import importlib

        kind = planner or self.planner
        if kind not in PLANNERS:
            raise ValueError(f"planner must be one of {list(PLANNERS)}, got {kind!r}")
        module_name, planner_cls, config_cls = PLANNERS[kind]
        module = importlib.import_module(module_name)
        config_type = getattr(module, config_cls)
        values = self.planner_fields(name, subgoal, fallback=fallback, **overrides)
        known = {f.name for f in fields(config_type)}
        if kind != self.planner:  # fields tuned for another planner: keep the shared ones only
            values = {k: v for k, v in values.items() if k in known}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {config_cls} field(s) {unknown} in the planning config; valid: {sorted(known)}")
        if kind == "cem" and self.planner_preset in ("paper", "official"):
            config = getattr(config_type, self.planner_preset)(**values)
        elif self.planner_preset == "paper":  # the paper's search region for every planner
            config = config_type(**{"horizon": 1, "maxnorm": 0.075, "constraint": "l1_ball", **values})
        else:
            config = config_type(**values)
        return getattr(module, planner_cls)(config)

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
        if not isinstance(data, dict):
            raise ValueError(f"a planning config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"source"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown planning config key(s) {unknown}; valid: {sorted(known)}")
        data = dict(data)
        if "tasks" in data:
            if not isinstance(data["tasks"], dict):
                raise ValueError(f"tasks must be a JSON object keyed by task name, got {type(data['tasks']).__name__}")
            data["tasks"] = {task_name(k): _task_from_dict(k, v) for k, v in data["tasks"].items()}
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("source")
        out["tasks"] = {k: asdict(v) for k, v in self.tasks.items()}
        return out

    def save(self, directory_or_file: str | os.PathLike) -> Path:
        """Write ``planning.json`` into a directory (or to the given ``.json`` path) atomically."""
        path = Path(directory_or_file)
        if path.suffix != ".json":
            path = path / FILE_NAME
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2, default=str) + "\n")


def _task_from_dict(name: str, value: Any) -> TaskSettings:
    if not isinstance(value, dict):
        raise ValueError(f"tasks[{name!r}] must be a JSON object, got {type(value).__name__}")
    known = {f.name for f in fields(TaskSettings)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in tasks[{name!r}]; valid: {sorted(known)}")
    try:
        return TaskSettings(**value)
    except ValueError as err:
        raise ValueError(f"tasks[{name!r}]: {err}") from err


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
