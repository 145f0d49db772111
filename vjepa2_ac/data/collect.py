"""Collect episodes from a Gymnasium env into a dataset directory (resumable, parallel).

Episode ``i`` goes to ``<out>/episode_{i:06d}.h5`` with seed ``episode_seed(seed, i)`` and, for ``policy="mix"``,
a policy drawn from the same seed, so a collection is a pure function of its config: re-running it skips the
episodes already written (a file that fails to open is rewritten), and ``--workers`` does not change the data.

The env must return observations ``{"pixels": uint8 [H, W, 3], "agent_pos": float [7]}`` and
``info["is_success"]``. Optional env attributes used as episode metadata (on ``env.unwrapped`` or its ``cfg``):
``control_hz`` (else ``metadata["render_fps"]``), ``camera_name`` or ``camera``, ``camera_intrinsics`` ([3, 3]),
``camera_extrinsics``.
Policies: ``expert`` / ``noisy-expert`` call ``expert_fn(env, noise=..., **expert_kwargs)`` (default
``envs:scripted_expert``; e.g. ``expert_kwargs={"miss": 0.5}`` for its near-miss grasps) which returns
``obs -> action``; ``random`` samples the action space (seeded); ``mix`` draws one of the three per episode.

A dataset directory describes itself: ``collect_config.json`` holds the config that wrote it, and collecting into a
directory that already has one refuses (:class:`CollectError`, naming every differing setting with its stored and new
value) when any setting that changes the data differs (all config fields but :data:`NON_DATA_FIELDS`); the stored file
is only rewritten by a run that passed this check. A directory with episode files but no ``collect_config.json``
(written before the file existed) is refused too: the episodes' metadata does not record every such setting
(``max_steps``, ``expert_fn``, ``mix_weights``, the noise of non-noisy episodes, the requested image size), so the
settings cannot be verified; collect into a new directory (or, if you know the settings, write the file by hand).
A stored file that lacks only a field added later (:data:`ADDED_FIELDS`) was written with that field's default.
Everything is checked before the directory is created; a run that fails before writing any episode removes the
``collect_config.json`` it wrote and the directory again when it created it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vjepa2_ac.atomic import atomic_write_text, removed_if_left_empty
from vjepa2_ac.data.episode import PARTIAL_SUFFIX, EpisodeFile, EpisodeFormatError, EpisodeWriter

POLICIES = ("expert", "noisy-expert", "random", "mix")
MIX_POLICIES = ("expert", "noisy-expert", "random")
CONFIG_FILE = "collect_config.json"
NON_DATA_FIELDS = frozenset({"episodes", "out", "workers", "compression"})  # may differ when resuming a dataset
ADDED_FIELDS = {"expert_kwargs": {}}  # fields newer than collect_config.json: a stored file without one used this


class CollectError(ValueError):
    """A collection that cannot start: bad config, unknown env, or a dataset made with other settings."""


@dataclass
class CollectConfig:
    """What to collect. ``env_kwargs`` go to ``gymnasium.make``; ``image_size`` and ``camera`` are added to them
    when set."""

    env_id: str = "vjepa2ac/FrankaPickPlace-v0"
    policy: str = "expert"
    episodes: int = 10
    out: str = "data/collected"
    workers: int = 1
    seed: int = 0
    image_size: int | None = 128
    camera: str | None = None
    max_steps: int | None = None
    noise: float = 0.01  # passed as expert_fn(noise=...): envs.scripted_expert = translation noise std (m)
    mix_weights: tuple[float, float, float] = (0.4, 0.4, 0.2)  # expert, noisy-expert, random
    expert_fn: str = "envs:scripted_expert"
    expert_kwargs: dict[str, Any] = field(default_factory=dict)  # more expert_fn arguments (expert, noisy-expert)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    compression: str | None = "gzip"

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise CollectError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if self.episodes < 1:
            raise CollectError(f"episodes must be >= 1, got {self.episodes}")
        if self.seed < 0:
            raise CollectError(f"seed must be >= 0, got {self.seed}")
        if self.workers < 1:
            raise CollectError(f"workers must be >= 1, got {self.workers}")
        if self.image_size is not None and self.image_size <= 0:
            raise CollectError(f"image_size must be positive or None, got {self.image_size}")
        if self.max_steps is not None and self.max_steps < 1:
            raise CollectError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.noise < 0:
            raise CollectError(f"noise must be >= 0, got {self.noise}")
        if len(self.mix_weights) != 3 or min(self.mix_weights) < 0 or sum(self.mix_weights) <= 0:
            raise CollectError(f"mix_weights must be 3 non-negative weights with a positive sum, got {self.mix_weights}")
        if ":" not in self.expert_fn:
            raise CollectError(f"expert_fn must be 'module:function', got {self.expert_fn!r}")
        if not isinstance(self.expert_kwargs, dict) or {"noise", "seed", "rng"} & set(self.expert_kwargs):
            raise CollectError(f"expert_kwargs must be a dict of expert_fn arguments other than noise / seed / rng "
                               f"(set by the collector), got {self.expert_kwargs!r}")


@dataclass
class CollectSummary:
    written: int
    skipped: int
    successes: int
    steps: int
    seconds: float

    @property
    def episodes_per_minute(self) -> float:
        return 60.0 * self.written / self.seconds if self.seconds > 0 else float("nan")


def episode_path(out: str | os.PathLike, i: int) -> Path:
    return Path(out) / f"episode_{i:06d}.h5"


def episode_seed(seed: int, i: int) -> int:
    """Env seed of episode ``i`` (independent streams per episode; 31-bit so every env accepts it)."""
    return int(np.random.SeedSequence([seed, i]).generate_state(1, np.uint32)[0] >> 1)


def episode_policy(config: CollectConfig, i: int) -> str:
    if config.policy != "mix":
        return config.policy
    rng = np.random.default_rng((config.seed, i, 1))
    weights = np.asarray(config.mix_weights, dtype=np.float64)
    return MIX_POLICIES[int(rng.choice(3, p=weights / weights.sum()))]


def is_complete(path: Path) -> bool:
    """True when ``path`` is a readable episode file (what resuming skips)."""
    if not path.exists():
        return False
    try:
        with EpisodeFile(path):
            return True
    except EpisodeFormatError as err:
        warnings.warn(f"rewriting unreadable episode file {path}: {err}", stacklevel=2)
        return False


def remove_stale_partials(out: Path) -> int:
    """Delete temp files left by killed writers (their pid is gone); returns how many."""
    removed = 0
    for tmp in out.glob(f".*{PARTIAL_SUFFIX}"):
        try:
            pid = int(tmp.name[: -len(PARTIAL_SUFFIX)].rsplit(".", 1)[-1])
        except ValueError:
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_ENVS: dict[str, Any] = {}  # one env per process and config, reused across episodes


def make_env(config: CollectConfig):
    """``gymnasium.make`` with ``render_mode="rgb_array"``; imports ``envs`` for ``vjepa2ac/`` ids."""
    import gymnasium as gym

    if config.env_id.startswith("vjepa2ac/"):
        importlib.import_module("envs")
    kwargs = {"render_mode": "rgb_array", **config.env_kwargs}
    if config.image_size is not None:
        kwargs.setdefault("image_size", config.image_size)
    if config.camera is not None:
        kwargs.setdefault("camera", config.camera)
    return gym.make(config.env_id, **kwargs)


def _cached_env(config: CollectConfig):
    key = json.dumps([config.env_id, config.image_size, config.camera, config.env_kwargs], sort_keys=True, default=str)
    if key not in _ENVS:
        _ENVS[key] = make_env(config)
    return _ENVS[key]


def _load_function(spec: str) -> Callable:
    module, name = spec.split(":", 1)
    return getattr(importlib.import_module(module), name)


def make_policy(env, name: str, config: CollectConfig, seed: int) -> Callable[[dict], np.ndarray]:
    """``obs -> action`` for policy ``name`` (not ``mix``), seeded with ``seed``."""
    if name == "random":
        env.action_space.seed(seed)
        return lambda obs: env.action_space.sample()
    expert_fn = _load_function(config.expert_fn)
    kwargs: dict[str, Any] = {"noise": config.noise if name == "noisy-expert" else 0.0, **config.expert_kwargs}
    params = inspect.signature(expert_fn).parameters
    if "seed" in params:
        kwargs["seed"] = seed
    elif "rng" in params:
        kwargs["rng"] = np.random.default_rng(seed)
    return expert_fn(env, **kwargs)


def _env_attr(env, name: str) -> Any:
    """``env.unwrapped.<name>`` (called if a method), else ``env.unwrapped.cfg.<name>``, else None."""
    base = env.unwrapped
    value = getattr(base, name, None)
    if value is None:
        value = getattr(getattr(base, "cfg", None), name, None)
    return value() if callable(value) else value


def collect_episode(config: CollectConfig, i: int) -> dict[str, Any]:
    """Run and save episode ``i``; returns ``{"index", "steps", "is_success", "policy", "seed"}``."""
    env = _cached_env(config)
    seed = episode_seed(config.seed, i)
    policy_name = episode_policy(config, i)
    obs, info = env.reset(seed=seed)
    policy = make_policy(env, policy_name, config, seed)
    camera = config.camera or _env_attr(env, "camera_name") or _env_attr(env, "camera") or "front"
    control_hz = _env_attr(env, "control_hz") or env.metadata.get("render_fps")
    metadata = {
        "env_id": config.env_id, "seed": seed, "episode_index": i, "collection_seed": config.seed,
        "policy": policy_name, "noise": config.noise if policy_name == "noisy-expert" else 0.0,
        "expert_kwargs": config.expert_kwargs if policy_name != "random" else {},
        "control_hz": float(control_hz) if control_hz else "",
        "env_kwargs": config.env_kwargs,
    }
    max_steps = config.max_steps if config.max_steps is not None else float("inf")
    with EpisodeWriter(episode_path(config.out, i), camera=str(camera), metadata=metadata,
                       intrinsics=_env_attr(env, "camera_intrinsics"), extrinsics=_env_attr(env, "camera_extrinsics"),
                       compression=config.compression, overwrite=True) as writer:
        steps = 0
        while True:
            action = np.asarray(policy(obs), dtype=np.float32)
            frame, state = obs["pixels"], obs["agent_pos"]
            obs, reward, terminated, truncated, info = env.step(action)
            writer.add_step(frame, state, action, reward=float(reward))
            steps += 1
            if terminated or truncated or steps >= max_steps:
                break
        writer.add_step(obs["pixels"], obs["agent_pos"])
        writer.is_success = bool(info.get("is_success", False))
    return {"index": i, "steps": steps, "is_success": writer.is_success, "policy": policy_name, "seed": seed}


def _config_dict(config: CollectConfig) -> dict[str, Any]:
    """The config as stored in ``collect_config.json`` (JSON types: tuples become lists)."""
    return json.loads(json.dumps(asdict(config), default=str))


def _write_config(config: CollectConfig) -> None:
    atomic_write_text(Path(config.out) / CONFIG_FILE, json.dumps(_config_dict(config), indent=1))


def check_env_id(env_id: str) -> None:
    """:class:`CollectError` naming the valid ids unless ``env_id`` is a registered task or Gymnasium env."""
    from envs.tasks import TASKS

    valid = [spec.env_id for spec in TASKS.values()]
    hint = f"expected one of {valid} (or a registered Gymnasium id, optionally as 'module:id')"
    if env_id.startswith("vjepa2ac/"):
        if env_id not in valid:
            raise CollectError(f"unknown env {env_id!r}; {hint}")
        return
    import gymnasium as gym

    module, name = env_id.split(":", 1) if ":" in env_id else (None, env_id)
    try:
        if module is not None:
            importlib.import_module(module)
        gym.spec(name)
    except (ImportError, gym.error.Error) as err:
        raise CollectError(f"unknown env {env_id!r} ({err}); {hint}") from None


def check_expert_kwargs(config: CollectConfig) -> None:
    """:class:`CollectError` when ``config.expert_fn`` cannot be loaded or does not take ``config.expert_kwargs``."""
    if config.policy == "random" or not config.expert_kwargs:
        return
    try:
        fn = _load_function(config.expert_fn)
    except (ImportError, AttributeError) as err:
        raise CollectError(f"cannot load expert_fn {config.expert_fn!r}: {err}") from None
    try:
        inspect.signature(fn).bind_partial(None, **config.expert_kwargs)
    except TypeError as err:
        raise CollectError(f"expert_kwargs {config.expert_kwargs!r} do not fit {config.expert_fn}: {err}") from None


def check_dataset(config: CollectConfig) -> None:
    """:class:`CollectError` when ``config.out`` holds data collected with other settings (or unverifiable ones).

    Compares every field but :data:`NON_DATA_FIELDS` with the stored ``collect_config.json`` (and, when both use the
    same policy, but the ones it never reads: ``mix_weights`` unless ``mix``, ``noise`` for ``expert``/``random``,
    ``expert_fn`` for ``random``); a field the stored file lacks counts as differing, except one of
    :data:`ADDED_FIELDS`, which counts as its default. A directory with episodes and no stored config is refused
    (see the module docstring).
    """
    out = Path(config.out)
    stored_path = out / CONFIG_FILE
    if not stored_path.exists():
        episodes = sorted(out.glob("episode_*.h5")) if out.is_dir() else []
        if episodes:
            raise CollectError(
                f"{out} holds {len(episodes)} episode file(s) but no {CONFIG_FILE}, so the settings they were "
                f"collected with cannot be verified (episode metadata does not record max_steps, expert_fn, "
                f"mix_weights or the requested image size); collect into a new directory")
        return
    try:
        stored = json.loads(stored_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CollectError(f"cannot read {stored_path}: {err}; collect into a new directory") from None
    if not isinstance(stored, dict):
        raise CollectError(f"{stored_path} is not a JSON object; collect into a new directory")
    new = _config_dict(config)
    ignored = set(NON_DATA_FIELDS)
    if stored.get("policy") == config.policy:  # settings the (shared) policy never reads
        ignored |= {"mix_weights"} if config.policy != "mix" else set()
        ignored |= {"noise"} if config.policy in ("expert", "random") else set()
        ignored |= {"expert_fn", "expert_kwargs"} if config.policy == "random" else set()
    missing = object()
    stored = {**ADDED_FIELDS, **stored}
    diffs = [f"{key}: stored {'(not recorded)' if stored.get(key, missing) is missing else repr(stored[key])}, "
             f"new {value!r}"
             for key, value in new.items()
             if key not in ignored and stored.get(key, missing) != value]
    if diffs:
        raise CollectError(f"{out} was collected with other settings ({'; '.join(diffs)}); refusing to mix them: "
                           f"rerun with the stored settings or collect into a new directory")


def collect(config: CollectConfig, *, progress: bool = True) -> CollectSummary:
    """Collect ``config.episodes`` episodes into ``config.out``, skipping complete ones; returns counts.

    Raises :class:`CollectError` (before touching ``config.out``) for an unknown env or a dataset collected with
    other settings."""
    out = Path(config.out)
    check_env_id(config.env_id)
    check_expert_kwargs(config)
    check_dataset(config)
    had_config = (out / CONFIG_FILE).exists()
    with removed_if_left_empty(out):
        out.mkdir(parents=True, exist_ok=True)
        try:
            return _collect(config, out, progress)
        except BaseException:  # no episode written: the settings it stored describe nothing
            if not had_config and not any(out.glob("episode_*.h5")):
                (out / CONFIG_FILE).unlink(missing_ok=True)
            raise


def _collect(config: CollectConfig, out: Path, progress: bool) -> CollectSummary:
    from tqdm.auto import tqdm

    remove_stale_partials(out)
    _write_config(config)
    todo = [i for i in range(config.episodes) if not is_complete(episode_path(out, i))]
    skipped = config.episodes - len(todo)
    start = time.perf_counter()
    successes = steps = 0
    bar = tqdm(total=config.episodes, initial=skipped, desc=f"collect {config.env_id}", unit="ep",
               disable=not progress)

    def done(result: dict[str, Any]) -> None:
        nonlocal successes, steps
        successes += int(result["is_success"])
        steps += result["steps"]
        bar.update(1)
        bar.set_postfix(success=f"{successes}/{bar.n - skipped}")

    try:
        if config.workers == 1 or len(todo) <= 1:
            for i in todo:
                done(collect_episode(config, i))
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")  # MuJoCo/EGL contexts do not survive fork
            with ProcessPoolExecutor(max_workers=min(config.workers, len(todo)), mp_context=ctx) as pool:
                pending = {pool.submit(collect_episode, config, i) for i in todo}
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for fut in finished:
                        if fut.exception() is not None:
                            for other in pending:
                                other.cancel()
                            raise fut.exception()
                        done(fut.result())
    finally:
        bar.close()
    return CollectSummary(written=len(todo), skipped=skipped, successes=successes, steps=steps,
                          seconds=time.perf_counter() - start)
