"""Raw DROID trajectories as a clip source (the layout the official V-JEPA 2-AC training reads).

One trajectory directory holds ``trajectory.h5`` (``observation/robot_state/cartesian_position`` [T, 6],
``gripper_position`` [T], ``observation/camera_extrinsics/<serial>_left`` [T, 6]), a ``metadata_*.json`` whose
``left_mp4_path`` names the left exterior camera's video, and ``recordings/MP4/<serial>.mp4`` (15 fps).
As in the official loader, h5 step t is taken to be video frame t; the usable length is the shorter of the two.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np

from vjepa2_ac.data.video import decode_frames, video_info

DROID_CAMERA_KEYS = ("left_mp4_path", "right_mp4_path", "ext1_mp4_path", "ext2_mp4_path", "wrist_mp4_path")


def find_droid_trajectories(root: str | os.PathLike) -> list[Path]:
    """Every directory under ``root`` that holds a ``trajectory.h5`` (sorted)."""
    return sorted(p.parent for p in Path(root).rglob("trajectory.h5"))


def read_trajectory_list(path: str | os.PathLike) -> list[Path]:
    """The official dataset list: a text file with one trajectory directory per line (first column)."""
    lines = Path(path).read_text().splitlines()
    return [Path(line.split()[0]) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def droid_metadata(traj_dir: Path) -> dict:
    """The first decodable ``*.json`` of the trajectory directory (sorted names, ``metadata*`` first)."""
    candidates = sorted(traj_dir.glob("*.json"), key=lambda p: (not p.name.startswith("metadata"), p.name))
    for path in candidates:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    raise FileNotFoundError(f"no readable metadata json in DROID trajectory {traj_dir}")


class DroidTrajectories:
    """Raw DROID trajectories (clip source for :class:`vjepa2_ac.data.ClipDataset`).

    Args:
        trajectories: trajectory directories, a root directory to search, or a list file (official format).
        camera_key: metadata key of the video to read (official: ``"left_mp4_path"``).
    Unreadable trajectories are skipped with a warning naming the directory.
    """

    def __init__(self, trajectories: str | os.PathLike | Iterable[str | os.PathLike],
                 camera_key: str = "left_mp4_path") -> None:
        if isinstance(trajectories, (str, os.PathLike)):
            path = Path(trajectories)
            if path.is_file():
                dirs = read_trajectory_list(path)
            elif (path / "trajectory.h5").exists():
                dirs = [path]
            elif path.is_dir():
                dirs = find_droid_trajectories(path)
            else:
                raise FileNotFoundError(f"trajectories: {path} is neither a list file nor a directory")
        else:
            dirs = [Path(p) for p in trajectories]
        if camera_key not in DROID_CAMERA_KEYS:
            raise ValueError(f"camera_key must be one of {DROID_CAMERA_KEYS}, got {camera_key!r}")
        self.camera_key = camera_key
        self.dirs: list[Path] = []
        self.videos: list[Path] = []
        self.extrinsics_keys: list[str] = []
        self._lengths: list[int] = []
        self._fps: list[float] = []
        for d in dirs:
            try:
                video, ext_key, length, fps = self._inspect(d)
            except Exception as err:
                warnings.warn(f"skipping unreadable DROID trajectory {d}: {err}", stacklevel=2)
                continue
            self.dirs.append(d)
            self.videos.append(video)
            self.extrinsics_keys.append(ext_key)
            self._lengths.append(length)
            self._fps.append(fps)

    def _inspect(self, traj_dir: Path) -> tuple[Path, str, int, float]:
        meta = droid_metadata(traj_dir)
        if self.camera_key not in meta:
            raise KeyError(f"metadata has no {self.camera_key!r}")
        mp4_name = str(meta[self.camera_key]).split("recordings/MP4/")[-1]
        video = traj_dir / "recordings" / "MP4" / mp4_name
        num_frames, fps = video_info(video)
        with h5py.File(traj_dir / "trajectory.h5", "r") as h5:
            num_states = h5["observation/robot_state/cartesian_position"].shape[0]
            if h5["observation/robot_state/gripper_position"].shape[0] != num_states:
                raise ValueError("cartesian_position and gripper_position lengths differ")
        return video, f"{Path(mp4_name).stem}_left", min(num_frames, num_states), fps

    def __len__(self) -> int:
        return len(self.dirs)

    def episode_name(self, i: int) -> str:
        return str(self.dirs[i])

    def episode_length(self, i: int) -> int:
        return self._lengths[i]

    def episode_fps(self, i: int) -> float:
        return self._fps[i]

    def read(self, i: int, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames uint8 [k, H, W, 3] and states float64 [k, 7] at ``indices`` of trajectory ``i``."""
        idx = np.asarray(indices, dtype=np.int64)
        with h5py.File(self.dirs[i] / "trajectory.h5", "r") as h5:
            pos = h5["observation/robot_state/cartesian_position"][()]
            grip = h5["observation/robot_state/gripper_position"][()]
        states = np.concatenate([pos, np.reshape(grip, (len(grip), 1))], axis=1).astype(np.float64)[idx]
        return decode_frames(self.videos[i], idx), states

    def extrinsics(self, i: int, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Camera extrinsics [k, 6] (xyz + euler) of the chosen camera at ``indices`` (official ``_left`` key)."""
        with h5py.File(self.dirs[i] / "trajectory.h5", "r") as h5:
            return h5["observation/camera_extrinsics"][self.extrinsics_keys[i]][()][np.asarray(indices)]
