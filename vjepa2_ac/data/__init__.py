"""Robot episode data: HDF5 episode files, dataset directories, DROID / LeRobot readers, clips, collection.

::

    from vjepa2_ac.data import EpisodeWriter, load_episode, ClipDataset
    ds = ClipDataset(["data/pickplace", "/data/droid_raw", "/data/lerobot_v3_ds"], frames_per_clip=8, fps=4)
    frames, states, actions = ds[0]   # uint8 [8, H, W, 3], float32 [8, 7], float32 [7, 7]

Names are imported on first use, so collection workers (which only write HDF5) do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "ClipDataset": "clips", "EpisodeSource": "clips", "clip_step": "clips", "open_source": "clips",
    "DroidTrajectories": "droid", "LeRobotEpisodes": "lerobot",
    "Episode": "episode", "EpisodeFile": "episode", "EpisodeFormatError": "episode", "EpisodeWriter": "episode",
    "load_episode": "episode", "write_episode": "episode",
    "EpisodeDirectory": "index", "EpisodeRecord": "index", "load_index": "index",
    "CollectConfig": "collect", "collect": "collect",
}
__all__ = [
    "ClipDataset", "CollectConfig", "DroidTrajectories", "Episode", "EpisodeDirectory", "EpisodeFile",
    "EpisodeFormatError", "EpisodeRecord", "EpisodeSource", "EpisodeWriter", "LeRobotEpisodes", "clip_step",
    "collect", "load_episode", "load_index", "open_source", "write_episode",
]

if TYPE_CHECKING:  # pragma: no cover
    from vjepa2_ac.data.clips import ClipDataset, EpisodeSource, clip_step, open_source
    from vjepa2_ac.data.collect import CollectConfig, collect
    from vjepa2_ac.data.droid import DroidTrajectories
    from vjepa2_ac.data.episode import (
        Episode,
        EpisodeFile,
        EpisodeFormatError,
        EpisodeWriter,
        load_episode,
        write_episode,
    )
    from vjepa2_ac.data.index import EpisodeDirectory, EpisodeRecord, load_index
    from vjepa2_ac.data.lerobot import LeRobotEpisodes


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"vjepa2_ac.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'vjepa2_ac.data' has no attribute {name!r}")
