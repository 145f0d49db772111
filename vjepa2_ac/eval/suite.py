"""Evaluation suites: success rates over tasks x objects x backends x factors x policies, the model's planner and
the baselines on the same seeds.

    cells = evaluate(wm, planning, tasks=["reach"], episodes=10, seed=1000, baselines=["random", "untrained"])
    print(results_table(cells))

Episode ``i`` of a cell uses env seed ``seed + i`` for every policy and factor, so the model, the baselines and the
shifted scenes face the same initial states and goals (the env draws the factors from a stream of their own).

Three suites (``vjepa2-ac eval --suite``):

- ``recipe``: the model's own ``planning.json`` (its tuned phases, goal images, planner).
- ``paper``: the V-JEPA 2 paper's protocol, defined here and the same for every model (:func:`paper_planning`): one
  goal image per task as the env renders it by default, pick-and-place through the three sub-goal images switched
  after 4, 10 and 4 actions, CEM in the paper's shape (horizon 1, xyz in the L1 ball of 0.075) with the gripper
  searched, except reach-with-object (the object starts in the hand: the released planner's ``close_gripper``). A
  model declares only its search budget (``samples``, ``iterations`` of its planning.json's planner) and its input
  (camera, image size).
- ``shift``: the recipe under distribution shift: the nominal cell, then each factor of :data:`SHIFT_FACTORS`
  applied at reset to the observed frames and to the goal images (``envs.factors``; ``all`` = every factor at once,
  ``pybullet`` = the other simulator).

Baselines: ``random`` (uniform actions in the planner's action space) and ``untrained`` (the same encoder with a
freshly initialised predictor). ``workers > 1`` runs episodes in that many processes with results identical to one
process (each episode depends only on its cell and seed; every process uses the caller's torch thread count).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from envs.factors import FACTORS as ENV_FACTORS
from vjepa2_ac.agent.builder import build_planner
from vjepa2_ac.agent.loading import make_env
from vjepa2_ac.agent.planning import PlannerSpec, PlanningConfig, task_name
from vjepa2_ac.eval.episode import EpisodeResult, run_episode, shared_phase
from vjepa2_ac.eval.stats import CellResult

if TYPE_CHECKING:
    from vjepa2_ac.model.world_model import WorldModel

POLICIES = ("model", "random", "untrained")
BASELINES = ("random", "untrained")
SUITES = ("recipe", "paper", "shift")
SHIFT_FACTORS = (*ENV_FACTORS, "all", "pybullet")  # the env's factors, every one at once, the other simulator
PAPER_BUDGET = ("samples", "iterations")  # what a model may declare for the paper suite
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


# ---------------------------------------------------------------------------------------------------- suites
def paper_planning(model: PlanningConfig) -> PlanningConfig:
    """The ``paper`` suite's planning: the paper's protocol (the built-in task defaults of
    :class:`PlanningConfig`, the ``paper`` CEM preset, the env's default goal rendering, stop at success) with only
    the model's input (``camera``, ``image_size``), its declared search budget (:data:`PAPER_BUDGET`) and its
    numeric ``dtype`` taken from ``model``. Nothing else of the model's file is used: no env options, no phases, no
    other planner fields."""
    fields = {k: v for k, v in model.planner.fields.items() if k in (*PAPER_BUDGET, "dtype")}
    return PlanningConfig(camera=model.camera, image_size=model.image_size,
                          planner=PlannerSpec(type="cem", preset="paper", fields=fields), stop_on_success=True)


def suite_planning(suite: str, model: PlanningConfig) -> PlanningConfig:
    """The planning config a suite evaluates with: the model's own (``recipe``, ``shift``) or the paper's."""
    check_suite(suite)
    return paper_planning(model) if suite == "paper" else model


def check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {list(SUITES)}, got {suite!r}")
    return suite


def check_factors(factors: Sequence[str | None]) -> list[str | None]:
    """``factors`` as a list; ``ValueError`` naming unknown names and the valid ones (``None`` = nominal)."""
    unknown = [f for f in factors if f is not None and f not in SHIFT_FACTORS]
    if unknown:
        raise ValueError(f"unknown factor(s) {unknown}; expected some of {list(SHIFT_FACTORS)}")
    return list(dict.fromkeys(factors))


def factor_env(factor: str | None, backend: str) -> tuple[str, dict[str, Any]]:
    """``(backend, env kwargs)`` of a cell under ``factor`` (``None``: nominal)."""
    check_factors([factor])
    if factor is None:
        return backend, {}
    if factor == "pybullet":
        if backend != "mujoco":
            raise ValueError(f"factor 'pybullet' moves a MuJoCo cell to PyBullet; it needs backend 'mujoco', got "
                             f"{backend!r}")
        return "pybullet", {}
    return backend, {"factors": list(ENV_FACTORS) if factor == "all" else [factor]}


@dataclass(frozen=True)
class CellSpec:
    """One cell: task, object, backend (the nominal one for the ``pybullet`` factor), factor, policy."""

    task: str
    object: str
    backend: str
    factor: str | None
    policy: str

    def env_args(self) -> tuple[str, dict[str, Any]]:
        return factor_env(self.factor, self.backend)

    def key(self, seed: int) -> tuple:
        """What identifies one of its episodes (``done`` of :func:`evaluate`): ``(task, object, backend, factor,
        policy, seed)`` with the backend the episode ran in."""
        return (self.task, self.object, self.env_args()[0], self.factor, self.policy, seed)


# ---------------------------------------------------------------------------------------------------- running
# One process's state: the world models by policy, the planning, the run options, one env at a time.
_WORKER: dict[str, Any] = {}


def _init_worker(models: dict[str, Any], planning: PlanningConfig, options: dict[str, Any], threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.clear()
    _WORKER.update(models=models, planning=planning, options=options, env=None, env_cell=None)


def _run_one(cell: CellSpec, seed: int) -> EpisodeResult:
    """Episode ``seed`` of ``cell`` in this process (the env is kept while consecutive episodes share it)."""
    w = _WORKER
    env_key = (cell.task, cell.object, cell.backend, cell.factor)
    if w["env_cell"] != env_key:
        if w["env"] is not None:
            w["env"].close()
        w["env"], w["env_cell"] = None, None
        backend, kwargs = cell.env_args()
        w["env"] = make_env(w["planning"], cell.task, object=cell.object, backend=backend,
                            max_steps=w["options"]["max_steps"], **kwargs)
        w["env_cell"] = env_key
    o = w["options"]
    return run_episode(w["env"], w["models"][cell.policy], w["planning"], cell.task, seed=seed, policy=cell.policy,
                       factor=cell.factor, max_steps=o["max_steps"], planner=o["planner"],
                       planner_overrides=o["planner_overrides"])


def _close_worker() -> None:
    if _WORKER.get("env") is not None:
        _WORKER["env"].close()
    _WORKER.clear()


def evaluate(world_model: WorldModel, planning: PlanningConfig, *, tasks: Sequence[str] = ("pick-place",),
             objects: Sequence[str] = ("cube",), backends: Sequence[str] = ("mujoco",),
             factors: Sequence[str | None] = (None,), episodes: int = 10, seed: int = 0,
             baselines: Sequence[str] = (), planner: str | None = None, max_steps: int | None = None,
             progress: bool = True, planner_overrides: dict[str, Any] | None = None, include_model: bool = True,
             workers: int = 1, done: Mapping[tuple, EpisodeResult] | None = None,
             on_episode: Callable[[EpisodeResult], None] | None = None,
             on_cell: Callable[[CellResult], None] | None = None) -> list[CellResult]:
    """tasks x objects x backends x factors x (model + baselines) x ``episodes``; episode ``i`` uses seed
    ``seed + i``.

    factors: ``None`` (the nominal scene) and names of :data:`SHIFT_FACTORS`; each cell records its factor.
    include_model: ``False`` runs the baselines only (``world_model`` still supplies the untrained baseline's
        encoder). Every task's planning settings (each phase's planner) are checked before the first episode runs.
    workers: processes running episodes (1: this process); results are identical for any number.
    done: finished episodes keyed by :meth:`CellSpec.key` ``(task, object, backend, factor, policy, seed)``, reused
        instead of run again (an interrupted evaluation resumes with identical results).
    on_episode / on_cell: called in this process with each finished episode / cell (to save results as they come).
    """
    from tqdm.auto import tqdm

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0 (env seeds are non-negative), got {seed!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    tasks = [task_name(t) for t in tasks]
    factors = check_factors(factors)
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
    for backend in backends:
        for factor in factors:
            factor_env(factor, backend)  # a factor the backend cannot take: before anything runs
    models: dict[str, Any] = {"model": world_model} if include_model else {}
    if "random" in baselines:
        models["random"] = None
    if "untrained" in baselines:
        models["untrained"] = untrained_world_model(world_model, seed=seed)
    specs = [CellSpec(t, o, b, f, p) for t in tasks for o in objects for b in backends for f in factors for p in models]
    seeds = [seed + i for i in range(episodes)]
    results: dict[tuple, EpisodeResult] = {}
    todo = []
    for spec in specs:
        for s in seeds:
            if spec.key(s) in done:
                results[spec.key(s)] = done[spec.key(s)]
            else:
                todo.append((spec, s))
    options = {"max_steps": max_steps, "planner": planner, "planner_overrides": overrides}
    cells: dict[CellSpec, CellResult] = {}

    def finish(spec: CellSpec, s: int, result: EpisodeResult | None) -> None:
        if result is not None:
            results[spec.key(s)] = result
            if on_episode is not None:
                on_episode(result)
        for sp in specs:  # cells complete now, in order of the cell list
            if sp not in cells and all(sp.key(x) in results for x in seeds):
                cells[sp] = CellResult.from_episodes([results[sp.key(x)] for x in seeds])
                if on_cell is not None:
                    on_cell(cells[sp])

    with tqdm(total=len(specs) * episodes, initial=len(specs) * episodes - len(todo), desc="eval", unit="episode",
              disable=not progress) as bar:
        finish(specs[0], seeds[0], None)  # cells finished earlier (resume)
        if workers == 1 or len(todo) <= 1:
            _init_worker(models, planning, options, torch.get_num_threads())
            try:
                for spec, s in todo:
                    bar.set_postfix_str(f"{spec.task}/{spec.object}/{spec.backend}/{spec.factor}/{spec.policy}")
                    finish(spec, s, _run_one(spec, s))
                    bar.update(1)
            finally:
                _close_worker()
        else:
            _run_in_processes(todo, workers, (models, planning, options, torch.get_num_threads()), finish, bar)
    return [cells[sp] for sp in specs]


def _run_in_processes(todo: list, workers: int, init_args: tuple, finish: Callable, bar: Any) -> None:
    """Run ``todo`` episodes in ``workers`` spawned processes (cell-major order, so each keeps its env)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads or GL contexts
    pool = ProcessPoolExecutor(min(workers, len(todo)), mp_context=context, initializer=_init_worker,
                               initargs=init_args)
    try:
        pending = {pool.submit(_run_one, spec, s): (spec, s) for spec, s in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: todo.index(pending[f])):
                spec, s = pending.pop(future)
                finish(spec, s, future.result())
                bar.update(1)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


__all__ = ["BASELINES", "CellSpec", "POLICIES", "SHIFT_FACTORS", "SUITES", "check_factors", "evaluate", "factor_env",
           "paper_planning", "software_versions", "suite_planning", "untrained_world_model"]
