"""A dataset directory: episode files (``*.h5``, any depth) plus ``index.json``, rebuilt when stale.

The index caches, per file, its size and mtime and what sampling needs (number of steps, frame rate, cameras,
frame shape, success, env id, seed, policy). It is stale when a file was added, removed or changed (size or
mtime); only the changed entries are re-read. Unreadable files (corrupt, truncated, not an episode) are skipped
with a warning naming the file. Hidden files (temp files of episodes being written) are ignored.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vjepa2_ac.atomic import atomic_write_text
from vjepa2_ac.data.episode import EPISODE_SUFFIXES, EpisodeFile, EpisodeFormatError
from vjepa2_ac.model.space import DROID_FRANKA, RobotSpace

INDEX_NAME = "index.json"
INDEX_VERSION = 1


@dataclass
class EpisodeRecord:
    """One index entry. ``error`` is set (and the rest unset) for a file that could not be read."""

    file: str  # relative to the dataset root, '/'-separated
    size: int
    mtime_ns: int
    num_steps: int = 0
    control_hz: float | None = None
    cameras: tuple[str, ...] = ()
    frame_shape: tuple[int, ...] = ()
    is_success: bool = False
    env_id: str = ""
    seed: int | None = None
    policy: str = ""
    robot_space: dict | None = None  # RobotSpace.to_dict() of another robot; None: DROID's Franka space
    error: str = ""


def episode_files(root: Path) -> list[Path]:
    """The episode files under ``root`` (recursively, hidden files and folders left out), in sorted order."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [Path(dirpath) / f for f in sorted(filenames)
                  if f.endswith(EPISODE_SUFFIXES) and not f.startswith(".")]
    return files


def _read_record(path: Path, rel: str, stat: os.stat_result) -> EpisodeRecord:
    record = EpisodeRecord(file=rel, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    try:
        with EpisodeFile(path) as ep:
            meta = ep.metadata
            record.num_steps = ep.num_steps
            hz = meta.get("control_hz")
            record.control_hz = float(hz) if isinstance(hz, (int, float)) and hz > 0 else None
            record.cameras = tuple(ep.cameras)
            record.frame_shape = ep.frame_shape()
            record.is_success = ep.is_success
            record.env_id = str(meta.get("env_id", ""))
            seed = meta.get("seed")
            record.seed = int(seed) if isinstance(seed, (int, np.integer)) else None
            record.policy = str(meta.get("policy", ""))
            record.robot_space = None if ep.space == DROID_FRANKA else ep.space.to_dict()
    except EpisodeFormatError as err:
        record.error = str(err)
    except Exception as err:  # h5py raises many types on damaged files
        record.error = f"{path}: {type(err).__name__}: {err}"
    return record


def _write_json_atomic(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=1), fsync=True)


def load_index(root: str | os.PathLike, *, rebuild: bool = False, warn: bool = True) -> list[EpisodeRecord]:
    """Records of the readable episodes under ``root`` (sorted by file name), refreshing ``index.json`` if stale.

    Args:
        root: dataset directory.
        rebuild: ignore the existing index and re-read every file.
        warn: emit a warning for each unreadable file (it is skipped either way).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory {root} does not exist")
    index_path = root / INDEX_NAME
    cached: dict[str, EpisodeRecord] = {}
    if index_path.exists() and not rebuild:
        try:
            payload = json.loads(index_path.read_text())
            if payload.get("version") == INDEX_VERSION:
                for entry in payload["episodes"]:
                    entry["cameras"] = tuple(entry["cameras"])
                    entry["frame_shape"] = tuple(entry["frame_shape"])
                    cached[entry["file"]] = EpisodeRecord(**entry)
        except (OSError, ValueError, KeyError, TypeError) as err:
            warnings.warn(f"ignoring unreadable dataset index {index_path}: {err}", stacklevel=2)
            cached = {}
    records: list[EpisodeRecord] = []
    changed = False
    for path in episode_files(root):
        rel = path.relative_to(root).as_posix()
        try:
            stat = path.stat()
        except OSError:  # removed while scanning
            continue
        old = cached.get(rel)
        if old is not None and old.size == stat.st_size and old.mtime_ns == stat.st_mtime_ns:
            records.append(old)
        else:
            records.append(_read_record(path, rel, stat))
            changed = True
    if set(cached) != {r.file for r in records}:
        changed = True
    if changed:
        payload = {"version": INDEX_VERSION, "episodes": [asdict(r) for r in records]}
        try:
            _write_json_atomic(index_path, payload)
        except OSError as err:  # read-only dataset: keep the index in memory
            warnings.warn(f"could not write dataset index {index_path}: {err}", stacklevel=2)
    good = []
    for r in records:
        if r.error:
            if warn:
                warnings.warn(f"skipping unreadable episode file {root / r.file}: {r.error}", stacklevel=2)
        else:
            good.append(r)
    return good


class EpisodeDirectory:
    """Episodes of one dataset directory, as a clip source (see :class:`vjepa2_ac.data.ClipDataset`).

    Args:
        root: dataset directory.
        camera: which camera's frames to read (default: the episode's ``camera`` attribute).
        source_fps: frame rate of the episodes when their ``control_hz`` attribute is missing.
    """

    def __init__(self, root: str | os.PathLike, *, camera: str | None = None, source_fps: float | None = None,
                 rebuild_index: bool = False) -> None:
        self.root = Path(root)
        self.camera = camera
        self.records = load_index(self.root, rebuild=rebuild_index)
        if camera is not None:
            self.records = [r for r in self.records if camera in r.cameras]
        self._fps = []
        for r in self.records:
            fps = r.control_hz or source_fps
            if fps is None:
                raise ValueError(f"episode {self.root / r.file} has no control_hz attribute: pass source_fps=")
            self._fps.append(float(fps))
        spaces = {json.dumps(r.robot_space, sort_keys=True): r for r in self.records}
        if len(spaces) > 1:
            a, b = list(spaces.values())[:2]
            raise ValueError(f"{self.root} mixes robot spaces: {a.file} is "
                             f"{RobotSpace.from_dict(a.robot_space or DROID_FRANKA).describe()}, {b.file} is "
                             f"{RobotSpace.from_dict(b.robot_space or DROID_FRANKA).describe()}")
        first = self.records[0].robot_space if self.records else None
        #: the episodes' robot space (all the same)
        self.space: RobotSpace = DROID_FRANKA if first is None else RobotSpace.from_dict(first)

    def __len__(self) -> int:
        return len(self.records)

    def episode_name(self, i: int) -> str:
        return str(self.root / self.records[i].file)

    def episode_length(self, i: int) -> int:
        return self.records[i].num_steps

    def episode_fps(self, i: int) -> float:
        return self._fps[i]

    def read(self, i: int, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames uint8 [k, H, W, 3] and states float64 [k, A] at ``indices`` of episode ``i``."""
        idx = np.asarray(indices, dtype=np.int64)
        with EpisodeFile(self.root / self.records[i].file) as ep:
            return ep.frames(idx, camera=self.camera), ep.states(idx)
