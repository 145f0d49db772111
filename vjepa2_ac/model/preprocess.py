"""Camera frames -> V-JEPA 2 encoder input, in plain torch (no torchvision).

The official V-JEPA 2-AC robot pipeline (``app/vjepa_droid/transforms.py`` with scale = ratio = 1): a centred
square crop of side ``min(H, W)`` (floor offsets), a bilinear resize to ``crop_size`` (``align_corners=False``,
no antialias; identity when the crop already has that size), ``/ 255`` and the ImageNet mean/std.
This is *not* the HF ``VJEPA2VideoProcessor`` (which resizes the short side to 256/224 of the crop and cuts
12.5% away).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "as_uint8_frames", "normalize_frames", "preprocess"]


def as_uint8_frames(frames: np.ndarray | Tensor, *, name: str = "frames") -> Tensor:
    """Validate camera frames and return them as a uint8 tensor ``[B, T, H, W, 3]`` (a view where possible).

    Accepts uint8 ``[B, T, H, W, 3]``, ``[T, H, W, 3]`` or ``[H, W, 3]`` (numpy or torch).
    """
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, Tensor):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise TypeError(
            f"{name} must be uint8 [..., H, W, 3] camera frames (channels last), got dtype {frames.dtype}; "
            "float input must be already-normalised [B, T, 3, S, S]"
        )
    if frames.ndim not in (3, 4, 5):
        raise ValueError(
            f"{name} must be uint8 [B, T, H, W, 3], [T, H, W, 3] or [H, W, 3], got shape {tuple(frames.shape)}"
        )
    if frames.shape[-1] != 3:
        raise ValueError(
            f"{name} must have 3 colour channels last ([..., H, W, 3]), got shape {tuple(frames.shape)}"
        )
    while frames.ndim < 5:
        frames = frames.unsqueeze(0)
    if frames.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(frames.shape)} (as [B, T, H, W, 3])")
    return frames


def normalize_frames(frames: Tensor, crop_size: int) -> Tensor:
    """uint8 ``[n, H, W, 3]`` -> float32 ``[n, 3, crop_size, crop_size]`` (crop, resize, /255, mean/std).

    Runs on ``frames.device``; no validation (see :func:`as_uint8_frames`).
    """
    n, h, w, _ = frames.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = frames[:, top : top + side, left : left + side].permute(0, 3, 1, 2).float()  # [n, 3, side, side]
    if side != crop_size:
        x = F.interpolate(x, size=(crop_size, crop_size), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


def preprocess(
    frames: np.ndarray | Tensor, crop_size: int = 256, *, device: torch.device | str | None = None
) -> Tensor:
    """Camera frames -> normalised encoder input.

    Args:
        frames: uint8 ``[B, T, H, W, 3]``, ``[T, H, W, 3]`` or ``[H, W, 3]`` (numpy or torch), RGB.
        crop_size: output side ``S`` (the encoder's ``config.crop_size``).
        device: where to compute (default: where ``frames`` are).

    Returns:
        float32 ``[B, T, 3, S, S]``.
    """
    if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size <= 0:
        raise ValueError(f"crop_size must be a positive int, got {crop_size!r}")
    x = as_uint8_frames(frames)
    if device is not None:
        x = x.to(device)
    b, t = x.shape[:2]
    return normalize_frames(x.flatten(0, 1), crop_size).unflatten(0, (b, t))
