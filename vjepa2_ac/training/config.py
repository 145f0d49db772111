"""Training configurations: explicit dataclasses that round-trip through YAML.

``TrainConfig`` is AC post-training (``vjepa2-ac train``); ``PretrainConfig`` is self-supervised encoder pretraining
(``vjepa2-ac pretrain-encoder``). Unknown YAML keys raise (a typo never silently falls back to a default).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from vjepa2_ac.atomic import atomic_write_text

C = TypeVar("C", bound="_YamlConfig")
DTYPES = ("float32", "bfloat16", "float16")


class _YamlConfig:
    """``from_dict`` / ``to_dict`` / ``from_yaml`` / ``to_yaml`` for a flat dataclass."""

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any] | None) -> C:
        d = dict(d or {})
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(names)}")
        for k in ("betas", "ema"):
            if k in d and isinstance(d[k], list):
                d[k] = tuple(d[k])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_yaml(cls: type[C], path: str | os.PathLike) -> C:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a YAML mapping of {cls.__name__} fields, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err

    def to_yaml(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename)."""
        return atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    def diff(self, other: _YamlConfig) -> list[str]:
        """Names of the fields whose values differ."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if a[k] != b.get(k)]


def check_lr_scale(lr_scale: Any, name: str = "lr_scale") -> None:
    """``lr_scale`` must map parameter-name prefixes (str) to learning-rate multipliers (numbers > 0)."""
    if not isinstance(lr_scale, dict):
        raise ValueError(f"{name} must map predictor submodule names to numbers > 0, got {lr_scale!r}")
    for prefix, scale in lr_scale.items():
        if not isinstance(prefix, str) or isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not scale > 0:
            raise ValueError(f"{name}[{prefix!r}] must be a number > 0 keyed by a submodule name, got {scale!r}")


def _check_common(cfg: Any) -> None:
    """Checks shared by both configs (optimisation and bookkeeping fields)."""
    name = type(cfg).__name__
    for attr in ("batch_size", "grad_accum_steps", "total_steps", "frames_per_clip"):
        v = getattr(cfg, attr)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}.{attr} must be a positive int, got {v!r}")
    for attr in ("warmup_steps", "anneal_steps", "log_every", "ckpt_every", "keep_every", "num_workers", "seed"):
        v = getattr(cfg, attr)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name}.{attr} must be an int >= 0, got {v!r}")
    if cfg.warmup_steps + cfg.anneal_steps > cfg.total_steps:
        raise ValueError(f"{name}: warmup_steps ({cfg.warmup_steps}) + anneal_steps ({cfg.anneal_steps}) exceed "
                         f"total_steps ({cfg.total_steps})")
    for attr in ("lr", "start_lr", "final_lr", "weight_decay", "eps"):
        v = getattr(cfg, attr)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name}.{attr} must be a number >= 0, got {v!r}")
    if len(cfg.betas) != 2 or not all(0 <= b < 1 for b in cfg.betas):
        raise ValueError(f"{name}.betas must be two numbers in [0, 1), got {cfg.betas!r}")
    if cfg.fps <= 0:
        raise ValueError(f"{name}.fps must be > 0, got {cfg.fps!r}")
    if cfg.dtype not in DTYPES:
        raise ValueError(f"{name}.dtype must be one of {DTYPES}, got {cfg.dtype!r}")
    if cfg.loss_exp <= 0:
        raise ValueError(f"{name}.loss_exp must be > 0, got {cfg.loss_exp!r}")
    if cfg.clips_per_epoch is not None and (not isinstance(cfg.clips_per_epoch, int) or cfg.clips_per_epoch <= 0):
        raise ValueError(f"{name}.clips_per_epoch must be a positive int or null, got {cfg.clips_per_epoch!r}")


@dataclass
class TrainConfig(_YamlConfig):
    """AC post-training (the official recipe: ``configs/ac_vitg_droid.yaml``).

    ``batch_size`` is the *global* number of clips per optimizer step, over all processes and accumulation
    micro-steps: each process loads ``batch_size / (world_size * grad_accum_steps)`` clips per micro-step, so a
    run gives the same result whatever the number of GPUs.
    """

    # -- model
    encoder: str | None = None  # HF-layout dir or hub id; None: the --init model's encoder or the latent cache's
    predictor: dict[str, Any] = field(default_factory=dict)  # ACPredictorConfig fields; widths follow the encoder
    init: str | None = None  # official .pt (path/URL), own model dir or bundled name; the CLI --init overrides
    save_encoder: str = "auto"  # "auto" (copy unless it is a hub id), "always", "never" (store a reference)
    # -- data
    frames_per_clip: int = 8
    fps: float = 4.0
    clips_per_epoch: int | None = None  # default: one clip per training episode (official)
    val_fraction: float = 0.0  # held-out episodes (evenly spaced in dataset order); 0 = no validation split
    val_clips: int = 64  # clips used for one validation pass
    num_workers: int = 0
    # -- objective (§4.2)
    auto_steps: int = 2
    loss_exp: float = 1.0
    # -- optimisation (§4.3)
    batch_size: int = 8
    grad_accum_steps: int = 1
    total_steps: int = 1000
    warmup_steps: int = 0
    anneal_steps: int = 0
    start_lr: float = 7.5e-5
    lr: float = 4.25e-4
    final_lr: float = 0.0
    weight_decay: float = 0.04
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    # learning-rate multipliers by predictor submodule, e.g. {action_encoder: 50}. Official: none. Actions are
    # end-effector deltas of ~2 cm, so under Adam the action embedding grows ~50x slower than a unit-scale input's;
    # a short run on a small model never learns what the action does unless its encoder trains faster.
    lr_scale: dict[str, float] = field(default_factory=dict)
    grad_clip: float | None = None  # official: none
    dtype: str = "float32"  # autocast dtype (bfloat16 on GPU for the official recipe)
    activation_checkpointing: bool = False
    # -- bookkeeping
    seed: int = 0
    log_every: int = 10
    val_every: int = 0  # 0: validate only at the end
    ckpt_every: int = 100
    keep_every: int = 0  # also keep checkpoints/step_XXXXXXX.pt every N steps (0: only latest.pt)

    def __post_init__(self) -> None:
        _check_common(self)
        if self.frames_per_clip < 2:
            raise ValueError(f"TrainConfig.frames_per_clip must be >= 2, got {self.frames_per_clip}")
        if not isinstance(self.auto_steps, int) or not 1 <= self.auto_steps <= self.frames_per_clip - 1:
            raise ValueError(f"TrainConfig.auto_steps must be in [1, frames_per_clip - 1 = {self.frames_per_clip - 1}]"
                             f", got {self.auto_steps!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"TrainConfig.val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.val_every < 0 or self.val_clips <= 0:
            raise ValueError("TrainConfig.val_every must be >= 0 and val_clips > 0")
        if self.save_encoder not in ("auto", "always", "never"):
            raise ValueError(f"TrainConfig.save_encoder must be auto|always|never, got {self.save_encoder!r}")
        if not isinstance(self.predictor, dict):
            raise ValueError(f"TrainConfig.predictor must be a mapping of ACPredictorConfig fields, got "
                             f"{type(self.predictor).__name__}")
        from vjepa2_ac.model.predictor import ACPredictorConfig

        valid = {f.name for f in fields(ACPredictorConfig)}
        unknown = sorted(set(self.predictor) - valid)
        if unknown:
            raise ValueError(f"TrainConfig.predictor: unknown ACPredictorConfig fields {unknown}; valid: {sorted(valid)}")
        check_lr_scale(self.lr_scale, "TrainConfig.lr_scale")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"TrainConfig.grad_clip must be > 0 or null, got {self.grad_clip!r}")


def default_masks() -> list[dict[str, Any]]:
    """V-JEPA 2 pretraining masks: 8 small blocks (15% of the frame each) and 2 large ones (70%), all time."""
    return [
        {"num_blocks": 8, "spatial_scale": [0.15, 0.15], "aspect_ratio": [0.75, 1.5], "temporal_scale": [1.0, 1.0]},
        {"num_blocks": 2, "spatial_scale": [0.7, 0.7], "aspect_ratio": [0.75, 1.5], "temporal_scale": [1.0, 1.0]},
    ]


@dataclass
class PretrainConfig(_YamlConfig):
    """Self-supervised V-JEPA encoder pretraining on episode video (``configs/encoder_small_cpu.yaml``)."""

    # -- model: transformers.VJEPA2Config fields (encoder + mask-denoising predictor), or start from ``init``
    model: dict[str, Any] = field(default_factory=dict)
    init: str | None = None  # HF-layout VJEPA2Model directory to continue from
    # -- data
    frames_per_clip: int = 1  # 1: single frames (duplicated into one tubelet, as the AC encoder sees them)
    fps: float = 4.0
    clips_per_epoch: int | None = None
    num_workers: int = 0
    # -- objective
    masks: list[dict[str, Any]] = field(default_factory=default_masks)
    ema: tuple[float, float] = (0.99925, 0.99925)  # target-encoder momentum, linear from first to second
    loss_exp: float = 1.0
    # -- optimisation
    batch_size: int = 32
    grad_accum_steps: int = 1
    total_steps: int = 1000
    warmup_steps: int = 0
    anneal_steps: int = 0
    start_lr: float = 2e-4
    lr: float = 5.25e-4
    final_lr: float = 0.0
    weight_decay: float = 0.04
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    dtype: str = "float32"
    activation_checkpointing: bool = False
    # -- bookkeeping
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 100
    keep_every: int = 0

    def __post_init__(self) -> None:
        _check_common(self)
        if len(self.ema) != 2 or not all(0.0 <= m <= 1.0 for m in self.ema):
            raise ValueError(f"PretrainConfig.ema must be two momenta in [0, 1], got {self.ema!r}")
        if not self.masks:
            raise ValueError("PretrainConfig.masks must list at least one mask generator")
        if not isinstance(self.model, dict):
            raise ValueError(f"PretrainConfig.model must be a mapping of VJEPA2Config fields, got "
                             f"{type(self.model).__name__}")
