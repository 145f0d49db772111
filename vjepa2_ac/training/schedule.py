"""Learning-rate schedule of the official recipe: linear warm-up, constant, linear anneal ("WSD").

Official ``WSDSchedule`` (``src/utils/schedulers.py``) increments its counter *before* computing the rate, so the
``k``-th optimizer step (0-based) uses the rate of counter ``k + 1``; :meth:`WSDSchedule.__call__` takes ``k``.
Weight decay is constant (official ``CosineWDSchedule`` 0.04 -> 0.04) and set once in the parameter groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vjepa2_ac.training.config import check_lr_scale


@dataclass(frozen=True)
class WSDSchedule:
    """Warm-up ``start_lr -> lr`` over ``warmup_steps``, constant ``lr``, then ``lr -> final_lr`` over the last
    ``anneal_steps`` of ``total_steps``."""

    lr: float
    total_steps: int
    warmup_steps: int = 0
    anneal_steps: int = 0
    start_lr: float = 0.0
    final_lr: float = 0.0

    def __call__(self, step: int) -> float:
        """Rate for optimizer step ``step`` (0-based)."""
        s = step + 1
        if s < self.warmup_steps:
            return self.start_lr + s / max(1, self.warmup_steps) * (self.lr - self.start_lr)
        anneal_start = self.total_steps - self.anneal_steps
        if s < anneal_start:
            return self.lr
        return self.lr + (s - anneal_start) / max(1, self.anneal_steps) * (self.final_lr - self.lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def param_groups(module: nn.Module, weight_decay: float, lr_scale: dict[str, float] | None = None) -> list[dict]:
    """Official groups: weight decay on non-bias parameters with more than one dim; none on biases and 1-D
    (LayerNorm) parameters. Frozen parameters are left out.

    ``lr_scale`` maps a parameter-name prefix (a submodule, e.g. ``"action_encoder"``) to a learning-rate multiplier:
    those parameters get groups of their own with ``"lr_scale"`` set (read by :func:`set_lr`). The first matching
    prefix wins. A prefix that matches no trainable parameter raises (a typo never silently trains at 1x).
    """
    lr_scale = dict(lr_scale or {})
    check_lr_scale(lr_scale)
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    used = set()
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        prefix = next((k for k in lr_scale if name == k or name.startswith(k + ".")), None)
        used.add(prefix)
        decay = "bias" not in name and p.ndim != 1
        groups.setdefault((lr_scale.get(prefix, 1.0), decay), []).append(p)
    unused = sorted(set(lr_scale) - used)
    if unused:
        names = sorted({n.split(".")[0] for n, _ in module.named_parameters()})
        raise ValueError(f"lr_scale prefixes {unused} match no trainable parameter; top-level modules: {names}")
    out = [{"params": groups.pop((1.0, True), []), "weight_decay": weight_decay},
           {"params": groups.pop((1.0, False), []), "weight_decay": 0.0}]
    for (scale, decay), params in groups.items():
        out.append({"params": params, "weight_decay": weight_decay if decay else 0.0, "lr_scale": float(scale)})
    return out


def build_optimization(module: nn.Module, config, device_type: str
                       ) -> tuple[torch.optim.AdamW, WSDSchedule, torch.amp.GradScaler]:
    """AdamW over :func:`param_groups`, the warm-up/constant/anneal schedule and the fp16 grad scaler, all from a
    training config (``TrainConfig`` or ``PretrainConfig``: lr, betas, eps, weight_decay, steps, dtype, and
    ``TrainConfig.lr_scale``)."""
    groups = param_groups(module, config.weight_decay, getattr(config, "lr_scale", None))
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps)
    schedule = WSDSchedule(lr=config.lr, total_steps=config.total_steps, warmup_steps=config.warmup_steps,
                           anneal_steps=config.anneal_steps, start_lr=config.start_lr, final_lr=config.final_lr)
    scaler = torch.amp.GradScaler(device_type, enabled=config.dtype == "float16")
    return optimizer, schedule, scaler
