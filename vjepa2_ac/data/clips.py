"""``ClipDataset``: fixed-length robot clips with the official V-JEPA 2-AC DROID sampling.

For an episode recorded at ``source_fps``: ``step = ceil(source_fps / fps)`` (official ``fstp``),
``span = frames_per_clip * step``; an end frame ``ef`` is drawn uniformly and the clip is the frames
``arange(ef - span, ef, step)``. The official code draws ``ef`` in ``[span, T)``; here ``ef`` is in ``[span, T]``
(the window ending at the last frame is valid too; the official bound drops it for no stated reason). Episodes with
fewer than ``span`` frames are left out. States are indexed with the same frames; actions are the state deltas of
the sources' robot space (``RobotSpace.deltas``; DROID: ``[p1 - p0, euler(R1 · R0ᵀ), g1 - g0]``), float64, then
float32. Nothing is normalised.

Determinism: item ``i`` of epoch ``e`` is episode ``i % num_episodes`` with an end frame drawn from
``numpy.random.default_rng((seed, e, i))``, a pure function of ``(seed, epoch, i)``: any worker count, any
order, a resumed run sees the same clips. Call :meth:`ClipDataset.set_epoch` at each epoch (like
``DistributedSampler``; with ``persistent_workers=True`` the workers keep the epoch they were started with).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vjepa2_ac.model.space import DROID_FRANKA, RobotSpace, robot_space_of


@runtime_checkable
class EpisodeSource(Protocol):
    """What :class:`ClipDataset` needs from a collection of episodes (and an optional ``space`` attribute, the
    :class:`~vjepa2_ac.model.space.RobotSpace` of its states; DROID's Franka space when absent)."""

    def __len__(self) -> int: ...
    def episode_name(self, i: int) -> str: ...
    def episode_length(self, i: int) -> int: ...
    def episode_fps(self, i: int) -> float: ...
    def read(self, i: int, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def open_source(path: str | os.PathLike, **kwargs) -> EpisodeSource:
    """Open a dataset by layout: LeRobot v3 dir (``meta/info.json``) or hub dataset id (``owner/name``), raw DROID (a dir with ``trajectory.h5``, a
    tree of them, or a list file), or a directory of our HDF5 episodes. ``kwargs`` go to the source class."""
    from vjepa2_ac.data.droid import DroidTrajectories
    from vjepa2_ac.data.index import EpisodeDirectory
    from vjepa2_ac.data.lerobot import LeRobotEpisodes, is_lerobot_dataset
    from vjepa2_ac.model.checkpoint import is_hub_id

    if is_hub_id(path):  # owner/name: a LeRobot dataset on the Hugging Face hub
        return LeRobotEpisodes(path, **kwargs)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset path {path} does not exist")
    if path.is_file():
        return DroidTrajectories(path, **kwargs)
    if is_lerobot_dataset(path):
        return LeRobotEpisodes(path, **kwargs)
    if (path / "trajectory.h5").exists():
        return DroidTrajectories(path, **kwargs)
    if (path / "index.json").exists() or any(path.glob("*.h5")) or any(path.glob("*.hdf5")):
        return EpisodeDirectory(path, **kwargs)
    if next(path.rglob("trajectory.h5"), None) is not None:
        return DroidTrajectories(path, **kwargs)
    return EpisodeDirectory(path, **kwargs)


def _name(source: EpisodeSource) -> str:
    return source.episode_name(0) if len(source) else type(source).__name__


def clip_step(source_fps: float, fps: float) -> int:
    """Frame step between clip frames: official ``ceil(source_fps / fps)`` (guarded against float noise)."""
    return max(1, math.ceil(round(source_fps / fps, 6)))


class ClipDataset(Dataset):
    """Clips ``(frames uint8 [T, H, W, 3], states float32 [T, A], actions float32 [T-1, A])``, ``T = frames_per_clip``,
    ``A`` = the sources' robot space's dims (:attr:`space`; all sources must share it).

    Args:
        sources: dataset paths (any layout :func:`open_source` knows) and/or :class:`EpisodeSource` objects.
        frames_per_clip: frames per clip (official 8).
        fps: target clip frame rate (official 4).
        seed: sampling seed.
        clips_per_epoch: dataset length (default: the number of usable episodes, one clip each, as official). Item
            ``i`` comes from episode ``i % num_episodes``; with fewer clips than episodes, each epoch draws a
            different seeded subset of distinct episodes instead (so every episode is used over the epochs).
        image_size: resize frames to ``image_size`` x ``image_size`` (bilinear, antialiased); None keeps them.
        transform: called on ``(frames, states, actions)`` tensors; returns the item.
    """

    def __init__(
        self,
        sources: str | os.PathLike | EpisodeSource | Sequence[str | os.PathLike | EpisodeSource],
        *,
        frames_per_clip: int = 8,
        fps: float = 4.0,
        seed: int = 0,
        clips_per_epoch: int | None = None,
        image_size: int | None = None,
        transform: Callable | None = None,
    ) -> None:
        if frames_per_clip < 2:
            raise ValueError(f"frames_per_clip must be >= 2 (actions need two frames), got {frames_per_clip}")
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if image_size is not None and image_size <= 0:
            raise ValueError(f"image_size must be a positive int or None, got {image_size}")
        if isinstance(sources, (str, os.PathLike)) or isinstance(sources, EpisodeSource):
            sources = [sources]
        self.sources: list[EpisodeSource] = [
            s if isinstance(s, EpisodeSource) else open_source(s) for s in sources]
        spaces = [robot_space_of(s) for s in self.sources]
        for src, space in zip(self.sources, spaces, strict=True):
            if space != spaces[0]:
                raise ValueError(f"data sources of different robot spaces: {_name(self.sources[0])} is "
                                 f"{spaces[0].describe()}, {_name(src)} is {space.describe()}")
        self.space: RobotSpace = spaces[0] if spaces else DROID_FRANKA
        self.frames_per_clip, self.fps, self.seed = frames_per_clip, float(fps), int(seed)
        self.image_size, self.transform = image_size, transform
        self.epoch = 0
        entries, skipped = [], 0
        for s_idx, src in enumerate(self.sources):
            for e_idx in range(len(src)):
                step = clip_step(src.episode_fps(e_idx), self.fps)
                if src.episode_length(e_idx) >= frames_per_clip * step:
                    entries.append((s_idx, e_idx, step, src.episode_length(e_idx)))
                else:
                    skipped += 1
        if not entries:
            raise ValueError(f"no episode is long enough for {frames_per_clip} frames at {fps} fps "
                             f"({skipped} episodes too short)")
        self._entries = np.asarray(entries, dtype=np.int64)  # [E, 4]: source, episode, step, length
        self.num_skipped = skipped
        if clips_per_epoch is not None and clips_per_epoch <= 0:
            raise ValueError(f"clips_per_epoch must be positive or None, got {clips_per_epoch}")
        self.clips_per_epoch = clips_per_epoch or len(entries)
        self._subset: tuple[int, np.ndarray] | None = None  # (epoch, entry permutation) when clips < episodes

    @property
    def num_episodes(self) -> int:
        """Episodes long enough for a clip."""
        return len(self._entries)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.clips_per_epoch

    def clip_indices(self, index: int, epoch: int | None = None) -> tuple[int, int, np.ndarray]:
        """``(source, episode, frame indices [T])`` of item ``index`` in ``epoch`` (default: current epoch)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        epoch = self.epoch if epoch is None else epoch
        src, ep, step, length = (int(v) for v in self._entries[self._entry(index, epoch)])
        span = self.frames_per_clip * step
        rng = np.random.default_rng((self.seed, epoch, index))
        end = int(rng.integers(span, length + 1))
        return src, ep, np.arange(end - span, end, step)

    def _entry(self, index: int, epoch: int) -> int:
        n = len(self._entries)
        if self.clips_per_epoch >= n:
            return index % n
        if self._subset is None or self._subset[0] != epoch:
            self._subset = (epoch, np.random.default_rng((self.seed, epoch, n)).permutation(n))
        return int(self._subset[1][index])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        src, ep, idx = self.clip_indices(index)
        source = self.sources[src]
        frames, states = source.read(ep, idx)
        if frames.shape[0] != len(idx) or states.shape != (len(idx), self.space.dim):
            raise ValueError(f"{source.episode_name(ep)}: read {frames.shape} frames, {states.shape} states "
                             f"for {len(idx)} indices (robot space {self.space.describe()})")
        states64 = torch.from_numpy(np.ascontiguousarray(states, dtype=np.float64))
        actions = self.space.diff(states64[:-1], states64[1:]).float()
        frames_t = torch.from_numpy(np.ascontiguousarray(frames))
        if self.image_size is not None and frames_t.shape[1:3] != (self.image_size, self.image_size):
            frames_t = resize_frames(frames_t, self.image_size)
        item = (frames_t, states64.float(), actions)
        return self.transform(*item) if self.transform is not None else item


def resize_frames(frames: Tensor, size: int) -> Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, size, size, 3] (bilinear, antialiased)."""
    x = frames.permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
