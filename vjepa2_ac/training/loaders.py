"""Episode sources, the held-out split and the resumable distributed sampler shared by the training loops."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from vjepa2_ac.data.clips import EpisodeSource, open_source


def open_sources(paths: Sequence[str | os.PathLike]) -> list[EpisodeSource]:
    """One source per path: a latent cache (``encode-dataset`` output) or any episode layout ``open_source``
    knows (our HDF5 episodes, raw DROID, LeRobot v3)."""
    from vjepa2_ac.training.latent_cache import LatentCache, is_latent_cache

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ValueError("no dataset given (--data DIR [DIR ...])")
    return [LatentCache(p) if is_latent_cache(p) else open_source(p) for p in paths]


class SubsetSource:
    """The episodes ``indices`` of ``source``, as an :class:`EpisodeSource`."""

    def __init__(self, source: EpisodeSource, indices: Sequence[int]) -> None:
        self.source = source
        self.indices = [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def episode_name(self, i: int) -> str:
        return self.source.episode_name(self.indices[i])

    def episode_length(self, i: int) -> int:
        return self.source.episode_length(self.indices[i])

    def episode_fps(self, i: int) -> float:
        return self.source.episode_fps(self.indices[i])

    def read(self, i: int, indices):
        return self.source.read(self.indices[i], indices)


def split_episodes(sources: Sequence[EpisodeSource], val_fraction: float
                   ) -> tuple[list[EpisodeSource], list[EpisodeSource]]:
    """Hold out ``round(val_fraction * E)`` (at least 1) episodes, evenly spaced over the concatenated episode
    list, so that the split depends only on the dataset order (a latent cache of the same data splits alike).
    Returns ``(train_sources, val_sources)``; ``val_sources`` is empty when ``val_fraction == 0``."""
    if val_fraction <= 0:
        return list(sources), []
    sizes = [len(s) for s in sources]
    total = sum(sizes)
    if total < 2:
        raise ValueError(f"val_fraction={val_fraction} needs at least 2 episodes, the dataset has {total}")
    n_val = min(total - 1, max(1, round(val_fraction * total)))
    val_global = set(np.linspace(0, total - 1, n_val + 2)[1:-1].round().astype(int).tolist()) if n_val < total - 1 \
        else set(range(1, total))
    train, val, offset = [], [], 0
    for src, n in zip(sources, sizes):
        ids = range(offset, offset + n)
        tr = [i - offset for i in ids if i not in val_global]
        va = [i - offset for i in ids if i in val_global]
        if tr:
            train.append(SubsetSource(src, tr))
        if va:
            val.append(SubsetSource(src, va))
        offset += n
    return train, val


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled, ``drop_last``) that can start mid-epoch: ``set_epoch(epoch, skip)``
    drops this process's first ``skip`` indices. The permutation depends on ``(seed, epoch)`` only, so global
    batch ``k`` holds the same clips for any number of processes."""

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.skip:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator for the DataLoader so that creating a loader never consumes the global torch RNG."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)
