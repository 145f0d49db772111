"""AC post-training: teacher-forcing + rollout L1 losses of the official recipe, in a plain readable loop.

Objective (the official one), with ``h = layer_norm(Enc(frames))`` ``[B, T, N, D]`` (frozen
encoder, or a latent cache) and ``P`` = predictor followed by the non-affine layer norm:

* teacher forcing: ``z_tf = P(h[:, :-1], a, s[:, :-1])`` predicts frames ``1..T-1``;
* rollout (``auto_steps = 2``): context ``[h_0, z_tf[:, 0]]``, actions ``a[:, :n+1]`` and *ground-truth* states
  ``s[:, :n+1]``; the last frame of the output is appended, so ``z_ar = [z_tf[:, 0], ẑ_2, ...]`` (gradients flow
  through ``z_tf[:, 0]``);
* ``loss = L(z_tf, h[:, 1:]) + L(z_ar, h[:, 1:1+auto_steps])`` with ``L(z, h) = mean(|z - h|^p) / p``, p = 1.

Optimisation (§4.3): AdamW (betas, eps, two weight-decay groups), warm-up / constant / linear-anneal LR, constant
weight decay, gradient accumulation, autocast (bf16 on GPU), optional activation checkpointing. Multi-process with
``torchrun`` (DDP + ``DistributedSampler``); ``batch_size`` is global, so K processes give the result of one.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import types
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader, Subset

from vjepa2_ac.model.predictor import ACPredictor, ACPredictorConfig
from vjepa2_ac.model.space import DROID_FRANKA, RobotSpace
from vjepa2_ac.model.world_model import normalize_reps
from vjepa2_ac.training.checkpointing import (
    MetricsLogger,
    resolve_run,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from vjepa2_ac.training.config import TrainConfig
from vjepa2_ac.training.distributed import (
    DistInfo,
    all_reduce_mean,
    all_reduce_sum,
    barrier,
    setup_distributed,
    wrap_ddp,
)
from vjepa2_ac.training.loaders import (
    ResumableDistributedSampler,
    epoch_generator,
    open_sources,
    split_episodes,
)
from vjepa2_ac.training.schedule import build_optimization, set_lr

CHECKPOINT_NAME = "latest.pt"
AUTOCAST_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


# ---------------------------------------------------------------------------------------------------- objective
def latent_loss(z: Tensor, h: Tensor, loss_exp: float = 1.0) -> Tensor:
    """Official ``loss_fn``: ``mean(|z - h|^p) / p`` over every element."""
    return (z - h).abs().pow(loss_exp).mean() / loss_exp


def ac_losses(predictor: nn.Module, h: Tensor, actions: Tensor, states: Tensor, *, auto_steps: int = 2,
              loss_exp: float = 1.0) -> dict[str, Tensor]:
    """Teacher-forcing + rollout losses of one batch.

    Args:
        predictor: an :class:`ACPredictor` (raw outputs; the representation layer norm is applied here).
        h: normalised target latents ``[B, T, N, D]``.
        actions: ``[B, T-1, A]``; states: ``[B, T, A]`` (ground truth, also used in the rollout).
    Returns:
        ``{"loss", "loss_tf", "loss_ar"}`` scalars; ``loss = loss_tf + loss_ar``.
    """
    T = h.shape[1]
    if not 1 <= auto_steps <= T - 1:
        raise ValueError(f"auto_steps must be in [1, T-1 = {T - 1}], got {auto_steps}")
    if actions.shape[:2] != (h.shape[0], T - 1) or states.shape[:2] != h.shape[:2]:
        raise ValueError(f"actions must be [B, T-1, A] and states [B, T, A] for latents {tuple(h.shape)}, got "
                         f"{tuple(actions.shape)} and {tuple(states.shape)}")
    z_tf = normalize_reps(predictor(h[:, :-1], actions, states[:, :-1]))  # [B, T-1, N, D]
    z = torch.cat([h[:, :1], z_tf[:, :1]], dim=1)  # [h_0, ẑ_1]
    for n in range(1, auto_steps):
        z_next = normalize_reps(predictor(z, actions[:, :n + 1], states[:, :n + 1])[:, -1:])
        z = torch.cat([z, z_next], dim=1)
    z_ar = z[:, 1:]  # [B, auto_steps, N, D]
    loss_tf = latent_loss(z_tf, h[:, 1:], loss_exp)
    loss_ar = latent_loss(z_ar, h[:, 1:1 + auto_steps], loss_exp)
    return {"loss": loss_tf + loss_ar, "loss_tf": loss_tf, "loss_ar": loss_ar}


class ACObjective(nn.Module):
    """The predictor plus its loss, so that DDP sees one forward per backward."""

    def __init__(self, predictor: ACPredictor, auto_steps: int = 2, loss_exp: float = 1.0) -> None:
        super().__init__()
        self.predictor = predictor
        self.auto_steps, self.loss_exp = auto_steps, loss_exp

    def forward(self, h: Tensor, actions: Tensor, states: Tensor) -> dict[str, Tensor]:
        return ac_losses(self.predictor, h, actions, states, auto_steps=self.auto_steps, loss_exp=self.loss_exp)


def enable_activation_checkpointing(predictor: ACPredictor) -> None:
    """Recompute each predictor block in the backward pass (``torch.utils.checkpoint``, non-reentrant).

    Only the blocks' ``forward`` is wrapped (instance attribute): parameter names and checkpoints are unchanged."""
    for block in predictor.predictor_blocks:
        if getattr(block, "_checkpointed", False):
            continue
        inner = type(block).forward

        def forward(self, x, cos, sin, attn_mask, cache=None, layer=0, new_steps=0, _inner=inner):
            if cache is not None or not torch.is_grad_enabled():
                return _inner(self, x, cos, sin, attn_mask, cache, layer, new_steps)
            return checkpoint(_inner, self, x, cos, sin, attn_mask, None, layer, new_steps, use_reentrant=False)

        block.forward = types.MethodType(forward, block)
        block._checkpointed = True


# ---------------------------------------------------------------------------------------------------- models
def load_init_model(init: str, *, load_encoder: bool, predictor_overrides: dict[str, Any] | None = None):
    """``--init``: an official or jepa-wms checkpoint (``.pt``/``.pth``/``.tar`` path or URL) or our own model (dir,
    bundled name or hub id).

    For checkpoints the predictor widths, depth and state tokens are read off the weights; ``predictor_overrides``
    supplies what cannot be (``num_heads``, ``img_size``, ...; default: the released ViT-g values). Under torchrun,
    rank 0 fetches first (:func:`~vjepa2_ac.training.distributed.main_process_first`)."""
    from vjepa2_ac.model.world_model import WorldModel
    from vjepa2_ac.training.distributed import main_process_first

    if str(init).startswith(("http://", "https://")) or Path(str(init)).suffix in (".pt", ".pth", ".tar"):
        from vjepa2_ac.model.checkpoint import resolve_file

        with main_process_first():  # under torchrun rank 0 downloads, the others then read the cached file
            path = resolve_file(init)
        return WorldModel.from_official_checkpoint(path, load_encoder=load_encoder,
                                                   predictor_config=dict(predictor_overrides or {}))
    with main_process_first():
        return WorldModel.from_pretrained(init, load_encoder=load_encoder)


def build_models(config: TrainConfig, *, init: str | None, latent_cache: Any | None,
                 space: RobotSpace = DROID_FRANKA):
    """``(encoder, predictor)``: the frozen encoder (``None`` when training from a latent cache: then a meta-device
    stand-in carrying the config and reference is returned for saving) and a trainable predictor. A new predictor
    takes the data's robot ``space`` unless the config's ``predictor.robot`` names one."""
    from vjepa2_ac.model.encoder import Encoder

    init = init or config.init
    need_weights = latent_cache is None
    encoder = Encoder.from_pretrained(config.encoder) if (config.encoder and need_weights) else None
    init_model = None
    if init:
        try:
            init_model = load_init_model(init, load_encoder=need_weights and encoder is None,
                                         predictor_overrides=config.predictor)
        except OSError as err:  # missing / unreadable file or directory, unknown name, unreachable URL
            raise FileNotFoundError(f"--init (or the config's init:) {init}: {err}") from err
    if encoder is None and init_model is not None:
        encoder = init_model.encoder
    if latent_cache is not None:
        encoder = Encoder(latent_cache.encoder_config(), device="meta")
        encoder.name_or_path = config.encoder or latent_cache.encoder_name_or_path
    if encoder is None:
        raise ValueError("no encoder: set `encoder:` (hub id or HF-layout dir) in the config, pass --init MODEL, or "
                         "train from a latent cache (vjepa2-ac encode-dataset)")
    if init_model is not None:
        predictor = init_model.predictor
        wanted = ACPredictorConfig.from_dict({**predictor.config.to_dict(), **config.predictor})  # parses `robot`
        conflicts = {k: v for k, v in config.predictor.items() if getattr(predictor.config, k) != getattr(wanted, k)}
        if conflicts:
            raise ValueError(f"config predictor fields {conflicts} differ from the --init model's "
                             f"{ {k: getattr(predictor.config, k) for k in conflicts} }")
    else:
        fields = {"embed_dim": encoder.embed_dim, "img_size": encoder.crop_size, "patch_size": encoder.patch_size,
                  **({} if space == DROID_FRANKA else {"robot": space}), **config.predictor}
        predictor = ACPredictor(ACPredictorConfig.from_dict(fields))
    c = predictor.config
    if c.embed_dim != encoder.embed_dim or c.tokens_per_frame != encoder.tokens_per_frame:
        raise ValueError(f"predictor (embed_dim {c.embed_dim}, {c.tokens_per_frame} tokens/frame) does not match the "
                         f"encoder ({encoder.embed_dim}, {encoder.tokens_per_frame})")
    if config.frames_per_clip - 1 > c.max_steps:
        raise ValueError(f"frames_per_clip {config.frames_per_clip} needs {config.frames_per_clip - 1} predictor "
                         f"steps, the predictor has {c.max_steps} (num_frames // tubelet_size)")
    predictor.train().requires_grad_(True)
    if not c.use_extrinsics:  # stored in checkpoints but unused: no gradient (DDP needs every trained param used)
        predictor.extrinsics_encoder.requires_grad_(False)
    return encoder, predictor


def save_world_model(encoder, predictor: ACPredictor, directory: Path, policy: str = "auto") -> Path:
    """``WorldModel(encoder, predictor).save_pretrained(directory)``; the encoder is copied or referenced by its
    hub id / directory according to ``policy`` (``auto``: reference hub ids, copy everything else)."""
    from vjepa2_ac.model.encoder import Encoder
    from vjepa2_ac.model.world_model import WorldModel

    source = getattr(encoder, "name_or_path", None)
    is_meta = any(p.is_meta for p in encoder.parameters())
    local = source is not None and Path(source).expanduser().is_dir()
    copy = policy == "always" or (policy == "auto" and (source is None or local))
    if copy and is_meta:
        if not local:
            warnings.warn(f"cannot copy the encoder {source!r} into the model (not a local directory); "
                          "storing a reference", stacklevel=2)
            copy = False
        else:
            encoder = Encoder.from_pretrained(source)
    if not copy and source is None:
        warnings.warn("the encoder has neither weights here nor a hub id / directory to reference (e.g. a latent "
                      "cache of an official checkpoint's encoder): saving a latent-only world model", stacklevel=2)
        return WorldModel(None, predictor).save_pretrained(directory)
    # with save_encoder=False only the encoder's name_or_path is written (a meta-device stand-in is fine)
    return WorldModel(encoder, predictor).save_pretrained(directory, save_encoder=copy)


# ---------------------------------------------------------------------------------------------------- loop
def _autocast(device: torch.device, dtype: str):
    d = AUTOCAST_DTYPES[dtype]
    return torch.autocast(device.type, dtype=d) if d is not None else contextlib.nullcontext()


def _to(batch: Sequence[Tensor], device: torch.device) -> list[Tensor]:
    return [t.to(device, non_blocking=True) for t in batch]


def _targets(encoder, x: Tensor, latent_mode: bool, device: torch.device, dtype: str) -> Tensor:
    """Normalised target latents ``[B, T, N, D]`` float32 from frames (frozen encoder) or cached latents."""
    if latent_mode:
        return x.float()
    with torch.no_grad(), _autocast(device, dtype):
        return normalize_reps(encoder(x).float())


def train(
    config: TrainConfig | None,
    data: Sequence[str | os.PathLike] | None,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    init: str | None = None,
    val_data: Sequence[str | os.PathLike] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Path:
    """Train the AC predictor; returns ``out / "model"`` (a :meth:`WorldModel.from_pretrained` directory).

    Args:
        config: the run's config (with ``resume`` it may be ``None``: the run's saved config is used; if given it
            must equal the saved one).
        data: episode datasets (any layout) or latent caches (all of one kind); with ``resume`` ``None`` means the
            run's own (recorded in its checkpoints).
        out: run directory: ``config.yaml``, ``checkpoints/latest.pt``, ``metrics.jsonl``, ``model/``.
        resume: continue from ``out/checkpoints/latest.pt`` bit-exactly (same RNG, same data order). Everything
            the run was started with is restored (config, ``init``, ``data``, ``val_data``); a setting given again
            must be the run's (``ValueError`` naming it otherwise), except ``device`` and ``progress``, and a
            dataset that moved (``data`` / ``val_data`` may name a new location once the recorded one is gone;
            the checkpoint's episode counts must still match).
        init: starting weights (overrides ``config.init``; recorded as the saved config's ``init``).
        val_data: explicit validation datasets (else ``config.val_fraction`` of ``data`` is held out).
        device: default ``cuda:LOCAL_RANK`` if available, else CPU.

    Nothing is written to ``out`` before the data and the models are known to load (fail early).
    """
    info = setup_distributed(device)
    out = Path(out)
    ckpt_path = out / "checkpoints" / CHECKPOINT_NAME
    run = resolve_run(TrainConfig, config, ckpt_path, resume=resume, init=init, data=data, val_data=val_data)
    config, data, val_data = run.config, run.data, run.val_data
    seed_everything(config.seed + info.rank)

    # -- data
    sources = open_sources(data)
    caches = [s for s in sources if _is_cache(s)]
    if caches and len(caches) != len(sources):
        raise ValueError("--data mixes latent caches and episode datasets; use one kind")
    latent_mode = bool(caches)
    if latent_mode and any(c.encoder_config().to_dict() != caches[0].encoder_config().to_dict() for c in caches):
        raise ValueError("latent caches built with different encoders cannot be mixed")
    if val_data:
        train_sources, val_sources = sources, open_sources(val_data)
    else:
        train_sources, val_sources = split_episodes(sources, config.val_fraction)
    from vjepa2_ac.data.clips import ClipDataset

    train_ds = ClipDataset(train_sources, frames_per_clip=config.frames_per_clip, fps=config.fps,
                           seed=config.seed, clips_per_epoch=config.clips_per_epoch)
    val_ds = (ClipDataset(val_sources, frames_per_clip=config.frames_per_clip, fps=config.fps,
                          seed=config.seed + 1, clips_per_epoch=config.val_clips) if val_sources else None)
    per_step = info.world_size * config.grad_accum_steps
    if config.batch_size % per_step:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by world_size x grad_accum_steps "
                         f"= {info.world_size} x {config.grad_accum_steps}")
    micro = config.batch_size // per_step
    steps_per_epoch = len(train_ds) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"an epoch has {len(train_ds)} clips (one per usable training episode unless "
                         f"clips_per_epoch is set), fewer than batch_size {config.batch_size}")

    # -- model, objective, optimizer
    encoder, predictor = build_models(config, init=config.init, latent_cache=caches[0] if latent_mode else None,
                                      space=train_ds.space)
    if predictor.config.robot_space != train_ds.space:
        raise ValueError(f"the data's robot space {train_ds.space.describe()} is not the predictor's "
                         f"{predictor.config.robot_space.describe()} (config predictor.robot or the --init model)")
    if latent_mode:
        c = predictor.config
        if (caches[0].embed_dim, caches[0].tokens_per_frame) != (c.embed_dim, c.tokens_per_frame):
            raise ValueError(f"latent cache holds [N={caches[0].tokens_per_frame}, D={caches[0].embed_dim}] latents, "
                             f"the predictor expects [N={c.tokens_per_frame}, D={c.embed_dim}]")
    else:
        encoder.to(info.device)
    predictor.to(info.device)
    if config.activation_checkpointing:
        enable_activation_checkpointing(predictor)
    objective = wrap_ddp(ACObjective(predictor, config.auto_steps, config.loss_exp), info)
    optimizer, schedule, scaler = build_optimization(predictor, config, info.device.type)
    data_state = {"train_episodes": train_ds.num_episodes, "clips_per_epoch": len(train_ds)}

    step, epoch, batch_in_epoch = 0, 0, 0
    if info.is_main:  # written once the data and the models have loaded (a failed start leaves nothing)
        config.to_yaml(out / "config.yaml")
    if resume:
        ckpt = run.checkpoint
        if ckpt["data"] != data_state:
            raise ValueError(f"the dataset changed since the checkpoint ({ckpt['data']} -> {data_state}); "
                             "resuming would not reproduce the data order")
        predictor.load_state_dict(ckpt["predictor"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        step, epoch, batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        set_rng_state(ckpt["rng"][info.rank] if info.rank < len(ckpt["rng"]) else ckpt["rng"][0])
        if info.is_main:  # temp files of a write that was killed
            for stale in ckpt_path.parent.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
    logger = MetricsLogger(out, enabled=info.is_main, resume_step=step if resume else None)

    def save(final: bool = False) -> None:
        states = _gather_rng(info)
        if not info.is_main:
            return
        payload = {"predictor": predictor.state_dict(), "optimizer": optimizer.state_dict(),
                   "scaler": scaler.state_dict(), "schedule": {"step": step}, "step": step, "epoch": epoch,
                   "batch_in_epoch": batch_in_epoch, "rng": states, "data": data_state,
                   "config": config.to_dict(), "run": run.record}
        save_checkpoint(ckpt_path, payload)
        if config.keep_every and step % config.keep_every == 0 and not final:
            save_checkpoint(out / "checkpoints" / f"step_{step:07d}.pt", payload)

    def validate() -> None:
        if val_ds is None:
            return
        metrics = evaluate(predictor, encoder, val_ds, config, info, latent_mode, micro)
        logger.log(step, **{f"val_{k}": v for k, v in metrics.items()})

    from tqdm import tqdm

    bar = tqdm(total=config.total_steps, initial=step, desc="train", unit="step",
               disable=not (progress and info.is_main))
    sampler = ResumableDistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, seed=config.seed)
    t_last, clips_since = time.perf_counter(), 0
    while step < config.total_steps:
        if batch_in_epoch >= steps_per_epoch:
            epoch, batch_in_epoch = epoch + 1, 0
        train_ds.set_epoch(epoch)
        sampler.set_epoch(epoch, skip=batch_in_epoch * micro * config.grad_accum_steps)
        loader = DataLoader(train_ds, batch_size=micro, sampler=sampler, num_workers=config.num_workers,
                            drop_last=True, pin_memory=info.device.type == "cuda",
                            generator=epoch_generator(config.seed, epoch))
        batches = iter(loader)
        while batch_in_epoch < steps_per_epoch and step < config.total_steps:
            lr = schedule(step)
            set_lr(optimizer, lr)
            totals = torch.zeros(3, device=info.device)
            for k in range(config.grad_accum_steps):
                x, states, actions = _to(next(batches), info.device)
                h = _targets(encoder, x, latent_mode, info.device, config.dtype)
                sync = k == config.grad_accum_steps - 1 or not info.enabled
                with (contextlib.nullcontext() if sync else objective.no_sync()), _autocast(info.device, config.dtype):
                    losses = objective(h, actions.float(), states.float())
                scaler.scale(losses["loss"] / config.grad_accum_steps).backward()
                totals += torch.stack([losses[n].detach().float() for n in ("loss", "loss_tf", "loss_ar")])
            if config.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(predictor.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step, batch_in_epoch = step + 1, batch_in_epoch + 1
            clips_since += config.batch_size
            bar.update(1)

            if step % config.log_every == 0 or step == config.total_steps:
                totals = all_reduce_mean(totals, info) / config.grad_accum_steps
                now = time.perf_counter()
                loss, loss_tf, loss_ar = totals.tolist()
                if not math.isfinite(loss):
                    raise FloatingPointError(f"training loss is {loss} at step {step}")
                logger.log(step, loss=loss, loss_tf=loss_tf, loss_ar=loss_ar, lr=lr, epoch=epoch,
                           clips_per_s=clips_since / max(now - t_last, 1e-9))
                bar.set_postfix(loss=f"{loss:.4f}")
                t_last, clips_since = now, 0
            if config.val_every and step % config.val_every == 0 and step < config.total_steps:
                validate()
            if config.ckpt_every and step % config.ckpt_every == 0 and step < config.total_steps:
                save()
    bar.close()
    save(final=True)
    validate()
    model_dir = out / "model"
    if info.is_main:
        save_world_model(encoder, predictor, model_dir, config.save_encoder)
    logger.close()
    barrier(info)
    return model_dir


@torch.no_grad()
def evaluate(predictor: ACPredictor, encoder, dataset, config: TrainConfig, info: DistInfo, latent_mode: bool,
             batch_size: int) -> dict[str, float]:
    """Mean losses over the validation clips (split over processes)."""
    was_training = predictor.training
    predictor.eval()
    subset = Subset(dataset, list(range(info.rank, len(dataset), info.world_size)))
    sums = torch.zeros(4, dtype=torch.float64, device=info.device)
    for x, states, actions in DataLoader(subset, batch_size=batch_size, num_workers=config.num_workers):
        x, states, actions = _to((x, states, actions), info.device)
        h = _targets(encoder, x, latent_mode, info.device, config.dtype)
        with _autocast(info.device, config.dtype):
            losses = ac_losses(predictor, h, actions.float(), states.float(), auto_steps=config.auto_steps,
                               loss_exp=config.loss_exp)
        n = x.shape[0]
        sums += torch.tensor([losses["loss"].item() * n, losses["loss_tf"].item() * n,
                              losses["loss_ar"].item() * n, n], dtype=torch.float64, device=info.device)
    sums = all_reduce_sum(sums, info)
    predictor.train(was_training)
    count = max(sums[3].item(), 1.0)
    return {"loss": sums[0].item() / count, "loss_tf": sums[1].item() / count, "loss_ar": sums[2].item() / count}


# ---------------------------------------------------------------------------------------------------- helpers
def _is_cache(source) -> bool:
    from vjepa2_ac.training.latent_cache import LatentCache

    return isinstance(source, LatentCache)


def _gather_rng(info: DistInfo) -> list[dict]:
    """Every process's RNG states (index = rank), gathered on all processes."""
    state = rng_state()
    if not info.enabled:
        return [state]
    import io

    import torch.distributed as dist

    buffer = io.BytesIO()
    torch.save(state, buffer)  # bytes travel safely through all_gather_object (tensors may not)
    blobs: list[Any] = [None] * info.world_size
    dist.all_gather_object(blobs, buffer.getvalue())
    return [torch.load(io.BytesIO(b), weights_only=True) for b in blobs]
