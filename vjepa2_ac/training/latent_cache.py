"""Latent cache: run the frozen encoder once over every frame of a dataset, then train from stored latents.

Layout of a cache directory::

    latent_cache.json            manifest: encoder (reference + VJEPA2Config), dtype, episodes in dataset order
    episodes/000000.safetensors  "latents" [T, N, D] (normalised: encoder + non-affine layer_norm), "states" [T, A]

Every file is written to a temp file and renamed; the manifest is written last, so a cache without it is
incomplete (re-running ``encode-dataset`` skips the episodes already encoded). :class:`LatentCache` is an
:class:`~vjepa2_ac.data.EpisodeSource` whose ``read`` returns latents in place of frames, so
``ClipDataset([LatentCache(dir)])`` samples exactly the clips ``ClipDataset([data_dir])`` samples, with
``[T, N, D]`` float32 latents instead of ``[T, H, W, 3]`` frames.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vjepa2_ac.atomic import atomic_path, atomic_write_bytes
from vjepa2_ac.model.space import DROID_FRANKA, RobotSpace, robot_space_of

if TYPE_CHECKING:
    from vjepa2_ac.model.encoder import Encoder
    from vjepa2_ac.training.distributed import DistInfo

MANIFEST = "latent_cache.json"
FORMAT_NAME = "vjepa2-ac-latent-cache"
FORMAT_VERSION = 1
STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def is_latent_cache(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def _episode_file(i: int) -> str:
    return f"episodes/{i:06d}.safetensors"


def encode_dataset(
    data: Sequence[str | os.PathLike],
    encoder: Encoder,
    out: str | os.PathLike,
    *,
    dtype: str = "float32",
    frames_per_batch: int = 64,
    progress: bool = True,
    dist_info: DistInfo | None = None,
) -> Path:
    """Encode every frame of every episode of ``data`` (dataset paths, in order) into the cache ``out``.

    Args:
        encoder: the frozen encoder (its ``name_or_path`` is recorded so a model trained from the cache can point
            to it).
        dtype: storage dtype of the latents: ``float32``, ``float16`` or ``bfloat16`` (read back as float32).
        frames_per_batch: frames read and encoded at once.
        dist_info: under torchrun, process ``r`` encodes episodes ``r, r + W, ...``; rank 0 writes the manifest.
    Returns the cache directory. Episodes already in ``out`` (same source name and length) are skipped.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file
    from tqdm import tqdm

    from vjepa2_ac.data.clips import open_source
    from vjepa2_ac.model.world_model import normalize_reps
    from vjepa2_ac.training.distributed import DistInfo, barrier

    if dtype not in STORE_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(STORE_DTYPES)}, got {dtype!r}")
    if frames_per_batch <= 0:
        raise ValueError(f"frames_per_batch must be positive, got {frames_per_batch}")
    info = dist_info or DistInfo()
    out = Path(out)
    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not paths:
        raise ValueError("no dataset given to encode")
    if any(is_latent_cache(p) for p in paths):
        raise ValueError("encode_dataset needs episode datasets, not latent caches")
    sources = [open_source(p) for p in paths]
    spaces = {robot_space_of(s) for s in sources}
    if len(spaces) > 1:
        raise ValueError(f"the datasets have different robot spaces ({sorted(sp.describe() for sp in spaces)}); "
                         "encode them into separate caches")
    space = spaces.pop()
    episodes = [(s, e) for s in sources for e in range(len(s))]
    (out / "episodes").mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    mine = range(info.rank, len(episodes), info.world_size)
    bar = tqdm(total=len(mine), desc="encode", unit="ep", disable=not (progress and info.is_main))
    for i, (src, e) in enumerate(episodes):
        name, length, fps = src.episode_name(e), int(src.episode_length(e)), float(src.episode_fps(e))
        records.append({"file": _episode_file(i), "name": name, "num_steps": length, "fps": fps})
        if i % info.world_size != info.rank:
            continue
        path = out / _episode_file(i)
        if path.is_file():
            try:
                with safe_open(str(path), framework="pt") as f:
                    meta = f.metadata() or {}
                if meta.get("name") == name and int(meta.get("num_steps", -1)) == length:
                    bar.update(1)
                    continue
            except Exception:  # unreadable leftover: encode again
                pass
        latents, states = [], []
        for start in range(0, length, frames_per_batch):
            idx = np.arange(start, min(length, start + frames_per_batch))
            frames, s = src.read(e, idx)
            z = normalize_reps(encoder(frames[None]).float())[0]  # [k, N, D]
            latents.append(z.to(STORE_DTYPES[dtype]).cpu())
            states.append(torch.from_numpy(np.asarray(s, dtype=np.float64)))
        tensors = {"latents": torch.cat(latents).contiguous(), "states": torch.cat(states).contiguous()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"name": name, "num_steps": str(length), "fps": repr(fps)})
        bar.update(1)
    bar.close()
    barrier(info)
    if info.is_main:
        manifest = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "encoder": {"name_or_path": getattr(encoder, "name_or_path", None),
                        "config": encoder.config.to_dict()},
            "normalized": True, "dtype": dtype, "tokens_per_frame": encoder.tokens_per_frame,
            "embed_dim": encoder.embed_dim, "sources": [str(p) for p in paths], "episodes": records,
            **({} if space == DROID_FRANKA else {"robot_space": space.to_dict()}),
        }
        atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    barrier(info)
    return out


class LatentCache:
    """A cache directory as an :class:`~vjepa2_ac.data.EpisodeSource` (latents in place of frames)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{self.root} is not a complete latent cache (no {MANIFEST}); run "
                                    "`vjepa2-ac encode-dataset` (again) to finish it")
        self.manifest = json.loads(path.read_text())
        if self.manifest.get("format") != FORMAT_NAME:
            raise ValueError(f"{path}: format {self.manifest.get('format')!r}, expected {FORMAT_NAME!r}")
        self.records = self.manifest["episodes"]
        #: the robot space of the cached states (DROID's Franka space unless the manifest names another)
        self.space: RobotSpace = RobotSpace.from_dict(self.manifest.get("robot_space") or DROID_FRANKA)
        missing = [r["file"] for r in self.records if not (self.root / r["file"]).is_file()]
        if missing:
            raise FileNotFoundError(f"latent cache {self.root} lacks {len(missing)} episode files, e.g. {missing[0]}")

    @property
    def tokens_per_frame(self) -> int:
        return int(self.manifest["tokens_per_frame"])

    @property
    def embed_dim(self) -> int:
        return int(self.manifest["embed_dim"])

    @property
    def encoder_name_or_path(self) -> str | None:
        return self.manifest["encoder"].get("name_or_path")

    def encoder_config(self):
        from transformers import VJEPA2Config

        return VJEPA2Config.from_dict(self.manifest["encoder"]["config"])

    def __len__(self) -> int:
        return len(self.records)

    def episode_name(self, i: int) -> str:
        return self.records[i]["name"]

    def episode_length(self, i: int) -> int:
        return int(self.records[i]["num_steps"])

    def episode_fps(self, i: int) -> float:
        return float(self.records[i]["fps"])

    def read(self, i: int, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latents float32 ``[k, N, D]`` and states float64 ``[k, A]`` at ``indices`` (increasing) of episode
        ``i``; reads only the span between the first and last index."""
        from safetensors import safe_open

        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0:
            raise ValueError(f"indices must be a non-empty 1-D array, got shape {idx.shape}")
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        steps = np.diff(idx)
        with safe_open(str(self.root / self.records[i]["file"]), framework="pt") as f:
            if idx.size > 1 and (steps > 0).all() and (steps == steps[0]).all():
                z = f.get_slice("latents")[lo:hi:int(steps[0])]
            else:
                z = f.get_tensor("latents")[torch.from_numpy(idx)]
            states = f.get_tensor("states")[torch.from_numpy(idx)]
        return z.float().numpy(), states.numpy()
