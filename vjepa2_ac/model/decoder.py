"""``LatentDecoder``: a small conv decoder from one frame's patch-token latents back to pixels, for *looking* at what
the world model encodes and predicts (``vjepa2-ac imagine``). It is never on the planning path.

    dec = load_decoder("vjepa2-ac-sim-small")            # <model dir>/decoder/: config.json + decoder.safetensors
    images = dec(wm.encode(frames)[:, 0])                # [B, N, D] normalised latents -> [B, 3, H, W] in [0, 1]

Latents are the world model's *normalised* per-frame tokens (``WorldModel.encode`` / ``rollout`` outputs, after
``normalize_reps``), ``N = h * w`` in (row, col) order. Targets are the encoder's view of a frame: the same centre
square crop and bilinear resize as :mod:`vjepa2_ac.model.preprocess`, without the mean/std (:func:`target_images`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vjepa2_ac.atomic import atomic_directory
from vjepa2_ac.model.checkpoint import CheckpointError, load_state_dict_strict
from vjepa2_ac.model.preprocess import as_uint8_frames

FORMAT_NAME = "vjepa2-ac-latent-decoder"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "decoder.safetensors"
DECODER_DIR = "decoder"  # where a world model's decoder lives: <model dir>/decoder/
DEFAULT_CHANNELS = (192, 128, 64, 32, 16)  # widths from the token grid up, for 4 doublings (8x8 -> 128 px)

__all__ = ["DECODER_DIR", "LatentDecoder", "LatentDecoderConfig", "decoder_dir", "load_decoder", "target_images"]


@dataclass
class LatentDecoderConfig:
    """Architecture of a :class:`LatentDecoder`.

    embed_dim: token width ``D`` of the world model.
    grid: ``(h, w)`` patch tokens per frame (``N = h * w``; the encoder's ``crop_size / patch_size``).
    image_size: output side ``S`` (the encoder's ``crop_size``); ``S / h`` and ``S / w`` must be the same power of 2.
    channels: conv widths, one per resolution from the token grid up to ``S`` (``log2(S / h) + 1`` entries).
    out_channels: 3 (RGB).
    groups: GroupNorm groups (a width that is not divisible uses fewer).
    """

    embed_dim: int = 192
    grid: tuple[int, int] = (8, 8)
    image_size: int = 128
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    out_channels: int = 3
    groups: int = 8

    def __post_init__(self) -> None:
        self.grid = tuple(int(g) for g in self.grid)  # type: ignore[assignment]
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise ValueError(f"grid must be (h, w) >= 1, got {self.grid}")
        if self.embed_dim < 1 or self.out_channels < 1 or self.groups < 1 or min(self.channels, default=0) < 1:
            raise ValueError("embed_dim, out_channels, groups and every channel width must be >= 1")
        h, w = self.grid
        scale = self.image_size // h
        if self.image_size % h or self.image_size % w or self.image_size // w != scale or scale & (scale - 1):
            raise ValueError(f"image_size {self.image_size} must be the grid {self.grid} times a power of 2 "
                             "(a square grid)")
        if len(self.channels) != self.num_upsamples + 1:
            raise ValueError(f"channels needs {self.num_upsamples + 1} widths (grid {self.grid} -> {self.image_size} "
                             f"px is {self.num_upsamples} doublings), got {len(self.channels)}: {self.channels}")

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_upsamples(self) -> int:
        return int(self.image_size // self.grid[0]).bit_length() - 1

    @classmethod
    def for_world_model(cls, world_model: Any, **kwargs: Any) -> LatentDecoderConfig:
        """The config matching a ``WorldModel`` with an encoder (width, grid, crop size); ``channels`` default: the
        widths above cut or padded to the number of doublings."""
        enc = world_model.encoder
        if enc is None:
            raise ValueError("the world model has no encoder: a decoder needs its grid and image size")
        g, size = enc.grid_size, enc.crop_size
        if "channels" not in kwargs:
            ups = int(size // g).bit_length() - 1
            base = DEFAULT_CHANNELS
            kwargs["channels"] = base[:ups + 1] + (base[-1],) * max(0, ups + 1 - len(base))
        return cls(embed_dim=world_model.embed_dim, grid=(g, g), image_size=size, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["grid"], d["channels"] = list(self.grid), list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatentDecoderConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown LatentDecoderConfig field(s) {unknown}; valid: {sorted(known)}")
        return cls(**d)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


class _ConvBlock(nn.Sequential):
    """conv 3x3 -> GroupNorm -> SiLU."""

    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), _norm(cout, groups), nn.SiLU())


class LatentDecoder(nn.Module):
    """Normalised latents ``[B, N, D]`` (or ``[..., N, D]``) -> images ``[B, 3, S, S]`` (``[..., 3, S, S]``) in [0, 1].

    A per-token linear map to ``channels[0]`` on the ``(h, w)`` grid and a conv block, then per doubling: nearest
    2x upsampling and two conv blocks; a final 3x3 conv and a sigmoid.
    """

    def __init__(self, config: LatentDecoderConfig) -> None:
        super().__init__()
        self.config = config
        c, g = config.channels, config.groups
        self.proj = nn.Linear(config.embed_dim, c[0])
        self.stem = _ConvBlock(c[0], c[0], g)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _ConvBlock(c[i], c[i + 1], g),
                          _ConvBlock(c[i + 1], c[i + 1], g))
            for i in range(config.num_upsamples))
        self.head = nn.Conv2d(c[-1], config.out_channels, 3, padding=1)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, z: Tensor) -> Tensor:
        """``z [..., N, D]`` -> ``[..., 3, S, S]`` in [0, 1]."""
        cfg = self.config
        if z.ndim < 3 or z.shape[-2:] != (cfg.num_tokens, cfg.embed_dim):
            raise ValueError(f"latents must be [B, N={cfg.num_tokens}, D={cfg.embed_dim}], got {tuple(z.shape)}")
        lead = z.shape[:-2]
        h, w = cfg.grid
        x = self.proj(z.reshape(-1, cfg.num_tokens, cfg.embed_dim).to(self.head.weight.dtype))  # [B, N, C]
        x = self.stem(x.transpose(1, 2).reshape(-1, x.shape[-1], h, w))  # [B, C, h, w]
        for up in self.ups:
            x = up(x)
        x = torch.sigmoid(self.head(x))  # [B, 3, S, S]
        return x.reshape(*lead, *x.shape[1:])

    @torch.no_grad()
    def decode(self, z: Tensor) -> np.ndarray:
        """``z [..., N, D]`` -> uint8 images ``[..., S, S, 3]`` (numpy, channels last)."""
        x = self(z.to(self.device)).float().cpu()
        return (x.movedim(-3, -1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()

    # ------------------------------------------------------------------------------------------- save / load
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """``config.json`` + ``decoder.safetensors`` into ``directory``, atomically (the whole directory)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            config = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **self.config.to_dict()}
            save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()},
                      str(tmp / WEIGHTS_NAME))
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *, device: str | torch.device | None = None
                        ) -> LatentDecoder:
        """Load a directory written by :meth:`save_pretrained` (``FileNotFoundError`` when it is not one)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not config_path.is_file() or not weights.is_file():
            raise FileNotFoundError(f"{directory} is not a latent decoder directory (needs {CONFIG_NAME} and "
                                    f"{WEIGHTS_NAME})")
        try:
            d = json.loads(config_path.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{config_path} is not valid JSON: {err}") from None
        if d.pop("format", None) != FORMAT_NAME:
            raise ValueError(f"{config_path}: not a {FORMAT_NAME} config")
        d.pop("format_version", None)
        model = cls(LatentDecoderConfig.from_dict(d))
        try:
            state = load_file(str(weights))
        except Exception as err:  # safetensors raises its own types for truncated files
            raise CheckpointError(f"cannot read {weights}: {err}") from err
        load_state_dict_strict(model, state, what=f"latent decoder ({weights})")
        model.eval().requires_grad_(False)
        return model.to(device) if device is not None else model


def target_images(frames: np.ndarray | Tensor, image_size: int) -> Tensor:
    """uint8 frames ``[..., H, W, 3]`` -> float ``[n, 3, S, S]`` in [0, 1]: the encoder's centre square crop and
    bilinear resize (as :func:`~vjepa2_ac.model.preprocess.normalize_frames`, without mean / std); leading dims
    flattened."""
    x = as_uint8_frames(frames).flatten(0, 1)
    n, h, w, _ = x.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, top:top + side, left:left + side].permute(0, 3, 1, 2).float()
    if side != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return (x / 255.0).clamp(0, 1)


def decoder_dir(model: str | os.PathLike) -> Path:
    """``<model dir>/decoder`` of a world model: a local directory or a bundled model name, resolved as
    ``WorldModel.from_pretrained`` does (a hub id is fetched; an offline miss raises ``FileNotFoundError``).

    Raises ``FileNotFoundError`` when the model cannot be found; the returned directory may not exist."""
    from vjepa2_ac.model.world_model import resolve_model_dir

    try:
        root = resolve_model_dir(model)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise FileNotFoundError(str(err)) from err
    return root / DECODER_DIR


def load_decoder(model_dir_or_name: str | os.PathLike, *, device: str | torch.device | None = None
                 ) -> LatentDecoder:
    """The decoder shipped with a world model (``<model dir>/decoder/``), or a decoder directory given directly.

    Raises ``FileNotFoundError`` naming the model and how to train a decoder when there is none."""
    path = Path(model_dir_or_name).expanduser()
    if (path / WEIGHTS_NAME).is_file() and (path / CONFIG_NAME).is_file():
        return LatentDecoder.from_pretrained(path, device=device)  # a decoder directory itself
    directory = decoder_dir(model_dir_or_name)
    if not (directory / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"world model {os.fspath(model_dir_or_name)!r} has no decoder ({directory} missing: decoder/ next to "
            f"config.json); train one with `vjepa2-ac train-decoder --data DIR --model "
            f"{os.fspath(model_dir_or_name)} --out RUN_DIR --install`")
    return LatentDecoder.from_pretrained(directory, device=device)
