"""Closed-loop evaluation: a simulated Franka task, an ``MPCAgent`` over a world model, and what came out.

    wm, planning, _ = load_world_model("vjepa2-ac-sim-small")
    env = make_env(planning, "pick-place", object="cube")
    result = run_episode(env, wm, planning, "pick-place", seed=0)          # EpisodeResult
    cells = evaluate(wm, planning, tasks=["reach"], episodes=10, seed=1000, baselines=["random", "untrained"])
    print(results_table(cells))

Episode ``i`` of a cell uses env seed ``seed + i`` for every policy, so the model and the baselines face the same
initial states and goals. Baselines: ``random`` draws actions uniformly from the planner's action space (xyz box
of ``maxnorm`` projected like the planner's samples, gripper in ``±gripper_max``, no rotation); ``untrained`` plans
with the same encoder and a freshly initialised predictor. The module never imports ``envs`` at import time.

Also here: :func:`energy_landscape` (one-step energies over a grid of xyz deltas, the paper's figure) and
:func:`load_franka_example` (the official repository's two real Franka frames).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from vjepa2_ac.planning_config import TASKS, PlanningConfig, task_name

if TYPE_CHECKING:
    from vjepa2_ac.world_model import WorldModel

BUNDLED_MODEL = "vjepa2-ac-sim-small"
RELEASED_ENCODER = "facebook/vjepa2-vitg-fpc64-256"
POLICIES = ("model", "random", "untrained")
BASELINES = ("random", "untrained")
FRANKA_EXAMPLE = Path(__file__).parent / "assets" / "franka_example_traj.npz"


class ModelNotAvailable(FileNotFoundError):
    """The requested world model cannot be found or fetched (message says what to pass instead)."""


# ------------------------------------------------------------------------------------------------ loading
def load_world_model(model: str | os.PathLike = BUNDLED_MODEL, *, checkpoint: str | os.PathLike | None = None,
                     device: str | torch.device = "cpu", planning: str | os.PathLike | None = None,
                     ) -> tuple[WorldModel, PlanningConfig, str]:
    """World model + its planning settings + a one-line description.

    ``model``: a local ``save_pretrained`` directory, a bundled model name, a hub repo id, or (with
    ``checkpoint``, a released ``vjepa2-ac-vitg.pt`` path or URL) the encoder's hub id / directory, e.g.
    ``facebook/vjepa2-vitg-fpc64-256``. ``planning``: a ``planning.json`` overriding the model's own.
    Raises :class:`ModelNotAvailable` (one clear line) when the model cannot be found or fetched.
    """
    from vjepa2_ac import bundled
    from vjepa2_ac.checkpoint import CheckpointError
    from vjepa2_ac.world_model import WorldModel, resolve_model_dir

    name = os.fspath(model)
    try:
        if checkpoint is not None:
            from vjepa2_ac.checkpoint import is_url
            from vjepa2_ac.encoder import Encoder

            if not is_url(checkpoint) and not Path(checkpoint).expanduser().is_file():
                raise ModelNotAvailable(f"checkpoint file not found: {os.fspath(checkpoint)} (download "
                                        "https://dl.fbaipublicfiles.com/vjepa2/vjepa2-ac-vitg.pt or pass its URL)")

            encoder = Encoder.from_pretrained(name, device=device)
            wm = WorldModel.from_official_checkpoint(checkpoint, encoder=encoder, device=device)
            model_dir = None
            description = f"released AC predictor {os.fspath(checkpoint)} + encoder {name}"
        else:
            if name == BUNDLED_MODEL and name not in bundled.MODELS and not Path(name).is_dir():
                raise ModelNotAvailable(
                    f"the bundled world model {BUNDLED_MODEL!r} is not installed in this copy of vjepa2-ac "
                    f"(looked in {bundled.MODELS_ROOT}); pass --model DIR (a directory written by "
                    "WorldModel.save_pretrained, e.g. by `vjepa2-ac train`), a hub repo id, or --model "
                    f"{RELEASED_ENCODER} --checkpoint vjepa2-ac-vitg.pt")
            model_dir = resolve_model_dir(name)
            wm = WorldModel.from_pretrained(model_dir, device=device)
            description = f"{name} ({model_dir})"
    except ModelNotAvailable:
        raise
    except (OSError, ConnectionError, CheckpointError, KeyError) as err:
        raise ModelNotAvailable(f"cannot load world model {name!r}: {err}") from err
    if wm.encoder is None:
        raise ModelNotAvailable(f"world model {name!r} has no encoder; planning from images needs one")
    config = PlanningConfig.load(planning if planning is not None else model_dir)
    if checkpoint is not None and planning is None:  # the released model plans from 256 px DROID-like views
        config.image_size = wm.encoder.crop_size
    return wm.eval(), config, description


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


def make_env(planning: PlanningConfig, task: str, *, object: str = "cube", backend: str = "mujoco",
             max_steps: int | None = None, **env_kwargs: Any):
    """``gymnasium.make`` for ``task`` with the planning config's camera and image size (imports ``envs``)."""
    import gymnasium as gym

    import envs  # noqa: F401  (registers the ids)

    steps = max_steps or planning.task(task).max_steps
    return gym.make(planning.env_id(task), max_episode_steps=steps, render_mode="rgb_array",
                    **planning.env_kwargs_for(task, object=object, backend=backend, **env_kwargs))


def untrained_world_model(world_model: WorldModel, seed: int = 0) -> WorldModel:
    """The same (frozen) encoder with a freshly initialised predictor of the same architecture (baseline)."""
    from vjepa2_ac.predictor import ACPredictor
    from vjepa2_ac.world_model import WorldModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        predictor = ACPredictor(world_model.config)
    predictor = predictor.to(world_model.device).eval().requires_grad_(False)
    return WorldModel(world_model.encoder, predictor, memory_budget_mb=world_model.memory_budget_mb)


# ------------------------------------------------------------------------------------------------ episodes
@dataclass
class EpisodeResult:
    """One closed-loop episode. Arrays are numpy; ``frames`` only when recorded.

    frames: uint8 ``[T + 1, H, W, 3]`` observations (or the ``view`` renders), first = after reset.
    subgoals: the goal images planned towards (uint8 ``[H, W, 3]`` each).
    energies / frame_energies / goal_indices: per action: the plan's predicted energy, the observed frame's
        energy to the active goal, the active sub-goal (empty for the random baseline).
    latencies: seconds per action (encode + plan; action sampling for the random baseline).
    fallback_from: the first action planned by the task's fallback planner (``None``: it never took over).
    """

    task: str
    object: str
    backend: str
    policy: str
    seed: int
    success: bool
    final_distance: float
    steps: int
    seconds_per_action: float
    actions: np.ndarray = field(repr=False)
    energies: list[float] = field(default_factory=list, repr=False)
    frame_energies: list[float] = field(default_factory=list, repr=False)
    goal_indices: list[int] = field(default_factory=list, repr=False)
    latencies: list[float] = field(default_factory=list, repr=False)
    subgoals: list[np.ndarray] = field(default_factory=list, repr=False)
    frames: np.ndarray | None = field(default=None, repr=False)
    fallback_from: int | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-friendly scalars and per-step lists (no images)."""
        return {"task": self.task, "object": self.object, "backend": self.backend, "policy": self.policy,
                "seed": self.seed, "success": self.success, "final_distance": self.final_distance,
                "steps": self.steps, "seconds_per_action": self.seconds_per_action,
                "energies": list(self.energies), "frame_energies": list(self.frame_energies),
                "goal_indices": list(self.goal_indices), "fallback_from": self.fallback_from,
                "actions": self.actions.tolist()}


def task_distance(env: Any, task: str) -> float:
    """Distance (m) between what the task moves and its goal: tool centre point for reach, object otherwise."""
    base = env.unwrapped
    goal = np.asarray(base.goal["position"], float)
    achieved = base.get_ee_pose()[0] if task_name(task) == "reach" else base.get_object_pose()[0]
    return float(np.linalg.norm(np.asarray(achieved, float) - goal))


def make_agent(world_model: Any, planning: PlanningConfig, task: str, info: dict, *, seed: int = 0,
               planner: str | None = None, **planner_overrides: Any):
    """``MPCAgent`` for one episode: sub-goal images and switch schedule from the planning config."""
    from planners import MPCAgent

    settings = planning.task(task)
    subgoals = list(info.get("subgoals") or [])
    if settings.plans_subgoals and len(subgoals) > 1:
        phase = "sub-goals"
        if settings.subgoal_order is not None:  # phases: which sub-goal image each one plans to
            bad = [i for i in settings.subgoal_order if i >= len(subgoals)]
            if bad:
                raise ValueError(f"planning config: tasks[{task!r}].subgoal_order names sub-goal(s) {bad}; the env "
                                 f"gives {len(subgoals)} (indices 0..{len(subgoals) - 1})")
            subgoals, phase = [subgoals[i] for i in settings.subgoal_order], "phases (subgoal_order)"
        switch_after, per_goal = settings.switch_after, settings.subgoal_planner_config
        if switch_after is not None and len(switch_after) not in (len(subgoals) - 1, len(subgoals)):
            raise ValueError(f"planning config: tasks[{task!r}].switch_after has {len(switch_after)} entries for "
                             f"{len(subgoals)} {phase} (expected {len(subgoals) - 1} or {len(subgoals)})")
        if per_goal is None:
            plan = planning.build_planner(task, planner=planner, **planner_overrides)
        elif len(per_goal) != len(subgoals):
            raise ValueError(f"planning config: tasks[{task!r}].subgoal_planner_config has {len(per_goal)} entries "
                             f"for {len(subgoals)} {phase}")
        else:
            plan = [planning.build_planner(task, planner=planner, subgoal=i, **planner_overrides)
                    for i in range(len(subgoals))]
        last = None if per_goal is None else len(subgoals) - 1
        return MPCAgent(world_model, plan, subgoals=subgoals, switch_after=switch_after,
                        switch_energy=settings.switch_energy, seed=seed,
                        **_fallback(planning, task, planner, last, planner_overrides))
    goal = info.get("goal_pixels")
    if goal is None:
        raise ValueError("the env gives no goal image (render_goals=False?); planning needs one")
    return MPCAgent(world_model, planning.build_planner(task, planner=planner, **planner_overrides), goal=goal,
                    seed=seed, **_fallback(planning, task, planner, None, planner_overrides))


def _fallback(planning: PlanningConfig, task: str, planner: str | None, subgoal: int | None,
              overrides: dict[str, Any]) -> dict[str, Any]:
    """``MPCAgent`` keyword arguments for the task's fallback planner (none when the task sets no fallback)."""
    settings = planning.task(task)
    if settings.fallback_after is None:
        return {}
    return {"fallback": planning.build_planner(task, planner=planner, subgoal=subgoal, fallback=True, **overrides),
            "fallback_after": settings.fallback_after}


class RandomPolicy:
    """Uniform random actions in the planner's action space (seeded; the ``random`` baseline)."""

    def __init__(self, planner: Any, seed: int = 0) -> None:
        self.space = planner.config.action_space()
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self) -> np.ndarray:
        sp = self.space
        bounds = torch.tensor([sp.maxnorm] * 3 + [sp.rotation_maxnorm] * 3 + [sp.gripper_max])[list(sp.dims)]
        u = (torch.rand(1, 1, sp.size, generator=self.generator) * 2 - 1) * bounds
        return sp.to_full(sp.project(u))[0, 0].numpy().astype(np.float32)


def run_episode(env: Any, world_model: Any | None, planning: PlanningConfig, task: str, *, seed: int,
                policy: str | None = None, max_steps: int | None = None, planner: str | None = None,
                record_frames: bool = False, view: tuple[str, int] | None = None, progress: bool = False,
                planner_overrides: dict[str, Any] | None = None) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and run MPC with ``world_model`` (``None``: random actions) for up to
    ``max_steps`` actions (default: the task's), stopping at success if the planning config says so.

    view: ``(camera, size)`` records frames rendered from that camera at that size instead of the observations.
    policy: label stored in the result (default ``"model"``, or ``"random"`` when ``world_model`` is None).
    """
    from tqdm.auto import tqdm

    task = task_name(task)
    settings = planning.task(task)
    steps = settings.max_steps if max_steps is None else int(max_steps)
    if steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {steps}")
    obs, info = env.reset(seed=seed)
    base = env.unwrapped
    overrides = planner_overrides or {}
    if world_model is None:
        agent = None
        sampler = RandomPolicy(planning.build_planner(task, planner=planner, **overrides), seed=seed)
        subgoals = list(info.get("subgoals") or [])
    else:
        agent = make_agent(world_model, planning, task, info, seed=seed, planner=planner, **overrides)
        subgoals = list(info.get("subgoals") or []) if len(agent.goals) > 1 else [info["goal_pixels"]]
    if view is not None and subgoals:  # the goal images as seen in the recorded view
        configs = base.goal["configs"]
        configs = configs if len(subgoals) == len(configs) else configs[-1:]
        subgoals = [base.render_configuration(p, m, c, op, oq, camera=view[0], image_size=(view[1], view[1]))
                    for p, m, c, op, oq in configs]

    def frame_now(o: dict) -> np.ndarray:
        if view is None:
            return o["pixels"]
        return base.render(camera=view[0], image_size=(view[1], view[1]))

    frames = [frame_now(obs)] if record_frames else []
    actions, latencies = [], []
    success = bool(info.get("is_success", False))
    bar = tqdm(total=steps, desc=f"{task} seed {seed}", unit="action", disable=not progress, leave=False)
    try:
        for _ in range(steps):
            start = time.perf_counter()
            if agent is None:
                action = sampler()
                latencies.append(time.perf_counter() - start)
            else:
                action = agent.act(obs["pixels"], obs["agent_pos"])
                latencies.append(agent.records[-1].latency_s)
                bar.set_postfix(energy=f"{agent.records[-1].plan_energy:.4f}", goal=agent.records[-1].goal_index)
            obs, _, terminated, truncated, info = env.step(action)
            actions.append(np.asarray(action, np.float32))
            if record_frames:
                frames.append(frame_now(obs))
            bar.update(1)
            success = bool(info["is_success"])
            if (success and planning.stop_on_success) or terminated or truncated:
                break
    finally:
        bar.close()
    records = agent.records if agent is not None else []
    return EpisodeResult(
        task=task, object=base.cfg.object, backend=base.cfg.backend,
        policy=policy or ("model" if world_model is not None else "random"), seed=int(seed), success=success,
        final_distance=task_distance(env, task), steps=len(actions),
        seconds_per_action=float(np.mean(latencies)) if latencies else float("nan"),
        actions=np.stack(actions) if actions else np.zeros((0, 7), np.float32),
        energies=[float(r.plan_energy) for r in records], frame_energies=[float(r.frame_energy) for r in records],
        goal_indices=[int(r.goal_index) for r in records], latencies=[float(x) for x in latencies],
        subgoals=subgoals, frames=np.stack(frames) if frames else None,
        fallback_from=next((i for i, r in enumerate(records) if r.fallback), None))


# ------------------------------------------------------------------------------------------------ statistics
def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (default 95%); ``(0, 1)`` when ``n == 0``."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends (no rounding residue)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclass
class CellResult:
    """Aggregate of the episodes of one (task, object, backend, policy) cell."""

    task: str
    object: str
    backend: str
    policy: str
    episodes: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_final_distance: float
    seconds_per_action: float
    mean_steps: float
    seeds: list[int]
    episode_results: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @classmethod
    def from_episodes(cls, results: Sequence[EpisodeResult]) -> CellResult:
        if not results:
            raise ValueError("a cell needs at least one episode")
        first, n = results[0], len(results)
        wins = sum(r.success for r in results)
        low, high = wilson_interval(wins, n)
        latencies = [x for r in results for x in r.latencies]
        return cls(task=first.task, object=first.object, backend=first.backend, policy=first.policy, episodes=n,
                   successes=wins, success_rate=wins / n, ci_low=low, ci_high=high,
                   mean_final_distance=float(np.mean([r.final_distance for r in results])),
                   seconds_per_action=float(np.mean(latencies)) if latencies else float("nan"),
                   mean_steps=float(np.mean([r.steps for r in results])), seeds=[r.seed for r in results],
                   episode_results=[r.summary() for r in results])

    def to_dict(self, episodes: bool = True) -> dict[str, Any]:
        out = asdict(self)
        if not episodes:
            out.pop("episode_results")
        return out


def load_recorded_cells(path: str | os.PathLike, task: str) -> tuple[PlanningConfig, list[dict[str, Any]]]:
    """The planning config and the ``task`` cells with recorded episodes of a ``vjepa2-ac eval --json`` file (what
    replays need: ``cell["episode_results"]`` holds each episode's seed and actions)."""
    path, task = Path(path), task_name(task)
    data = json.loads(path.read_text())
    cells = [c for c in data.get("cells", []) if c["task"] == task and c.get("episode_results")]
    if not cells:
        raise ValueError(f"{path} has no {task} cell with recorded episodes (eval --json without "
                         f"--no-episodes-in-json writes them)")
    return PlanningConfig.from_dict(data["planning"]), cells


def replay_recorded(env: Any, episode: dict[str, Any], steps: int | None = None,
                    extra: np.ndarray | None = None) -> tuple[dict, dict]:
    """Reset ``env`` to a recorded episode's seed (an ``episode_results`` entry of an eval JSON), replay its first
    ``steps`` actions (all by default), then ``extra``; returns ``(obs, reset info)``. The simulators are
    deterministic, so this reproduces the recorded state."""
    obs, info = env.reset(seed=episode["seed"])
    for action in [*episode["actions"][:steps], *([] if extra is None else [extra])]:
        obs, *_ = env.step(np.asarray(action, dtype=np.float32))
    return obs, info


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


def results_table(cells: Sequence[CellResult]) -> str:
    """Markdown table: one row per cell."""
    lines = ["| task | object | backend | policy | success | 95% CI | mean final distance (cm) | s / action | episodes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {c.task} | {c.object} | {c.backend} | {c.policy} | {100 * c.success_rate:.0f}% "
                     f"({c.successes}/{c.episodes}) | {100 * c.ci_low:.0f}-{100 * c.ci_high:.0f}% | "
                     f"{100 * c.mean_final_distance:.1f} | {c.seconds_per_action:.3f} | {c.episodes} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ landscape
@dataclass
class Landscape:
    """One-step energies over a grid of xyz deltas (rotation and gripper deltas 0).

    deltas: ``[G]`` offsets (m) per axis; energies: ``[G, G, G]`` indexed ``(dx, dy, dz)``; actions ``[G^3, 7]``
    (dz fastest, the official notebook's order); argmin_delta ``[3]``; reference_delta ``[3]`` or None
    (e.g. the ground-truth move between the example frames).
    """

    deltas: np.ndarray
    energies: np.ndarray
    actions: np.ndarray
    argmin_delta: np.ndarray
    reference_delta: np.ndarray | None = None


def landscape_actions(grid: int = 5, radius: float = 0.075) -> Tensor:
    """``[grid^3, 7]`` actions: xyz deltas on ``linspace(-radius, radius, grid)`` per axis (dz fastest)."""
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an int >= 2, got {grid!r}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius!r}")
    d = torch.linspace(-radius, radius, grid, dtype=torch.float32)
    xyz = torch.stack(torch.meshgrid(d, d, d, indexing="ij"), -1).reshape(-1, 3)
    return torch.cat([xyz, xyz.new_zeros(xyz.shape[0], 4)], dim=1)


@torch.no_grad()
def energy_landscape(world_model: Any, frame: Any, goal: Any, state: Any, *, grid: int = 5, radius: float = 0.075,
                     reference_delta: Any = None, chunk_size: int | None = None) -> Landscape:
    """Energies of every one-step move on a ``grid^3`` lattice of xyz deltas in ``[-radius, radius]``.

    frame, goal: uint8 images ``[H, W, 3]`` (encoded here) or latents ``[1, 1, N, D]``; state: ``[7]``.
    """
    z0, z_goal = _as_latent(world_model, frame, "frame"), _as_latent(world_model, goal, "goal")
    device = z0.device
    s0 = torch.as_tensor(np.asarray(state, np.float32) if not isinstance(state, Tensor) else state)
    if s0.shape != (7,):
        raise ValueError(f"state must be [7] = [x, y, z, roll, pitch, yaw, g], got shape {tuple(s0.shape)}")
    actions = landscape_actions(grid, radius).to(device)
    b = actions.shape[0]
    z_pred, _ = world_model.rollout(z0.expand(b, -1, -1, -1), s0.to(device, torch.float32).expand(b, 1, 7),
                                    actions[:, None], chunk_size=chunk_size)
    energies = world_model.energy(z_pred, z_goal).float().cpu()
    best = int(energies.argmin())
    ref = None if reference_delta is None else np.asarray(reference_delta, float)[:3]
    return Landscape(deltas=np.linspace(-radius, radius, grid), energies=energies.reshape(grid, grid, grid).numpy(),
                     actions=actions.cpu().numpy(), argmin_delta=actions[best, :3].cpu().numpy(), reference_delta=ref)


def _as_latent(world_model: Any, x: Any, name: str) -> Tensor:
    if isinstance(x, Tensor) and x.is_floating_point():
        if x.ndim != 4 or x.shape[:2] != (1, 1):
            raise ValueError(f"{name} latents must be [1, 1, N, D], got {tuple(x.shape)}")
        return x.to(world_model.device)
    img = torch.as_tensor(np.asarray(x)) if not isinstance(x, Tensor) else x
    if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"{name} must be a uint8 image [H, W, 3] or latents [1, 1, N, D], "
                         f"got {img.dtype} {tuple(img.shape)}")
    return world_model.encode(img[None])


def load_franka_example(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The official repository's example (two real Franka lab frames, MIT, Meta Platforms).

    Returns ``frames`` uint8 ``[2, 256, 256, 3]``, ``states`` float32 ``[2, 7]`` and ``gt_action`` ``[7]`` (the
    move from frame 0 to frame 1, ``poses_to_diff``)."""
    from vjepa2_ac.pose import poses_to_diff

    path = Path(path) if path is not None else FRANKA_EXAMPLE
    if not path.is_file():
        raise FileNotFoundError(f"Franka example trajectory not found: {path}")
    with np.load(path) as data:
        frames = np.asarray(data["observations"][0])
        states = np.asarray(data["states"][0], np.float32)
    gt = poses_to_diff(torch.from_numpy(states[0]).double(), torch.from_numpy(states[1]).double()).numpy()
    return {"frames": frames, "states": states, "gt_action": gt.astype(np.float32)}


__all__ = [
    "BASELINES", "BUNDLED_MODEL", "POLICIES", "TASKS", "CellResult", "EpisodeResult", "Landscape",
    "ModelNotAvailable", "RandomPolicy", "energy_landscape", "evaluate", "landscape_actions", "load_franka_example",
    "load_world_model", "make_agent", "make_env", "results_table", "run_episode", "task_distance",
    "untrained_world_model", "wilson_interval",
]
