"""LeRobotDataset v3 directories as a clip source, read with pyarrow and PyAV (no ``lerobot`` dependency).

v3 layout (several episodes per file)::

    meta/info.json                                  codebase_version "v3.x", fps, features, data_path, video_path
    meta/episodes/chunk-XXX/file-XXX.parquet        one row per episode: episode_index, length,
                                                    data/chunk_index, data/file_index,
                                                    videos/<key>/{chunk_index,file_index,from_timestamp,to_timestamp}
    data/chunk-XXX/file-XXX.parquet                 one row per frame: episode_index, frame_index, timestamp,
                                                    observation.state, action, ...
    videos/<key>/chunk-XXX/file-XXX.mp4             episodes concatenated; episode e spans
                                                    [from_timestamp, to_timestamp) of the file

Frame k of an episode is the video frame at ``from_timestamp + timestamp_k`` (as LeRobot decodes it).
The state must be the 7-d ``[x, y, z, roll, pitch, yaw, g]`` end-effector state; pass ``state_fn`` to convert
another layout (e.g. pick columns or run forward kinematics).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vjepa2_ac.data.video import decode_frames_at

DEFAULT_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def is_lerobot_dataset(path: str | os.PathLike) -> bool:
    return (Path(path) / "meta" / "info.json").is_file()


class LeRobotEpisodes:
    """Episodes of a local LeRobotDataset v3 directory (clip source for :class:`vjepa2_ac.data.ClipDataset`).

    Args:
        root: dataset directory (``meta/info.json`` inside).
        video_key: camera feature (default: the first feature with dtype ``"video"``).
        state_key: per-frame state column.
        state_fn: maps the state column ``[T, D]`` to ``[T, 7]`` when it is not already the 7-d EE state.
        cache_files: number of data parquet files kept in memory per process.
    """

    def __init__(self, root: str | os.PathLike, *, video_key: str | None = None,
                 state_key: str = "observation.state",
                 state_fn: Callable[[np.ndarray], np.ndarray] | None = None, cache_files: int = 4) -> None:
        import pyarrow.parquet as pq

        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise FileNotFoundError(f"root: {self.root} is not a LeRobot dataset (no meta/info.json)")
        self.info: dict[str, Any] = json.loads(info_path.read_text())
        version = str(self.info.get("codebase_version", ""))
        if not version.startswith("v3"):
            raise ValueError(f"{self.root}: codebase_version {version!r} is not supported, only LeRobotDataset v3 "
                             "(convert older datasets with lerobot's v2.1 -> v3.0 conversion script)")
        self.fps = float(self.info["fps"])
        features = self.info.get("features", {})
        videos = [k for k, f in features.items() if f.get("dtype") == "video"]
        if video_key is None:
            if not videos:
                raise ValueError(f"{self.root}: no video feature in meta/info.json")
            video_key = videos[0]
        elif video_key not in videos:
            raise ValueError(f"video_key {video_key!r} is not a video feature of {self.root} (has {videos})")
        if state_key not in features:
            raise ValueError(f"state_key {state_key!r} is not a feature of {self.root} (has {sorted(features)})")
        shape = tuple(features[state_key].get("shape", ()))
        if state_fn is None and shape != (7,):
            raise ValueError(f"{self.root}: {state_key!r} has shape {shape}, not the 7-d [x,y,z,roll,pitch,yaw,g] "
                             "end-effector state; pass state_fn= to convert it")
        self.video_key, self.state_key, self.state_fn = video_key, state_key, state_fn
        self.video_fps = float(features[video_key].get("info", {}).get("video.fps", self.fps))
        self._data_template = self.info.get("data_path", DEFAULT_DATA_PATH)
        self._video_template = self.info.get("video_path", DEFAULT_VIDEO_PATH)

        files = sorted((self.root / "meta" / "episodes").rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"{self.root}: no meta/episodes/*/*.parquet")
        vk = f"videos/{video_key}"
        columns = ["episode_index", "length", "data/chunk_index", "data/file_index",
                   f"{vk}/chunk_index", f"{vk}/file_index", f"{vk}/from_timestamp"]
        rows: dict[str, list] = {c: [] for c in columns}
        for f in files:
            table = pq.read_table(f, columns=columns)
            for c in columns:
                rows[c] += table.column(c).to_pylist()
        order = np.argsort(rows["episode_index"], kind="stable")
        self.episode_index = np.asarray(rows["episode_index"], dtype=np.int64)[order]
        self._lengths = np.asarray(rows["length"], dtype=np.int64)[order]
        self._data_file = [(int(rows["data/chunk_index"][j]), int(rows["data/file_index"][j])) for j in order]
        self._video_file = [(int(rows[f"{vk}/chunk_index"][j]), int(rows[f"{vk}/file_index"][j])) for j in order]
        self._video_from = np.asarray(rows[f"{vk}/from_timestamp"], dtype=np.float64)[order]
        self._cache: OrderedDict[tuple[int, int], dict[int, tuple[np.ndarray, np.ndarray]]] = OrderedDict()
        self._cache_files = cache_files

    def __len__(self) -> int:
        return len(self.episode_index)

    def episode_name(self, i: int) -> str:
        return f"{self.root} episode {int(self.episode_index[i])}"

    def episode_length(self, i: int) -> int:
        return int(self._lengths[i])

    def episode_fps(self, i: int) -> float:
        return self.fps

    def _data_path(self, chunk: int, file: int) -> Path:
        return self.root / self._data_template.format(chunk_index=chunk, file_index=file)

    def _video_path(self, chunk: int, file: int) -> Path:
        return self.root / self._video_template.format(video_key=self.video_key, chunk_index=chunk, file_index=file)

    def _episode_rows(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(timestamps float64 [T], states float64 [T, D]) of episode ``i`` from its data file (cached)."""
        import pyarrow.parquet as pq

        key = self._data_file[i]
        if key not in self._cache:
            table = pq.read_table(self._data_path(*key),
                                  columns=["episode_index", "frame_index", "timestamp", self.state_key])
            ep = table.column("episode_index").to_numpy()
            frame = table.column("frame_index").to_numpy()
            ts = table.column("timestamp").to_numpy().astype(np.float64)
            state = np.asarray(table.column(self.state_key).to_pylist(), dtype=np.float64)
            per_episode = {}
            for e in np.unique(ep):
                sel = np.flatnonzero(ep == e)
                sel = sel[np.argsort(frame[sel], kind="stable")]
                per_episode[int(e)] = (ts[sel], state[sel])
            self._cache[key] = per_episode
            while len(self._cache) > self._cache_files:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        ep_id = int(self.episode_index[i])
        if ep_id not in self._cache[key]:
            raise KeyError(f"episode {ep_id} not found in {self._data_path(*key)}")
        return self._cache[key][ep_id]

    def read(self, i: int, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames uint8 [k, H, W, 3] and states float64 [k, 7] at ``indices`` of episode ``i``."""
        idx = np.asarray(indices, dtype=np.int64)
        ts, state = self._episode_rows(i)
        if len(ts) != self.episode_length(i):
            raise ValueError(f"{self.episode_name(i)}: {len(ts)} data rows but length {self.episode_length(i)}")
        states = state[idx]
        if self.state_fn is not None:
            states = np.asarray(self.state_fn(states), dtype=np.float64)
        if states.shape != (len(idx), 7):
            raise ValueError(f"{self.episode_name(i)}: states must be [k, 7] after state_fn, got {states.shape}")
        frames = decode_frames_at(self._video_path(*self._video_file[i]), self._video_from[i] + ts[idx],
                                  tolerance_s=0.4 / self.video_fps)
        return frames, states
