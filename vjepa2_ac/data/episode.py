"""One HDF5 file per episode, DROID-compatible names where they exist.

Layout (``T`` observations, ``T - 1`` actions)::

    observation/robot_state/cartesian_position   float64 [T, 6]   x, y, z (m), extrinsic "xyz" Euler (rad)
    observation/robot_state/gripper_position     float64 [T]      gripper closedness in [0, 1] (0 open)
    observation/robot_state/state                float64 [T, A]   instead of the two above for another robot
                                                                   space (root attribute ``robot_space``: its JSON)
    observation/camera/<name>                    uint8 [T, H, W, 3]  one frame per chunk, compressed
    action                                       float32 [T-1, A]  command sent after observation t; it leads
                                                                   to observation t + 1 (DESIGN.md convention)
    extra/<name>                                 float32 [T, ...]  optional per-step values (reward, energy,
                                                                   latency, ...); NaN where a step has none
    is_success                                   bool scalar

Root attributes: ``format`` (``"vjepa2-ac-episode"``), ``format_version``, ``num_steps`` (T), ``library_version``,
``created`` and what the writer was given (``env_id``, ``seed``, ``control_hz``, ``policy``, ...; dicts and lists
are stored as JSON strings). Camera datasets carry ``intrinsics`` ([3, 3]) and ``extrinsics`` when known.
If the last recorded step carried an action (no observation followed it), it is kept as the root attribute
``final_action``.

Training code does not read ``action``: clips compute actions from consecutive states (official DROID recipe).

Files are written to a hidden temp file next to the target (``.<name>.<pid>.partial``) and renamed when complete,
so a crash never leaves a half episode under the final name.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vjepa2_ac.model.space import DROID_FRANKA, RobotSpace

FORMAT_NAME = "vjepa2-ac-episode"
FORMAT_VERSION = 1
EPISODE_SUFFIXES = (".h5", ".hdf5")
CARTESIAN_KEY = "observation/robot_state/cartesian_position"
GRIPPER_KEY = "observation/robot_state/gripper_position"
STATE_KEY = "observation/robot_state/state"
CAMERA_GROUP = "observation/camera"
ACTION_KEY = "action"
EXTRA_GROUP = "extra"
SUCCESS_KEY = "is_success"
PARTIAL_SUFFIX = ".partial"


class EpisodeFormatError(ValueError):
    """A file is not a readable episode (missing datasets, inconsistent lengths, truncated, not HDF5)."""


def _library_version() -> str:
    from vjepa2_ac import __version__

    return __version__


def partial_path(path: Path) -> Path:
    """Temp file used while ``path`` is being written (hidden, same directory so the rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _attr_value(value: Any) -> Any:
    """HDF5-storable attribute: numbers/strings/arrays as is, dicts/lists of non-numbers as JSON, None as ''."""
    if value is None:
        return ""
    if isinstance(value, (str, bytes, bool, int, float, np.generic)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return np.asarray(value, dtype=np.float64)
    return json.dumps(value)


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


class EpisodeWriter:
    """Record an episode step by step into ``path`` (renamed into place by :meth:`close`).

    ``add_step(frame, state, action)`` stores the observation of step t and the action taken after it; the last
    observation of an episode is added without an action. Use as a context manager: an exception inside the
    ``with`` block deletes the temp file and leaves no episode behind::

        with EpisodeWriter("out/episode_000000.h5", camera="front", metadata={"env_id": ..., "seed": 3}) as w:
            w.add_step(obs["pixels"], obs["agent_pos"], action, reward=r)
            ...
            w.add_step(obs["pixels"], obs["agent_pos"])
            w.is_success = info["is_success"]

    ``space``: the robot's state and action space (default DROID's Franka end effector, stored under DROID's
    names); another space is stored as ``observation/robot_state/state`` with its description.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        camera: str = "front",
        metadata: Mapping[str, Any] | None = None,
        intrinsics: np.ndarray | None = None,
        extrinsics: np.ndarray | None = None,
        compression: str | None = "gzip",
        compression_level: int | None = 4,
        overwrite: bool = False,
        space: RobotSpace | None = None,
    ) -> None:
        self.path = Path(path)
        self.space = DROID_FRANKA if space is None else RobotSpace.from_dict(space)
        if self.path.suffix not in EPISODE_SUFFIXES:
            raise ValueError(f"path must end with one of {EPISODE_SUFFIXES}, got {str(self.path)!r}")
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"episode file {self.path} already exists (pass overwrite=True to replace it)")
        if not camera or "/" in camera:
            raise ValueError(f"camera must be a non-empty name without '/', got {camera!r}")
        self.camera = camera
        self.metadata = dict(metadata or {})
        self.intrinsics = None if intrinsics is None else np.asarray(intrinsics, dtype=np.float64)
        if self.intrinsics is not None and self.intrinsics.shape != (3, 3):
            raise ValueError(f"intrinsics must have shape (3, 3), got {self.intrinsics.shape}")
        self.extrinsics = None if extrinsics is None else np.asarray(extrinsics, dtype=np.float64)
        if compression not in (None, "gzip", "lzf"):
            raise ValueError(f"compression must be None, 'gzip' or 'lzf', got {compression!r}")
        self._compression = compression
        self._compression_opts = compression_level if compression == "gzip" else None
        self.is_success: bool = False
        self._tmp = partial_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._h5: h5py.File | None = h5py.File(self._tmp, "w")
        self._num_steps = 0
        self._frame_shapes: dict[str, tuple[int, ...]] = {}
        self._states: list[np.ndarray] = []
        self._actions: list[np.ndarray | None] = []
        self._extras: dict[str, list[np.ndarray | None]] = {}
        self._extra_shapes: dict[str, tuple[int, ...]] = {}

    # -- recording -------------------------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        return self._num_steps

    def add_step(
        self,
        frame: np.ndarray | Mapping[str, np.ndarray],
        state: Sequence[float] | np.ndarray,
        action: Sequence[float] | np.ndarray | None = None,
        **extras: float | np.ndarray,
    ) -> None:
        """Append observation t (``frame`` uint8 [H, W, 3] or ``{camera: frame}``, ``state`` [A]), the ``action``
        [A] taken after it (None for the last step) and per-step float ``extras`` (stored under ``extra/<name>``).
        ``A = space.dim`` (7 for DROID's Franka space)."""
        if self._h5 is None:
            raise RuntimeError("EpisodeWriter is closed")
        if self._actions and self._actions[-1] is None:
            raise ValueError(
                f"step {self._num_steps - 1} was added without an action; only the last step of an episode may omit it"
            )
        frames = frame if isinstance(frame, Mapping) else {self.camera: frame}
        state_arr = np.asarray(state, dtype=np.float64)
        self.space.check(state_arr, "state", ())
        action_arr = None
        if action is not None:
            action_arr = np.asarray(action, dtype=np.float32)
            self.space.check(action_arr, "action", ())
        if self._num_steps and set(frames) != set(self._frame_shapes):
            raise ValueError(f"frame cameras {sorted(frames)} differ from earlier steps {sorted(self._frame_shapes)}")
        extra_arrs = {name: np.asarray(value, dtype=np.float32) for name, value in extras.items()}
        for name, arr in extra_arrs.items():
            if name in self._extra_shapes and arr.shape != self._extra_shapes[name]:
                raise ValueError(f"extra {name!r} must keep shape {self._extra_shapes[name]}, got {arr.shape}")
        frame_arrs = {name: np.asarray(img)[None] for name, img in frames.items()}
        for name, arr in frame_arrs.items():  # validate everything before writing anything
            self._check_frames(name, arr)
        for name, arr in frame_arrs.items():
            self._append_frames(name, arr)
        self._states.append(state_arr)
        self._actions.append(action_arr)
        for name, arr in extra_arrs.items():
            if name not in self._extras:
                self._extras[name] = [None] * self._num_steps
                self._extra_shapes[name] = arr.shape
            self._extras[name].append(arr)
        self._num_steps += 1
        for values in self._extras.values():
            if len(values) < self._num_steps:
                values.append(None)

    def _check_frames(self, name: str, frames: np.ndarray) -> None:
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frame {name!r} must be uint8 [H, W, 3], got {frames.dtype} {frames.shape[1:]}")
        if "/" in name or not name:
            raise ValueError(f"camera name must be non-empty without '/', got {name!r}")
        if name in self._frame_shapes and frames.shape[1:] != self._frame_shapes[name]:
            raise ValueError(f"frame {name!r} must keep shape {self._frame_shapes[name]}, got {frames.shape[1:]}")

    def _append_frames(self, name: str, frames: np.ndarray) -> None:
        assert self._h5 is not None
        key = f"{CAMERA_GROUP}/{name}"
        if name not in self._frame_shapes:
            hw = frames.shape[1:]
            self._frame_shapes[name] = hw
            ds = self._h5.create_dataset(
                key, shape=(0, *hw), maxshape=(None, *hw), chunks=(1, *hw), dtype=np.uint8,
                compression=self._compression, compression_opts=self._compression_opts,
            )
            if name == self.camera and self.intrinsics is not None:
                ds.attrs["intrinsics"] = self.intrinsics
            if name == self.camera and self.extrinsics is not None:
                ds.attrs["extrinsics"] = self.extrinsics
        ds = self._h5[key]
        n = ds.shape[0]
        ds.resize(n + len(frames), axis=0)
        ds[n:] = frames

    # -- finishing -------------------------------------------------------------------------------------------
    def close(self, is_success: bool | None = None) -> Path:
        """Write the remaining arrays and attributes, then atomically rename the temp file to ``path``."""
        if self._h5 is None:
            raise RuntimeError("EpisodeWriter is already closed")
        if is_success is not None:
            self.is_success = bool(is_success)
        if self._num_steps == 0:
            self.abort()
            raise ValueError("cannot save an episode with no steps")
        h5 = self._h5
        try:
            states = np.stack(self._states)
            if self.space == DROID_FRANKA:
                h5.create_dataset(CARTESIAN_KEY, data=states[:, :6])
                h5.create_dataset(GRIPPER_KEY, data=states[:, 6])
            else:
                h5.create_dataset(STATE_KEY, data=states)
            actions = [a for a in self._actions[:-1]]
            final_action = self._actions[-1]
            h5.create_dataset(ACTION_KEY, data=np.stack(actions) if actions else np.zeros((0, self.space.dim),
                                                                                           np.float32))
            h5.create_dataset(SUCCESS_KEY, data=bool(self.is_success))
            for name, values in self._extras.items():
                shape = self._extra_shapes[name]
                filled = [np.full(shape, np.nan, np.float32) if v is None else v for v in values]
                h5.create_dataset(f"{EXTRA_GROUP}/{name}", data=np.stack(filled))
            attrs = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "num_steps": self._num_steps,
                "camera": self.camera,
                "library_version": _library_version(),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                **({} if self.space == DROID_FRANKA else {"robot_space": self.space.to_dict()}),
            }
            for key, value in {**self.metadata, **attrs}.items():
                h5.attrs[key] = _attr_value(value)
            if final_action is not None:
                h5.attrs["final_action"] = final_action
            h5.close()
            self._h5 = None
            with open(self._tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Discard the episode: close and delete the temp file (the final path is never touched)."""
        if self._h5 is not None:
            try:
                self._h5.close()
            except Exception:  # pragma: no cover - already broken file
                pass
            self._h5 = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif self._h5 is not None:
            self.close()


def write_episode(
    path: str | os.PathLike,
    frames: np.ndarray | Mapping[str, np.ndarray],
    states: np.ndarray,
    actions: np.ndarray | None = None,
    *,
    is_success: bool = False,
    camera: str = "front",
    metadata: Mapping[str, Any] | None = None,
    extras: Mapping[str, np.ndarray] | None = None,
    space: RobotSpace | None = None,
    **writer_kwargs: Any,
) -> Path:
    """Write a whole episode at once: ``frames`` uint8 [T, H, W, 3] (or ``{camera: frames}``), ``states`` [T, A],
    ``actions`` [T-1, A] (or [T, A], the last one kept as ``final_action``; default: :func:`state_deltas`),
    ``extras`` ``{name: [T, ...]}``; ``A = space.dim`` (default DROID's Franka space, A = 7)."""
    frame_map = frames if isinstance(frames, Mapping) else {camera: frames}
    space = DROID_FRANKA if space is None else RobotSpace.from_dict(space)
    states = np.asarray(states)
    if states.ndim != 2:
        raise ValueError(f"states must have shape [T, {space.dim}], got {states.shape}")
    space.check(states, "states")
    num_steps = len(states)
    for name, f in frame_map.items():
        if len(f) != num_steps:
            raise ValueError(f"frames[{name!r}] has {len(f)} frames but states has {num_steps} steps")
    if actions is None:
        actions = state_deltas(states, space).astype(np.float32)
    else:
        actions = np.asarray(actions)
        if actions.ndim != 2 or len(actions) not in (num_steps - 1, num_steps):
            raise ValueError(f"actions must have shape [T-1, {space.dim}] or [T, {space.dim}] with T={num_steps}, "
                             f"got {actions.shape}")
    extras = dict(extras or {})
    for name, values in extras.items():
        if len(values) != num_steps:
            raise ValueError(f"extras[{name!r}] must have {num_steps} rows, got {len(values)}")
    with EpisodeWriter(path, camera=camera, metadata=metadata, space=space, **writer_kwargs) as writer:
        for t in range(num_steps):
            action = actions[t] if t < len(actions) else None
            writer.add_step({k: v[t] for k, v in frame_map.items()}, states[t], action,
                            **{k: v[t] for k, v in extras.items()})
        writer.is_success = is_success
    return Path(path)


def state_deltas(states: np.ndarray, space: RobotSpace = DROID_FRANKA) -> np.ndarray:
    """Actions between consecutive states, float64 ``[T, A] -> [T-1, A]``: differences, and ``euler(R1 · R0ᵀ)`` for
    the rotation dims (numpy/scipy twin of :meth:`vjepa2_ac.model.space.RobotSpace.deltas`)."""
    from scipy.spatial.transform import Rotation

    states = np.asarray(states, dtype=np.float64)
    space.check(states, "states")
    out = np.diff(states, axis=0)
    if space.rotation and len(states) > 1:
        r = list(space.rotation)
        r0, r1 = Rotation.from_euler("xyz", states[:-1, r]), Rotation.from_euler("xyz", states[1:, r])
        out[:, r] = (r1 * r0.inv()).as_euler("xyz")
    return out


@dataclass
class Episode:
    """An episode loaded in memory (see :func:`load_episode`)."""

    frames: dict[str, np.ndarray]  # camera -> uint8 [T, H, W, 3]
    states: np.ndarray  # float64 [T, A]
    actions: np.ndarray  # float32 [T-1, A]
    is_success: bool
    metadata: dict[str, Any]
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # name -> float32 [T, ...]

    @property
    def num_steps(self) -> int:
        return len(self.states)


class EpisodeFile:
    """Lazy reader of one episode file: only the requested frames are decompressed.

    Raises :class:`EpisodeFormatError` when the file is not a complete episode.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self._h5 = h5py.File(self.path, "r")
        except (OSError, ValueError) as err:
            raise EpisodeFormatError(f"cannot open episode file {self.path}: {err}") from err
        try:
            self._validate()
        except BaseException:
            self._h5.close()
            raise

    def _validate(self) -> None:
        h5 = self._h5
        fmt = h5.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        state_keys = (STATE_KEY,) if STATE_KEY in h5 else (CARTESIAN_KEY, GRIPPER_KEY)
        missing = [k for k in (*state_keys, CAMERA_GROUP, ACTION_KEY, SUCCESS_KEY) if k not in h5]
        if fmt != FORMAT_NAME or missing:
            raise EpisodeFormatError(f"{self.path} is not a {FORMAT_NAME} file (format={fmt!r}, missing {missing})")
        try:
            self.space: RobotSpace = (RobotSpace.from_dict(_decode_attr(h5.attrs["robot_space"]))
                                      if STATE_KEY in h5 else DROID_FRANKA)
        except (KeyError, ValueError, TypeError) as err:
            raise EpisodeFormatError(f"{self.path}: {STATE_KEY} needs a valid robot_space attribute: {err}") from err
        num_steps = h5[state_keys[0]].shape[0]
        self.cameras: list[str] = list(h5[CAMERA_GROUP].keys())
        if not self.cameras:
            raise EpisodeFormatError(f"{self.path} has no camera frames")
        lengths = {**({"gripper_position": h5[GRIPPER_KEY].shape[0]} if STATE_KEY not in h5 else {}),
                   **{f"camera/{c}": h5[f"{CAMERA_GROUP}/{c}"].shape[0] for c in self.cameras}}
        bad = {k: n for k, n in lengths.items() if n != num_steps}
        if bad or h5[ACTION_KEY].shape[0] != max(num_steps - 1, 0):
            raise EpisodeFormatError(f"{self.path}: inconsistent lengths (T={num_steps}, {bad}, "
                                     f"action={h5[ACTION_KEY].shape[0]})")
        self.num_steps: int = num_steps
        try:  # reading the last frame of each camera detects truncated data chunks
            for c in self.cameras:
                h5[f"{CAMERA_GROUP}/{c}"][num_steps - 1]
        except (OSError, ValueError, KeyError) as err:
            raise EpisodeFormatError(f"{self.path}: unreadable frames: {err}") from err

    @property
    def metadata(self) -> dict[str, Any]:
        return {k: _decode_attr(v) for k, v in self._h5.attrs.items()}

    @property
    def is_success(self) -> bool:
        return bool(self._h5[SUCCESS_KEY][()])

    def frame_shape(self, camera: str | None = None) -> tuple[int, int, int]:
        return tuple(self._h5[f"{CAMERA_GROUP}/{self._camera(camera)}"].shape[1:])

    def _camera(self, camera: str | None) -> str:
        if camera is None:
            default = _decode_attr(self._h5.attrs.get("camera", ""))
            return default if default in self.cameras else self.cameras[0]
        if camera not in self.cameras:
            raise KeyError(f"camera {camera!r} not in {self.path} (has {self.cameras})")
        return camera

    def states(self, indices: np.ndarray | slice = slice(None)) -> np.ndarray:
        """float64 [T, A] (or the rows at ``indices``); A = ``space.dim``."""
        if STATE_KEY in self._h5:
            return self._h5[STATE_KEY][()][indices]
        pos = self._h5[CARTESIAN_KEY][()]
        grip = self._h5[GRIPPER_KEY][()]
        return np.concatenate([pos, grip[:, None]], axis=1)[indices]

    def actions(self) -> np.ndarray:
        return self._h5[ACTION_KEY][()]

    def frames(self, indices: np.ndarray | Sequence[int] | None = None, camera: str | None = None) -> np.ndarray:
        """uint8 [k, H, W, 3]: the frames at ``indices`` (any order, repeats allowed) or all frames."""
        ds = self._h5[f"{CAMERA_GROUP}/{self._camera(camera)}"]
        if indices is None:
            return ds[()]
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_steps):
            raise IndexError(f"frame indices must be in [0, {self.num_steps}), got {idx.min()}..{idx.max()}")
        uniq, inverse = np.unique(idx, return_inverse=True)  # h5py needs increasing unique indices
        return ds[uniq][inverse] if len(uniq) else np.zeros((0, *ds.shape[1:]), np.uint8)

    def extras(self) -> dict[str, np.ndarray]:
        if EXTRA_GROUP not in self._h5:
            return {}
        return {k: v[()] for k, v in self._h5[EXTRA_GROUP].items()}

    def load(self) -> Episode:
        return Episode(
            frames={c: self.frames(camera=c) for c in self.cameras},
            states=self.states(), actions=self.actions(), is_success=self.is_success,
            metadata=self.metadata, extras=self.extras(),
        )

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> EpisodeFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_episode(path: str | os.PathLike) -> Episode:
    """Read a whole episode file into memory."""
    with EpisodeFile(path) as f:
        return f.load()
