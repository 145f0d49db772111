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
The state must be the robot space's (``space=``; default DROID's 7-d ``[x, y, z, roll, pitch, yaw, g]`` end-effector
state), in one column or several (``state_key=["observation.cartesian", "observation.gripper"]``, concatenated in
order); pass ``state_fn`` to convert another layout (e.g. pick columns or run forward kinematics). A hub dataset id (``owner/name``) is fetched with
``huggingface_hub`` (its cache and ``HF_HUB_OFFLINE`` apply).
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
from vjepa2_ac.model.space import DROID_FRANKA, RobotSpace

DEFAULT_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def is_lerobot_dataset(path: str | os.PathLike) -> bool:
    return (Path(path) / "meta" / "info.json").is_file()


def resolve_dataset(root: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None,
                    cache_dir: str | os.PathLike | None = None, local_files_only: bool = False) -> Path:
    """A local directory for ``root``: itself, or the snapshot of the hub dataset ``owner/name``
    (:func:`~vjepa2_ac.model.checkpoint.hub_snapshot`, ``repo_type="dataset"``)."""
    from vjepa2_ac.model.checkpoint import hub_snapshot, is_hub_id

    if not is_hub_id(root):
        return Path(root)
    return hub_snapshot(str(root), "the LeRobot dataset", repo_type="dataset", revision=revision, token=token,
                        cache_dir=cache_dir, local_files_only=local_files_only)


class LeRobotEpisodes:
    """Episodes of a local LeRobotDataset v3 directory (clip source for :class:`vjepa2_ac.data.ClipDataset`).

    Args:
        root: dataset directory (``meta/info.json`` inside) or a hub dataset id ``owner/name``.
        video_key: camera feature: ``"video"`` (MP4 files) or ``"image"`` (encoded images in the data parquet, as
            Hugging Face ``datasets`` stores them: ``{"bytes", "path"}``); default: the first video feature, else the
            first image feature.
        state_key: per-frame state column, or several concatenated in order.
        state_fn: maps the state column ``[T, D]`` to ``[T, A]`` when it is not already the robot space's state.
        space: the robot space of the states (:class:`~vjepa2_ac.model.space.RobotSpace`; default DROID's Franka
            end effector, A = 7).
        cache_files: number of data parquet files kept in memory per process.
    """

    def __init__(self, root: str | os.PathLike, *, video_key: str | None = None,
                 state_key: str | Sequence[str] = "observation.state",
                 state_fn: Callable[[np.ndarray], np.ndarray] | None = None, cache_files: int = 4,
                 revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                 local_files_only: bool = False, space: RobotSpace | None = None) -> None:
        import pyarrow.parquet as pq

        self.space = DROID_FRANKA if space is None else RobotSpace.from_dict(space)

        self.root = resolve_dataset(root, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
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
        images = [k for k, f in features.items() if f.get("dtype") == "image"]
        if video_key is None:
            if not videos + images:
                raise ValueError(f"{self.root}: no video or image feature in meta/info.json")
            video_key = (videos + images)[0]
        elif video_key not in videos + images:
            raise ValueError(f"video_key {video_key!r} is not a video or image feature of {self.root} "
                             f"(has {videos + images})")
        self._images = video_key in images  # frames stored in the data parquet
        keys = [state_key] if isinstance(state_key, str) else list(state_key)
        missing = [k for k in keys if k not in features]
        if not keys or missing:
            raise ValueError(f"state_key {missing or state_key!r} is not a feature of {self.root} "
                             f"(has {sorted(features)})")
        dims = sum(int(np.prod(features[k].get("shape") or [1])) for k in keys)
        if state_fn is None and dims != self.space.dim:
            raise ValueError(f"{self.root}: state {keys} has {dims} values per frame, not the {self.space.dim} of "
                             f"robot space {self.space.describe()}; pass state_fn= to convert it (or space=)")
        self.video_key, self.state_keys, self.state_fn = video_key, keys, state_fn
        self.video_fps = float(features[video_key].get("info", {}).get("video.fps", self.fps))
        self._data_template = self.info.get("data_path", DEFAULT_DATA_PATH)
        self._video_template = self.info.get("video_path", DEFAULT_VIDEO_PATH)

        files = sorted((self.root / "meta" / "episodes").rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"{self.root}: no meta/episodes/*/*.parquet")
        vk = f"videos/{video_key}"
        columns = ["episode_index", "length", "data/chunk_index", "data/file_index"]
        if not self._images:
            columns += [f"{vk}/chunk_index", f"{vk}/file_index", f"{vk}/from_timestamp"]
        rows: dict[str, list] = {c: [] for c in columns}
        for f in files:
            table = pq.read_table(f, columns=columns)
            for c in columns:
                rows[c] += table.column(c).to_pylist()
        order = np.argsort(rows["episode_index"], kind="stable")
        self.episode_index = np.asarray(rows["episode_index"], dtype=np.int64)[order]
        self._lengths = np.asarray(rows["length"], dtype=np.int64)[order]
        self._data_file = [(int(rows["data/chunk_index"][j]), int(rows["data/file_index"][j])) for j in order]
        if not self._images:
            self._video_file = [(int(rows[f"{vk}/chunk_index"][j]), int(rows[f"{vk}/file_index"][j]))
                                for j in order]
            self._video_from = np.asarray(rows[f"{vk}/from_timestamp"], dtype=np.float64)[order]
        self._cache: OrderedDict[tuple[int, int], dict[int, tuple]] = OrderedDict()
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

    def _episode_rows(self, i: int) -> tuple:
        """(timestamps float64 [T], states float64 [T, D], encoded images [T] or None) of episode ``i`` from its data
        file (cached)."""
        import pyarrow.parquet as pq

        key = self._data_file[i]
        if key not in self._cache:
            image_column = [self.video_key] if self._images else []
            table = pq.read_table(self._data_path(*key), columns=["episode_index", "frame_index", "timestamp",
                                                                  *self.state_keys, *image_column])
            ep = table.column("episode_index").to_numpy()
            frame = table.column("frame_index").to_numpy()
            ts = table.column("timestamp").to_numpy().astype(np.float64)
            state = np.concatenate([np.asarray(table.column(k).to_pylist(), dtype=np.float64).reshape(len(ts), -1)
                                    for k in self.state_keys], axis=1)
            images = np.asarray(table.column(self.video_key).to_pylist(), dtype=object) if self._images else None
            per_episode = {}
            for e in np.unique(ep):
                sel = np.flatnonzero(ep == e)
                sel = sel[np.argsort(frame[sel], kind="stable")]
                per_episode[int(e)] = (ts[sel], state[sel], None if images is None else images[sel])
            self._cache[key] = per_episode
            while len(self._cache) > self._cache_files:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        ep_id = int(self.episode_index[i])
        if ep_id not in self._cache[key]:
            raise KeyError(f"episode {ep_id} not found in {self._data_path(*key)}")
        return self._cache[key][ep_id]

    def read(self, i: int, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames uint8 [k, H, W, 3] and states float64 [k, A] at ``indices`` of episode ``i``."""
        idx = np.asarray(indices, dtype=np.int64)
        ts, state, images = self._episode_rows(i)
        if len(ts) != self.episode_length(i):
            raise ValueError(f"{self.episode_name(i)}: {len(ts)} data rows but length {self.episode_length(i)}")
        states = state[idx]
        if self.state_fn is not None:
            states = np.asarray(self.state_fn(states), dtype=np.float64)
        if states.shape != (len(idx), self.space.dim):
            raise ValueError(f"{self.episode_name(i)}: states must be [k, {self.space.dim}] after state_fn "
                             f"(robot space {self.space.describe()}), got {states.shape}")
        if images is not None:
            return _decode_images(images[idx], f"{self.episode_name(i)} {self.video_key}"), states
        frames = decode_frames_at(self._video_path(*self._video_file[i]), self._video_from[i] + ts[idx],
                                  tolerance_s=0.4 / self.video_fps)
        return frames, states


def _decode_images(cells: np.ndarray, what: str) -> np.ndarray:
    """Encoded images (``{"bytes": ..., "path": ...}`` cells or raw bytes) -> uint8 ``[k, H, W, 3]``."""
    import io

    from PIL import Image

    frames = []
    for cell in cells:
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if not data:
            raise ValueError(f"{what}: an image cell holds no bytes (images stored by path are not supported)")
        with Image.open(io.BytesIO(data)) as image:
            frames.append(np.asarray(image.convert("RGB")))
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)
