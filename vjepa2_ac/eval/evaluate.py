"""Success rates over tasks x objects x backends x policies: the model's planner and the baselines, on the same seeds.

    cells = evaluate(wm, planning, tasks=["reach"], episodes=10, seed=1000, baselines=["random", "untrained"])
    print(results_table(cells))

Episode ``i`` of a cell uses env seed ``seed + i`` for every policy, so the model and the baselines face the same
initial states and goals. Baselines: ``random`` (uniform actions in the planner's action space) and ``untrained``
(the same encoder with a freshly initialised predictor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from vjepa2_ac.agent.loading import make_env
from vjepa2_ac.agent.planning import PlanningConfig, task_name
from vjepa2_ac.eval.episode import run_episode
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
             planner_overrides: dict[str, Any] | None = None, include_model: bool = True) -> list[CellResult]:
    """tasks x objects x backends x (model + baselines) x ``episodes``; episode ``i`` uses seed ``seed + i``.

    ``include_model=False`` runs the baselines only (``world_model`` still supplies the untrained baseline's encoder).
    """
    from tqdm.auto import tqdm

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    tasks = [task_name(t) for t in tasks]
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; expected some of {list(BASELINES)}")
    if not include_model and not baselines:
        raise ValueError("nothing to evaluate: include_model is False and no baselines were given")
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
                                results.append(run_episode(env, wm, planning, task, seed=seed + i, policy=policy,
                                                           max_steps=max_steps, planner=planner,
                                                           planner_overrides=planner_overrides))
                                bar.update(1)
                            cells.append(CellResult.from_episodes(results))
                    finally:
                        env.close()
    return cells



__all__ = ["BASELINES", "POLICIES", "evaluate", "software_versions", "untrained_world_model"]
