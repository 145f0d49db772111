"""Success rates over tasks x objects x backends x policies: the model's planner and the baselines, on the same seeds.

    cells = evaluate(wm, planning, tasks=["reach"], episodes=10, seed=1000, baselines=["random", "untrained"])
    print(results_table(cells))

Episode ``i`` of a cell uses env seed ``seed + i`` for every policy, so the model and the baselines face the same
initial states and goals. Baselines: ``random`` (uniform actions in the planner's action space) and ``untrained``
(the same encoder with a freshly initialised predictor).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from vjepa2_ac.agent.builder import build_planner
from vjepa2_ac.agent.loading import make_env
from vjepa2_ac.agent.planning import PlanningConfig, task_name
from vjepa2_ac.eval.episode import EpisodeResult, run_episode, shared_phase
from vjepa2_ac.eval.stats import CellResult

if TYPE_CHECKING:
    from vjepa2_ac.model.world_model import WorldModel

POLICIES = ("model", "random", "untrained")
BASELINES = ("random", "untrained")
SIMULATION_PACKAGES = ("mujoco", "pybullet", "torch", "numpy", "transformers", "gymnasium")


def software_versions() -> dict[str, str | None]:
    """Installed versions of the packages a closed-loop result depends on (``None``: not installed).

    Simulator releases change contacts and rendering (the same recorded actions leave the cup up to 3 cm apart under
    MuJoCo 3.17 and 4.0, and the frames differ), so a success rate reproduces only with the same versions."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in SIMULATION_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def untrained_world_model(world_model: WorldModel, seed: int = 0) -> WorldModel:
    """The same (frozen) encoder with a freshly initialised predictor of the same architecture (baseline)."""
    from vjepa2_ac.model.predictor import ACPredictor
    from vjepa2_ac.model.world_model import WorldModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        predictor = ACPredictor(world_model.config)
    predictor = predictor.to(world_model.device).eval().requires_grad_(False)
    return WorldModel(world_model.encoder, predictor, memory_budget_mb=world_model.memory_budget_mb)


def evaluate(world_model: WorldModel, planning: PlanningConfig, *, tasks: Sequence[str] = ("pick-place",),
             objects: Sequence[str] = ("cube",), backends: Sequence[str] = ("mujoco",), episodes: int = 10,
             seed: int = 0, baselines: Sequence[str] = (), planner: str | None = None,
             max_steps: int | None = None, progress: bool = True,
             planner_overrides: dict[str, Any] | None = None, include_model: bool = True,
             done: Mapping[tuple, EpisodeResult] | None = None,
             on_episode: Callable[[EpisodeResult], None] | None = None,
             on_cell: Callable[[CellResult], None] | None = None) -> list[CellResult]:
    """tasks x objects x backends x (model + baselines) x ``episodes``; episode ``i`` uses seed ``seed + i``.

    ``include_model=False`` runs the baselines only (``world_model`` still supplies the untrained baseline's encoder).
    Every task's planning settings (each phase's planner) are checked before the first episode runs.
    done: finished episodes keyed by ``(task, object, backend, policy, seed)``, reused instead of run again (an
        interrupted evaluation resumes with identical results: every episode depends only on its seed).
    on_episode / on_cell: called with each finished episode / cell (to save results as they come).
    """
    from tqdm.auto import tqdm

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0 (env seeds are non-negative), got {seed!r}")
    tasks = [task_name(t) for t in tasks]
    done = done or {}
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; expected some of {list(BASELINES)}")
    if not include_model and not baselines:
        raise ValueError("nothing to evaluate: include_model is False and no baselines were given")
    overrides = planner_overrides or {}
    for task in tasks:  # every phase's planner settings, before anything runs
        phases = planning.task(task).phases
        for i, spec in enumerate([*phases, shared_phase(phases)]):
            try:
                build_planner(planning, spec, planner=planner, **overrides)
            except (TypeError, ValueError) as err:
                where = f"phase {i}" if i < len(phases) else "the random baseline's action space"
                raise ValueError(f"planning config, task {task!r}, {where}: {err}") from None
    models: dict[str, Any] = {"model": world_model} if include_model else {}
    if "random" in baselines:
        models["random"] = None
    if "untrained" in baselines:
        models["untrained"] = untrained_world_model(world_model, seed=seed)
    cells: list[CellResult] = []
    total = len(tasks) * len(objects) * len(backends) * len(models) * episodes
    with tqdm(total=total, desc="eval", unit="episode", disable=not progress) as bar:
        for task in tasks:
            for obj in objects:
                for backend in backends:
                    env = make_env(planning, task, object=obj, backend=backend, max_steps=max_steps)
                    try:
                        for policy, wm in models.items():
                            results = []
                            for i in range(episodes):
                                bar.set_postfix_str(f"{task}/{obj}/{backend}/{policy}")
                                result = done.get((task, obj, backend, policy, seed + i))
                                if result is None:
                                    result = run_episode(env, wm, planning, task, seed=seed + i, policy=policy,
                                                         max_steps=max_steps, planner=planner,
                                                         planner_overrides=planner_overrides)
                                    if on_episode is not None:
                                        on_episode(result)
                                results.append(result)
                                bar.update(1)
                            cells.append(CellResult.from_episodes(results))
                            if on_cell is not None:
                                on_cell(cells[-1])
                    finally:
                        env.close()
    return cells


__all__ = ["BASELINES", "POLICIES", "evaluate", "software_versions", "untrained_world_model"]
