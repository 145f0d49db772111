"""Self-supervised V-JEPA encoder pretraining on episode video (small encoders on our own sim data).

The model is a ``transformers.VJEPA2Model`` (encoder + mask-denoising ``VJEPA2Predictor``), so the result loads
like any V-JEPA 2 encoder (``Encoder.from_pretrained(run_dir / "model")``). One step, per mask generator ``i``:

* 3D multi-block mask (official ``multiseq_multiblock3d``): ``num_blocks`` rectangles in space, each spanning
  ``temporal_scale`` of the time slots (all of them by default); their union is the target, the rest the context;
  context / target lists are cut to the batch minimum so that they stack;
* context encoder on the **visible tokens only**: the masked tokens are dropped after the patch embedding, before
  the first block, and every block gets the kept tokens' positions (``position_mask``) so RoPE still rotates each
  token by its own (t, h, w). HF's ``context_mask`` argument is never used: it gathers after encoding every token,
  so the context would have attended to the targets;
* predictor (mask tokens ``i``) on ``[context, mask tokens at the target positions]``;
* loss ``mean(|pred - layer_norm(target_encoder(x))[targets]|^p) / p``, averaged over the mask generators;
  the target encoder is an EMA of the context encoder (momentum ``ema[0] -> ema[1]`` linearly).

The EMA target encoder is what gets saved as the encoder (as the official evaluations use ``target_encoder``).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from vjepa2_ac.atomic import atomic_directory
from vjepa2_ac.model.preprocess import normalize_frames
from vjepa2_ac.training.checkpointing import (
    MetricsLogger,
    resolve_run,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from vjepa2_ac.training.config import PretrainConfig
from vjepa2_ac.training.distributed import all_reduce_mean, barrier, setup_distributed, wrap_ddp
from vjepa2_ac.training.loaders import ResumableDistributedSampler, epoch_generator, open_sources
from vjepa2_ac.training.schedule import build_optimization, set_lr

CHECKPOINT_NAME = "latest.pt"
AUTOCAST_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


# ---------------------------------------------------------------------------------------------------- masks
@dataclass(frozen=True)
class MaskSpec:
    """One mask generator: ``num_blocks`` blocks of ``spatial_scale`` of the frame area (drawn in the range once
    per batch, as official), aspect ratio h/w in ``aspect_ratio``, spanning ``temporal_scale`` of the time slots."""

    num_blocks: int = 8
    spatial_scale: tuple[float, float] = (0.15, 0.15)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    temporal_scale: tuple[float, float] = (1.0, 1.0)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaskSpec:
        unknown = set(d) - {"num_blocks", "spatial_scale", "aspect_ratio", "temporal_scale"}
        if unknown:
            raise ValueError(f"unknown mask keys {sorted(unknown)}")
        pairs = {k: tuple(v) if isinstance(v, (list, tuple)) else (float(v), float(v))
                 for k, v in d.items() if k != "num_blocks"}
        spec = cls(**({"num_blocks": int(d["num_blocks"])} if "num_blocks" in d else {}), **pairs)
        if spec.num_blocks < 1:
            raise ValueError(f"mask num_blocks must be >= 1, got {spec.num_blocks}")
        for name in ("spatial_scale", "temporal_scale"):
            lo, hi = getattr(spec, name)
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"mask {name} must be a range within (0, 1], got {(lo, hi)}")
        if not 0 < spec.aspect_ratio[0] <= spec.aspect_ratio[1]:
            raise ValueError(f"mask aspect_ratio must be a positive range, got {spec.aspect_ratio}")
        return spec


def sample_multiblock(spec: MaskSpec, grid: tuple[int, int, int], batch_size: int, generator: torch.Generator
                      ) -> Tensor:
    """Masked tokens ``[B, T*H*W]`` (bool, True = masked = target) for a token grid ``(T, H, W)``, in the
    encoder's ``t*H*W + h*W + w`` order: the union of ``num_blocks`` blocks per sample.

    The block size is drawn once for the batch, block positions per sample (official). Samples whose blocks would
    cover every token are redrawn."""
    T, H, W = grid
    rand = torch.rand(3, generator=generator).tolist()
    t = max(1, int(T * (spec.temporal_scale[0] + rand[0] * (spec.temporal_scale[1] - spec.temporal_scale[0]))))
    keep = int(H * W * (spec.spatial_scale[0] + rand[1] * (spec.spatial_scale[1] - spec.spatial_scale[0])))
    ar = spec.aspect_ratio[0] + rand[2] * (spec.aspect_ratio[1] - spec.aspect_ratio[0])
    h = max(1, min(H, round(math.sqrt(keep * ar))))
    w = max(1, min(W, round(math.sqrt(keep / ar))))
    masked = torch.empty(batch_size, T * H * W, dtype=torch.bool)
    todo = torch.arange(batch_size)
    while len(todo):
        n, nb = len(todo), spec.num_blocks
        top = torch.randint(0, H - h + 1, (n, nb, 1), generator=generator)
        left = torch.randint(0, W - w + 1, (n, nb, 1), generator=generator)
        start = torch.randint(0, T - t + 1, (n, nb, 1), generator=generator)
        in_t = (torch.arange(T) >= start) & (torch.arange(T) < start + t)  # [n, nb, T]
        in_h = (torch.arange(H) >= top) & (torch.arange(H) < top + h)
        in_w = (torch.arange(W) >= left) & (torch.arange(W) < left + w)
        blocks = in_t[..., :, None, None] & in_h[..., None, :, None] & in_w[..., None, None, :]
        masked[todo] = blocks.any(dim=1).flatten(1)
        todo = todo[masked[todo].all(dim=1)]
    return masked


def mask_indices(masked: Tensor) -> tuple[Tensor, Tensor]:
    """Bool ``[B, N]`` (True = masked) -> context and target indices ``[B, K]``, ``[B, M]`` (increasing), each cut
    to the batch minimum so that they stack (official collator)."""
    k_ctx = int((~masked).sum(1).min())
    k_tgt = int(masked.sum(1).min())
    ctx = torch.argsort(masked.to(torch.uint8), dim=1, stable=True)[:, :k_ctx]
    tgt = torch.argsort((~masked).to(torch.uint8), dim=1, stable=True)[:, :k_tgt]
    return ctx, tgt


def multiblock_masks(spec: MaskSpec, grid: tuple[int, int, int], batch_size: int, generator: torch.Generator
                     ) -> tuple[Tensor, Tensor]:
    """Context and target token indices ``[B, K]``, ``[B, M]`` of one 3D multi-block mask generator."""
    return mask_indices(sample_multiblock(spec, grid, batch_size, generator))


# ---------------------------------------------------------------------------------------------------- forwards
def context_encoder_forward(encoder: nn.Module, pixel_values: Tensor, keep: Tensor | None = None) -> Tensor:
    """A ``VJEPA2Encoder`` run on the kept tokens only.

    Args:
        encoder: ``transformers`` ``VJEPA2Encoder`` (``VJEPA2Model.encoder``).
        pixel_values: normalised ``[B, T, 3, S, S]``.
        keep: token indices ``[B, K]`` (``None``: every token).
    Returns:
        ``[B, K, D]`` after the final layer norm. Masked tokens never enter a block; each kept token keeps its
        RoPE position. With ``keep = arange(N)`` the result equals ``encoder(pixel_values)``.
    """
    x = encoder.embeddings(pixel_values)  # [B, N, D]
    if keep is not None:
        x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    for layer in encoder.layer:
        x = layer(x, keep)[0]
    return encoder.layernorm(x)


def predictor_forward(predictor: nn.Module, context: Tensor, ctx_idx: Tensor, tgt_idx: Tensor,
                      mask_index: int = 0) -> Tensor:
    """``VJEPA2Predictor`` on already-selected context tokens ``[B, K, D]`` -> predictions ``[B, M, D]`` at
    ``tgt_idx``, with mask token ``mask_index`` (one per mask generator, as official; HF's ``forward`` always
    uses mask token 1 and re-gathers a full-length input)."""
    hidden, positions = predictor.embeddings(context, [ctx_idx], [tgt_idx], mask_index=mask_index)
    order = torch.argsort(positions, dim=1)
    hidden, positions = predictor.sort_tokens(hidden, positions, order)
    for layer in predictor.layer:
        hidden = layer(hidden, positions)[0]
    hidden = predictor.unsort_tokens(predictor.layernorm(hidden), order)[:, context.shape[1]:]
    return predictor.proj(hidden)


class JEPAObjective(nn.Module):
    """Context encoder + predictor + loss (one module so that DDP sees one forward per backward)."""

    def __init__(self, model: nn.Module, loss_exp: float = 1.0) -> None:
        super().__init__()
        self.model = model  # transformers.VJEPA2Model
        self.loss_exp = loss_exp

    def forward(self, pixel_values: Tensor, target: Tensor, masks: Sequence[tuple[Tensor, Tensor]]
                ) -> dict[str, Tensor]:
        """``pixel_values [B, T, 3, S, S]``, ``target`` = layer-normed target-encoder tokens ``[B, N, D]``,
        ``masks`` = ``[(ctx [B, K], tgt [B, M]), ...]`` -> ``{"loss", "loss_mask0", ...}``."""
        out: dict[str, Tensor] = {}
        for i, (ctx, tgt) in enumerate(masks):
            z = context_encoder_forward(self.model.encoder, pixel_values, ctx)
            pred = predictor_forward(self.model.predictor, z, ctx, tgt, mask_index=i)
            h = torch.gather(target, 1, tgt.unsqueeze(-1).expand(-1, -1, target.shape[-1]))
            out[f"loss_mask{i}"] = (pred - h).abs().pow(self.loss_exp).mean() / self.loss_exp
        out["loss"] = torch.stack(list(out.values())).mean()
        return out


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target = m * target + (1 - m) * online`` for every parameter."""
    t_params = list(target.parameters())
    o_params = [p.detach() for p in online.parameters()]
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - momentum)


def token_grid(model_config, frames: int) -> tuple[int, int, int]:
    """``(T', H', W')`` token grid of a clip of ``frames`` frames (one frame is duplicated into a tubelet)."""
    g = model_config.crop_size // model_config.patch_size
    return max(1, frames // model_config.tubelet_size), g, g


def mask_generator(seed: int, step: int, micro: int, mask: int) -> torch.Generator:
    """Masks are a pure function of (seed, step, micro-step, generator): resumable, same for any process count."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1_009 + micro) * 101 + mask)


# ---------------------------------------------------------------------------------------------------- model
def build_model(config: PretrainConfig, init: str | None = None):
    """A ``transformers.VJEPA2Model`` from ``config.model`` fields or an HF-layout directory (``init``)."""
    from transformers import VJEPA2Config, VJEPA2Model

    init = init or config.init
    if init:
        try:
            return VJEPA2Model.from_pretrained(init, **config.model)
        except OSError as err:
            raise FileNotFoundError(f"--init (or the config's init:) {init}: {err}") from err
    known = set(VJEPA2Config().to_dict())
    unknown = sorted(set(config.model) - known)
    if unknown:
        raise ValueError(f"unknown VJEPA2Config fields in model: {unknown}")
    return VJEPA2Model(VJEPA2Config(**config.model))


def save_hf_model(model: nn.Module, target_encoder: nn.Module, directory: Path) -> Path:
    """Save ``model`` with the EMA encoder weights, HF layout (``config.json`` + ``model.safetensors``), atomically."""
    out = copy.deepcopy(model).cpu()
    out.encoder.load_state_dict(target_encoder.state_dict())
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        out.save_pretrained(tmp)
    return directory


# ---------------------------------------------------------------------------------------------------- loop
def _autocast(device: torch.device, dtype: str):
    d = AUTOCAST_DTYPES[dtype]
    return torch.autocast(device.type, dtype=d) if d is not None else contextlib.nullcontext()


def pixels_from_frames(frames: Tensor, frames_per_clip: int, crop_size: int) -> Tensor:
    """uint8 ``[B, T, H, W, 3]`` -> normalised ``[B, frames_per_clip, 3, S, S]`` (the encoder's preprocessing)."""
    frames = frames[:, :frames_per_clip]
    b, t = frames.shape[:2]
    return normalize_frames(frames.flatten(0, 1), crop_size).unflatten(0, (b, t))


def pretrain(
    config: PretrainConfig | None,
    data: Sequence[str | os.PathLike] | None,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    init: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Path:
    """Pretrain a V-JEPA 2 encoder on the frames of episode datasets; returns ``out / "model"`` (HF layout).

    Run directory: ``config.yaml``, ``checkpoints/latest.pt`` (atomic, every ``ckpt_every`` steps),
    ``metrics.jsonl``, ``model/``. ``resume`` continues bit-exactly from the latest checkpoint with the run's own
    config, ``init`` (stored in the config) and ``data`` (``None``: the recorded datasets); one given again must be
    the run's (see :func:`~vjepa2_ac.training.checkpointing.resolve_run`). Nothing is written to ``out`` before the
    data and the model have loaded."""
    from vjepa2_ac.data.clips import ClipDataset

    info = setup_distributed(device)
    out = Path(out)
    ckpt_path = out / "checkpoints" / CHECKPOINT_NAME
    run = resolve_run(PretrainConfig, config, ckpt_path, resume=resume, init=init, data=data)
    config, data = run.config, run.data
    seed_everything(config.seed + info.rank)

    sources = open_sources(data)
    from vjepa2_ac.training.latent_cache import LatentCache

    if any(isinstance(s, LatentCache) for s in sources):
        raise ValueError("encoder pretraining needs frames: pass episode datasets, not latent caches")
    dataset = ClipDataset(sources, frames_per_clip=max(2, config.frames_per_clip), fps=config.fps,
                          seed=config.seed, clips_per_epoch=config.clips_per_epoch)
    per_step = info.world_size * config.grad_accum_steps
    if config.batch_size % per_step:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by world_size x grad_accum_steps "
                         f"= {info.world_size} x {config.grad_accum_steps}")
    micro = config.batch_size // per_step
    steps_per_epoch = len(dataset) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"an epoch has {len(dataset)} clips, fewer than batch_size {config.batch_size}; set "
                         "clips_per_epoch")

    torch.manual_seed(config.seed)  # same initial weights on every process
    model = build_model(config)
    mcfg = model.config
    if config.frames_per_clip > 1 and config.frames_per_clip % mcfg.tubelet_size:
        raise ValueError(f"frames_per_clip {config.frames_per_clip} must be 1 or a multiple of tubelet_size "
                         f"{mcfg.tubelet_size}")
    if len(config.masks) > mcfg.pred_num_mask_tokens:
        raise ValueError(f"{len(config.masks)} mask generators but the predictor has {mcfg.pred_num_mask_tokens} "
                         "mask tokens (pred_num_mask_tokens)")
    specs = [MaskSpec.from_dict(m) for m in config.masks]
    grid = token_grid(mcfg, config.frames_per_clip)
    model.to(info.device).train()
    if config.activation_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    target_encoder = copy.deepcopy(model.encoder).requires_grad_(False).eval()
    objective = wrap_ddp(JEPAObjective(model, config.loss_exp), info)
    optimizer, schedule, scaler = build_optimization(model, config, info.device.type)
    data_state = {"episodes": dataset.num_episodes, "clips_per_epoch": len(dataset)}

    step, epoch, batch_in_epoch = 0, 0, 0
    if info.is_main:  # written once the data and the model have loaded (a failed start leaves nothing)
        config.to_yaml(out / "config.yaml")
    if resume:
        ckpt = run.checkpoint
        if ckpt["data"] != data_state:
            raise ValueError(f"the dataset changed since the checkpoint ({ckpt['data']} -> {data_state})")
        model.load_state_dict(ckpt["model"])
        target_encoder.load_state_dict(ckpt["target_encoder"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        step, epoch, batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        set_rng_state(ckpt["rng"][min(info.rank, len(ckpt["rng"]) - 1)])
    logger = MetricsLogger(out, enabled=info.is_main, resume_step=step if resume else None)

    def save() -> None:
        from vjepa2_ac.training.ac_trainer import _gather_rng

        states = _gather_rng(info)
        if info.is_main:
            payload = {"model": model.state_dict(), "target_encoder": target_encoder.state_dict(),
                       "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "step": step,
                       "epoch": epoch, "batch_in_epoch": batch_in_epoch, "rng": states, "data": data_state,
                       "config": config.to_dict(), "run": run.record}
            save_checkpoint(ckpt_path, payload)
            if config.keep_every and step % config.keep_every == 0:
                save_checkpoint(out / "checkpoints" / f"step_{step:07d}.pt", payload)

    from tqdm import tqdm

    bar = tqdm(total=config.total_steps, initial=step, desc="pretrain", unit="step",
               disable=not (progress and info.is_main))
    sampler = ResumableDistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, seed=config.seed)
    rows = slice(info.rank, None, info.world_size)  # this process's rows of a global micro-batch (sampler order)
    t_last, clips_since = time.perf_counter(), 0
    while step < config.total_steps:
        if batch_in_epoch >= steps_per_epoch:
            epoch, batch_in_epoch = epoch + 1, 0
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch, skip=batch_in_epoch * micro * config.grad_accum_steps)
        batches = iter(DataLoader(dataset, batch_size=micro, sampler=sampler, num_workers=config.num_workers,
                                  drop_last=True, pin_memory=info.device.type == "cuda",
                                  generator=epoch_generator(config.seed, epoch)))
        while batch_in_epoch < steps_per_epoch and step < config.total_steps:
            lr = schedule(step)
            set_lr(optimizer, lr)
            totals = torch.zeros(1 + len(specs), device=info.device)
            for k in range(config.grad_accum_steps):
                frames = next(batches)[0].to(info.device, non_blocking=True)
                pixels = pixels_from_frames(frames, config.frames_per_clip, mcfg.crop_size)
                masks = []
                for i, spec in enumerate(specs):
                    ctx, tgt = multiblock_masks(spec, grid, micro * info.world_size,
                                                mask_generator(config.seed, step, k, i))
                    masks.append((ctx[rows].to(info.device), tgt[rows].to(info.device)))
                with torch.no_grad(), _autocast(info.device, config.dtype):
                    h = target_encoder(pixels).last_hidden_state
                    h = F.layer_norm(h.float(), (h.shape[-1],))
                sync = k == config.grad_accum_steps - 1 or not info.enabled
                with (contextlib.nullcontext() if sync else objective.no_sync()), _autocast(info.device, config.dtype):
                    losses = objective(pixels, h, masks)
                scaler.scale(losses["loss"] / config.grad_accum_steps).backward()
                totals += torch.stack([losses["loss"].detach().float()]
                                      + [losses[f"loss_mask{i}"].detach().float() for i in range(len(specs))])
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            momentum = config.ema[0] + step * (config.ema[1] - config.ema[0]) / config.total_steps
            ema_update(target_encoder, model.encoder, momentum)
            step, batch_in_epoch = step + 1, batch_in_epoch + 1
            clips_since += config.batch_size
            bar.update(1)
            if step % config.log_every == 0 or step == config.total_steps:
                totals = (all_reduce_mean(totals, info) / config.grad_accum_steps).tolist()
                if not math.isfinite(totals[0]):
                    raise FloatingPointError(f"pretraining loss is {totals[0]} at step {step}")
                now = time.perf_counter()
                logger.log(step, loss=totals[0], **{f"loss_mask{i}": v for i, v in enumerate(totals[1:])}, lr=lr,
                           momentum=momentum, epoch=epoch, clips_per_s=clips_since / max(now - t_last, 1e-9))
                bar.set_postfix(loss=f"{totals[0]:.4f}")
                t_last, clips_since = now, 0
            if config.ckpt_every and step % config.ckpt_every == 0 and step < config.total_steps:
                save()
    bar.close()
    save()
    model_dir = out / "model"
    if info.is_main:
        save_hf_model(model, target_encoder, model_dir)
    logger.close()
    barrier(info)
    return model_dir
