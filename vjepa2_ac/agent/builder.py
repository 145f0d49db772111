"""THE agent builder: a world model + a planning config + goal images by name -> an ``MPCAgent``.

    agent = build_agent(world_model, planning, "pick-place", info["goals"], seed=0)        # in simulation
    agent = build_agent(world_model, planning, "reach", {"final": goal_image})             # on a robot

``eval``, ``demo``, ``robot run`` and the examples all build their agents here, so a task plans the same way
everywhere. Goals are uint8 images ``[H, W, 3]`` (or latents ``[1, 1, N, D]``) keyed by the names the task's
phases use (``envs.tasks``; ``"final"`` is the task's own goal).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from planners import MPCAgent, Phase
from vjepa2_ac.agent.planning import PLANNERS, PhaseSpec, PlanningConfig, task_name


def build_planner(planning: PlanningConfig, phase: PhaseSpec | None = None, *, planner: str | None = None,
                  **overrides: Any) -> Any:
    """A fresh planner with the file's planner settings, then ``phase``'s, then ``overrides`` (config fields;
    ``None`` values are ignored). ``planner`` names another planner type than the file's: fields tuned for the
    file's type are kept only where the other type has them. ``samples`` given below the resulting ``topk`` lowers
    ``topk`` to it."""
    kind = planner or planning.planner.type
    if kind not in PLANNERS:
        raise ValueError(f"planner must be one of {list(PLANNERS)}, got {kind!r}")
    module_name, planner_cls, config_cls = PLANNERS[kind]
    module = importlib.import_module(module_name)
    config_type = getattr(module, config_cls)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    values = planning.planner_fields(phase, **overrides)
    known = {f.name for f in fields(config_type)}
    if kind != planning.planner.type:  # fields tuned for another planner: keep the shared ones only
        values = {k: v for k, v in values.items() if k in known}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {config_cls} field(s) {unknown} in the planning config; valid: {sorted(known)}")
    preset = planning.planner.preset

    def make(values: dict[str, Any]) -> Any:
        if kind == "cem" and preset in ("paper", "official"):
            return getattr(config_type, preset)(**values)
        if preset == "paper":  # the paper's search region for every planner
            return config_type(**{"horizon": 1, "maxnorm": 0.075, "constraint": "l1_ball", **values})
        return config_type(**values)

    if "samples" in overrides and "topk" not in overrides and "topk" in known:
        topk = make({k: v for k, v in values.items() if k != "samples"}).topk
        values["topk"] = min(topk, int(overrides["samples"]))
    return getattr(module, planner_cls)(make(values))


def build_agent(world_model: Any, planning: PlanningConfig, task: str, goals: Mapping[str, Any], *,
                seed: int | None = 0, planner: str | None = None, **overrides: Any) -> MPCAgent:
    """The ``MPCAgent`` of one episode of ``task``: one :class:`~planners.Phase` per phase of the task in
    ``planning``, each with the goal of that name in ``goals`` and its own planner (:func:`build_planner` with
    ``planner`` and ``overrides``). ``seed`` seeds the planner's generator (``reset()`` re-seeds it)."""
    if not isinstance(goals, Mapping):
        raise ValueError(f"goals must map goal names to images (e.g. info['goals'] or {{'final': image}}), "
                         f"got {type(goals).__name__}")
    task = task_name(task)
    phases = []
    for i, spec in enumerate(planning.task(task).phases):
        if spec.goal not in goals or goals[spec.goal] is None:
            raise ValueError(f"task {task!r} phase {i} plans to the goal image {spec.goal!r}, but the goals given "
                             f"are {sorted(k for k, v in goals.items() if v is not None)} (planning: "
                             f"{planning.source or 'built-in defaults'})")
        phases.append(Phase(goal=goals[spec.goal], planner=build_planner(planning, spec, planner=planner, **overrides),
                            steps=spec.steps, switch_energy=spec.switch_energy, name=spec.goal))
    return MPCAgent(world_model, phases=phases, seed=seed)
