"""Offline planning on recorded episodes: the jepa-wms protocol (``facebookresearch/jepa-wms``, DROID evaluation).

A *segment* (jepa-wms calls it an episode) is a piece of a recorded trajectory: the start frame ``t``, the goal frame
``K`` control steps later (``K`` = goal offset, default 3 at 4 Hz) and the ``K`` recorded actions between them. The
planner gets the start latent and state and the goal latent, plans ``K`` actions once (recorded data cannot be
stepped, so there is no replanning), and the *sums* of the planned and the recorded actions are compared::

    e = |sum(planned) - sum(recorded)|                       # [7], elementwise
    xyz error = e[0:3].sum()   orientation error = e[3:6].sum()   gripper error = e[6]
    action score = max(0, 800 * (0.1 - xyz error))          # all four reported as means over segments

    from vjepa2_ac.eval.offline import OfflineConfig, evaluate_offline
    result = evaluate_offline(wm, open_source("data/droid_eval"), OfflineConfig(goal_offset=3, segments=64))
    result.action_score, result.xyz_error_m

Planner (jepa-wms): CEM with 300 samples, 10 elites, 15 iterations, horizon ``K``, initial std 0.1, all 7 dims
searched, |delta| clipped to 0.1 on the 6 pose dims and 0.75 on the gripper (:func:`jepa_wms_cem`). The momentum of
the update is not in the protocol's description: the plain CEM update is used (elite mean and std, momentum 0), and
the jepa-wms detail that sample 0 is the current mean is not reproduced. :func:`model_budget_cem` keeps that search
region but takes samples, elites, iterations and numerics from the model's own ``planning.json``.

Cost and unroll: ``WorldModel.energy`` of the last predicted frame to the goal, ``cost="l1"`` (the official energy)
or ``"l2"`` (jepa-wms's default); rollouts see the whole history (official) or, with ``context_window=2``, the last
two frames as jepa-wms unrolls. The world model's own settings are restored afterwards.

Determinism: segment ``j`` is drawn from ``numpy.random.default_rng((seed, j))`` and planned with a
``torch.Generator`` seeded from ``(seed, j)``: results depend only on ``(seed, j)``, never on ``batch_size``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor

from planners.cem import CEM, CEMConfig
from planners.common import rollout_energy
from vjepa2_ac.data.clips import EpisodeSource, clip_step
from vjepa2_ac.model.pose import POSE_DIM, poses_to_diff
from vjepa2_ac.model.space import DROID_FRANKA
from vjepa2_ac.model.world_model import check_context_window, check_cost

if TYPE_CHECKING:
    from vjepa2_ac.agent.planning import PlanningConfig
    from vjepa2_ac.model.world_model import WorldModel

DEFAULT_FPS = 4.0  # the model's control rate (DROID's, the official recipe's)
SCORE_SCALE = 800.0  # action score = max(0, SCORE_SCALE * (SCORE_MARGIN - xyz error))
SCORE_MARGIN = 0.1
BUDGETS = ("model", "jepa-wms")
Budget = Literal["model", "jepa-wms"]

# jepa-wms DROID planner (see the module docstring); horizon = goal offset
JEPA_WMS_CEM: dict[str, Any] = dict(
    samples=300, topk=10, iterations=15, constraint="box", maxnorm=0.1, search_rotation=True, rotation_maxnorm=0.1,
    gripper_max=0.75, xyz_std=0.1, rotation_std=0.1, gripper_std=0.1, momentum_mean=0.0, momentum_std=0.0,
    momentum_mean_gripper=0.0, momentum_std_gripper=0.0, gripper_round=None, energy="final", warm_start=False)
# what "the model's budget" takes from its planning.json
BUDGET_FIELDS = ("samples", "topk", "iterations", "dtype", "rescore")


def jepa_wms_cem(horizon: int = 3, **overrides: Any) -> CEMConfig:
    """The jepa-wms offline planner as a :class:`CEMConfig` with ``horizon`` = the goal offset."""
    return CEMConfig(**{**JEPA_WMS_CEM, "horizon": horizon, **overrides})


def model_budget_cem(planning: PlanningConfig, horizon: int = 3) -> CEMConfig:
    """The jepa-wms search region with the model's own budget: ``samples``, ``topk``, ``iterations``, ``dtype`` and
    ``rescore`` of ``planning``'s planner (as CEM, its preset applied)."""
    from vjepa2_ac.agent.builder import build_planner

    own = build_planner(planning, planner="cem").config
    return jepa_wms_cem(horizon, **{name: getattr(own, name) for name in BUDGET_FIELDS})


def offline_planner(budget: Budget, goal_offset: int, planning: PlanningConfig | None = None) -> CEMConfig:
    """:func:`jepa_wms_cem` (``"jepa-wms"``) or :func:`model_budget_cem` (``"model"``, needs ``planning``)."""
    if budget == "jepa-wms":
        return jepa_wms_cem(goal_offset)
    if budget == "model":
        if planning is None:
            raise ValueError("the 'model' planner budget needs the model's planning config")
        return model_budget_cem(planning, goal_offset)
    raise ValueError(f"planner budget must be one of {list(BUDGETS)}, got {budget!r}")


@dataclass
class OfflineConfig:
    """Settings of one offline evaluation.

    goal_offset: K, control steps between the start and the goal frame (= the planning horizon).
    segments: number of segments drawn (jepa-wms: 64 "episodes").
    seed: segment ``j`` is drawn and planned from ``(seed, j)``.
    fps: the model's control rate; episodes recorded faster are subsampled with ``clip_step(source_fps, fps)``.
    planner: the CEM settings; ``None`` = :func:`jepa_wms_cem` with horizon ``goal_offset``. Its horizon must be
        ``goal_offset``.
    budget: label of the planner settings recorded with the results (``"jepa-wms"`` or ``"model"``).
    cost: the planning cost, ``"l1"`` or ``"l2"`` (``WorldModel.cost`` while planning).
    context_window: ``None`` (the whole history) or the number of frames each rollout step sees (jepa-wms: 2).
    batch_size: segments read and encoded together (results do not depend on it).
    """

    goal_offset: int = 3
    segments: int = 64
    seed: int = 0
    fps: float = DEFAULT_FPS
    planner: CEMConfig | None = None
    budget: str = "jepa-wms"
    cost: Literal["l1", "l2"] = "l1"
    context_window: int | None = None
    batch_size: int = 16

    def __post_init__(self) -> None:
        for name, low in (("goal_offset", 1), ("segments", 1), ("seed", 0), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a finite number > 0, got {self.fps!r}")
        check_cost(self.cost)  # the world model's own checks: the same values are set on it while planning
        check_context_window(self.context_window)
        if self.planner is None:
            self.planner = jepa_wms_cem(self.goal_offset)
        if self.planner.horizon != self.goal_offset:
            raise ValueError(f"planner horizon {self.planner.horizon} must equal goal_offset {self.goal_offset} "
                             "(one action per step between the start and the goal frame)")


# ---------------------------------------------------------------------------------------------------- segments
@dataclass(frozen=True)
class Segment:
    """Segment ``index``: frames ``frames`` (``K + 1`` source frame indices, ``step`` apart) of episode ``episode``."""

    index: int
    episode: int
    name: str
    frames: tuple[int, ...]

    @property
    def t(self) -> int:
        return self.frames[0]

    @property
    def t_goal(self) -> int:
        return self.frames[-1]

    @property
    def step(self) -> int:
        return self.frames[1] - self.frames[0]


class ShortEpisodesError(ValueError):
    """No episode of a source has ``goal_offset + 1`` frames at the model's rate (``longest``: the most it has)."""

    def __init__(self, goal_offset: int, longest: int, fps: float) -> None:
        super().__init__(f"goal_offset {goal_offset} needs episodes of at least {goal_offset + 1} frames at "
                         f"{fps:g} Hz; the longest has {longest}")
        self.goal_offset, self.longest, self.fps = goal_offset, longest, fps


def frames_at_rate(source: EpisodeSource, fps: float = DEFAULT_FPS) -> tuple[np.ndarray, np.ndarray]:
    """``(frames at fps [E], step [E])`` per episode: ``step = clip_step(episode_fps, fps)`` and
    ``(length - 1) // step + 1`` frames once subsampled."""
    steps = np.array([clip_step(source.episode_fps(i), fps) for i in range(len(source))], dtype=np.int64)
    lengths = np.array([source.episode_length(i) for i in range(len(source))], dtype=np.int64)
    return np.where(lengths > 0, (lengths - 1) // steps + 1, 0), steps


def sample_segments(source: EpisodeSource, goal_offset: int, n: int, seed: int,
                    fps: float = DEFAULT_FPS) -> list[Segment]:
    """``n`` segments: segment ``j`` draws, from ``numpy.random.default_rng((seed, j))``, an episode uniformly among
    those with at least ``goal_offset + 1`` frames at ``fps``, then a start frame uniformly among the source frames
    that leave room for the goal ``goal_offset * step`` frames later. ``ShortEpisodesError`` when none is long
    enough."""
    if len(source) == 0:
        raise ValueError("the source has no episodes")
    at_rate, steps = frames_at_rate(source, fps)
    eligible = np.flatnonzero(at_rate >= goal_offset + 1)
    if eligible.size == 0:
        raise ShortEpisodesError(goal_offset, int(at_rate.max()), fps)
    segments = []
    for j in range(n):
        rng = np.random.default_rng((seed, j))
        e = int(eligible[rng.integers(eligible.size)])
        span = goal_offset * int(steps[e])
        t = int(rng.integers(source.episode_length(e) - span))  # t + span <= length - 1
        frames = tuple(range(t, t + span + 1, int(steps[e])))
        segments.append(Segment(index=j, episode=e, name=source.episode_name(e), frames=frames))
    return segments


def segment_seed(seed: int, index: int) -> int:
    """Seed of segment ``index``'s planner generator: a pure function of ``(seed, index)``."""
    return int(np.random.SeedSequence((seed, index, 1)).generate_state(1, np.uint64)[0] >> 1)


# ---------------------------------------------------------------------------------------------------- metrics
def action_metrics(planned_sum: Tensor, recorded_sum: Tensor) -> dict[str, Tensor]:
    """Per-segment protocol metrics from action sums ``[S, 7]`` (planned, recorded) -> ``{name: [S]}``:
    ``xyz_error``, ``orientation_error``, ``gripper_error``, ``action_score``."""
    if planned_sum.shape != recorded_sum.shape or planned_sum.shape[-1] != POSE_DIM:
        raise ValueError(f"action sums must both be [S, {POSE_DIM}], got {tuple(planned_sum.shape)} and "
                         f"{tuple(recorded_sum.shape)}")
    e = (planned_sum - recorded_sum).abs()  # [S, 7]
    xyz = e[..., 0:3].sum(-1)
    return {"xyz_error": xyz, "orientation_error": e[..., 3:6].sum(-1), "gripper_error": e[..., 6],
            "action_score": (SCORE_SCALE * (SCORE_MARGIN - xyz)).clamp_min(0.0)}


# ---------------------------------------------------------------------------------------------------- results
def _r(x: float) -> float | None:
    """Six significant digits (JSON size); ``None`` for NaN / inf (strict JSON)."""
    return float(f"{x:.6g}") if math.isfinite(x) else None


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass
class SegmentResult:
    """One planned segment. Sums are over the ``K`` actions; energies are ``WorldModel.energy`` of the last
    predicted frame to the goal under the planned and the recorded actions."""

    index: int
    episode: str
    t: int
    t_goal: int
    step: int
    planned_sum: list[float]
    recorded_sum: list[float]
    xyz_error: float
    orientation_error: float
    gripper_error: float
    action_score: float
    planned_energy: float
    recorded_energy: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = _r(value)
            elif isinstance(value, list):
                out[key] = [_r(v) for v in value]
        return out


@dataclass
class OfflineResult:
    """All segments of one evaluation; the protocol's figures are the means over segments."""

    config: OfflineConfig
    segments: list[SegmentResult]
    episodes_used: int  # episodes long enough for a segment
    seconds: float
    zero_action: dict[str, float] = field(default_factory=dict)  # the same metrics for planning nothing

    def _mean(self, name: str) -> float:
        return float(np.mean([getattr(s, name) for s in self.segments]))

    def _sem(self, name: str) -> float:
        """Standard error of the mean over segments (NaN for one segment)."""
        from scipy.stats import sem

        values = [getattr(s, name) for s in self.segments]
        return float(sem(values)) if len(values) > 1 else math.nan

    @property
    def xyz_error_m(self) -> float:
        return self._mean("xyz_error")

    @property
    def orientation_error_rad(self) -> float:
        return self._mean("orientation_error")

    @property
    def gripper_error(self) -> float:
        return self._mean("gripper_error")

    @property
    def action_score(self) -> float:
        return self._mean("action_score")

    @property
    def seconds_per_segment(self) -> float:
        return self.seconds / len(self.segments)

    def to_dict(self, segments: bool = True) -> dict[str, Any]:
        """The JSON cell: means, their standard errors, the zero-action reference and (optionally) the segments."""
        out: dict[str, Any] = {
            "episodes": len(self.segments), "goal_offset": self.config.goal_offset, "seed": self.config.seed,
            "fps": self.config.fps, "episodes_used": self.episodes_used,
            "xyz_error_m": self.xyz_error_m, "orientation_error_rad": self.orientation_error_rad,
            "gripper_error": self.gripper_error, "action_score": self.action_score,
            "xyz_error_m_sem": self._sem("xyz_error"), "action_score_sem": self._sem("action_score"),
            "mean_planned_energy": self._mean("planned_energy"), "mean_recorded_energy": self._mean("recorded_energy"),
            "zero_action": dict(self.zero_action), "seconds_per_segment": self.seconds_per_segment,
        }
        out = {k: _json_float(v) if isinstance(v, float) else v for k, v in out.items()}
        out["zero_action"] = {k: _json_float(v) for k, v in self.zero_action.items()}
        if segments:
            out["segments"] = [s.to_dict() for s in self.segments]
        return out


def planner_dict(config: CEMConfig) -> dict[str, Any]:
    """A CEM config as JSON-friendly values (dtypes by name)."""
    out = {}
    for f in fields(config):
        value = getattr(config, f.name)
        out[f.name] = str(value).removeprefix("torch.") if isinstance(value, torch.dtype) else value
    return out


# ---------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_offline(world_model: WorldModel, source: EpisodeSource, config: OfflineConfig | None = None, *,
                     progress: Callable[[int, int], None] | None = None) -> OfflineResult:
    """Plan every segment of ``source`` (:func:`sample_segments`) with CEM from ``(z_t, s_t)`` to ``z_{t+K}`` and
    compare the planned with the recorded action sums.

    Start and goal frames of ``config.batch_size`` segments are encoded in one call (``[b, 2, H, W, 3]`` ->
    ``[b, 2, N, D]``); each segment is then planned on its own with a generator seeded from ``(seed, j)``.
    ``progress(done, total)`` is called after each segment. ``ValueError`` when states are not 7-d: the
    protocol's errors are DROID's (xyz, orientation, gripper), so the model must be in DROID's Franka space.
    """
    if world_model.space != DROID_FRANKA:
        raise ValueError(f"offline planning scores xyz / orientation / gripper errors of DROID's Franka space; the "
                         f"model's robot space is {world_model.space.describe()}")
    config = config if config is not None else OfflineConfig()
    settings = world_model.cost, world_model.context_window
    world_model.cost, world_model.context_window = config.cost, config.context_window
    try:
        return _evaluate_offline(world_model, source, config, progress)
    finally:
        world_model.cost, world_model.context_window = settings


def _evaluate_offline(world_model: WorldModel, source: EpisodeSource, config: OfflineConfig,
                      progress: Callable[[int, int], None] | None) -> OfflineResult:
    cfg, K = config.planner, config.goal_offset
    segments = sample_segments(source, K, config.segments, config.seed, config.fps)
    at_rate, _ = frames_at_rate(source, config.fps)
    planner = CEM(cfg)
    device = world_model.device
    energy_kw = dict(energy=cfg.energy, dtype=cfg.dtype, rescore=cfg.rescore)  # as the planner scores its plan
    start_all = time.perf_counter()
    planned, recorded, energies, seconds = [], [], [], []
    for first in range(0, len(segments), config.batch_size):
        batch = segments[first:first + config.batch_size]
        t0 = time.perf_counter()
        frames, states = _read_batch(source, batch)  # [b, 2, H, W, 3] (or a list), [b, K+1, 7] float64
        z = _encode(world_model, frames)  # [b, 2, N, D]
        actions = poses_to_diff(states[:, :-1], states[:, 1:])  # recorded [b, K, 7] float64
        shared = (time.perf_counter() - t0) / len(batch)  # reading + encoding, per segment
        for i, seg in enumerate(batch):
            t1 = time.perf_counter()
            z0, z_goal = z[i:i + 1, :1], z[i:i + 1, 1:]  # [1, 1, N, D]
            s0 = states[i:i + 1, :1].to(device=device, dtype=torch.float32)  # [1, 1, 7]
            generator = torch.Generator(device=device).manual_seed(segment_seed(config.seed, seg.index))
            plan = planner.plan(world_model, z0, s0, z_goal, generator=generator)
            rec = actions[i:i + 1].to(device=device, dtype=torch.float32)  # [1, K, 7]
            rec_energy = float(rollout_energy(world_model, z0, s0, z_goal, rec, **energy_kw)[0])
            planned.append(plan.actions.double().sum(0).cpu())  # [7]
            recorded.append(actions[i].sum(0))  # [7]
            energies.append((float(plan.energy), rec_energy))
            seconds.append(shared + time.perf_counter() - t1)
            if progress is not None:
                progress(len(planned), len(segments))
    planned_sum, recorded_sum = torch.stack(planned), torch.stack(recorded)  # [S, 7] float64
    m = action_metrics(planned_sum, recorded_sum)  # {name: [S]}
    results = [
        SegmentResult(index=seg.index, episode=seg.name, t=seg.t, t_goal=seg.t_goal, step=seg.step,
                      planned_sum=planned_sum[j].tolist(), recorded_sum=recorded_sum[j].tolist(),
                      xyz_error=float(m["xyz_error"][j]), orientation_error=float(m["orientation_error"][j]),
                      gripper_error=float(m["gripper_error"][j]), action_score=float(m["action_score"][j]),
                      planned_energy=energies[j][0], recorded_energy=energies[j][1], seconds=seconds[j])
        for j, seg in enumerate(segments)]
    zero = action_metrics(torch.zeros_like(recorded_sum), recorded_sum)  # the reference of planning nothing
    return OfflineResult(config=config, segments=results, episodes_used=int((at_rate >= K + 1).sum()),
                         seconds=time.perf_counter() - start_all,
                         zero_action={name: float(v.mean()) for name, v in zero.items()})


def _read_batch(source: EpisodeSource, batch: list[Segment]) -> tuple[np.ndarray | list[np.ndarray], Tensor]:
    """Start and goal frames ``[b, 2, H, W, 3]`` (a list of ``[2, H, W, 3]`` when sizes differ) and the states at
    all ``K + 1`` frames ``[b, K+1, 7]`` float64 of the segments in ``batch``."""
    frames, states = [], []
    for seg in batch:
        f, s = source.read(seg.episode, np.asarray(seg.frames))
        s = np.asarray(s, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != POSE_DIM:
            raise ValueError(f"{seg.name}: states have {s.shape[-1] if s.ndim else 0} dims; expected {POSE_DIM} "
                             "([x, y, z, roll, pitch, yaw, gripper] end-effector state)")
        if len(f) != len(seg.frames) or len(s) != len(seg.frames):
            raise ValueError(f"{seg.name}: read {len(f)} frames and {len(s)} states for {len(seg.frames)} indices")
        frames.append(np.stack([f[0], f[-1]]))
        states.append(s)
    same = len({f.shape for f in frames}) == 1
    return (np.stack(frames) if same else frames), torch.from_numpy(np.stack(states))


def _encode(world_model: WorldModel, frames: np.ndarray | list[np.ndarray]) -> Tensor:
    """``[b, 2, H, W, 3]`` uint8 -> ``[b, 2, N, D]`` (frames of different sizes: one segment at a time)."""
    if isinstance(frames, np.ndarray):
        return world_model.encode(frames)
    return torch.cat([world_model.encode(f[None]) for f in frames])


__all__ = ["BUDGETS", "DEFAULT_FPS", "JEPA_WMS_CEM", "OfflineConfig", "OfflineResult", "Segment", "SegmentResult",
           "ShortEpisodesError", "action_metrics", "evaluate_offline", "frames_at_rate", "jepa_wms_cem",
           "model_budget_cem", "offline_planner", "planner_dict", "sample_segments", "segment_seed"]
