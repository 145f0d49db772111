"""``vjepa2-ac train-decoder``: train a small pixel decoder (:class:`~vjepa2_ac.model.decoder.LatentDecoder`) on the
frozen encoder's latents of a world model, to look at what the model encodes and predicts (``vjepa2-ac imagine``).

Every frame of ``--data`` (any dataset :func:`vjepa2_ac.data.clips.open_source` reads; every ``--frame-step``-th
frame) is encoded once into an in-memory cache; the decoder then learns latent -> the encoder's view of the frame
(crop + resize to the model's image size, in [0, 1]) with an L1 loss (+ ``--grad-weight`` x L1 of the image
gradients). A few whole episodes are held out (``--val-fraction``) for the final validation L1.

``--out RUN_DIR`` gets ``checkpoint.pt`` (atomic, every ``--save-every`` steps), ``metrics.jsonl``, ``decoder/``
(the result) and ``result.json``; ``--install`` also writes the decoder into ``<model dir>/decoder/``, where
``imagine`` looks for it. ``--resume`` continues the run in RUN_DIR exactly: batches are a pure function of
``(seed, step)`` and the optimizer state is restored, so the weights equal those of an uninterrupted run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from vjepa2_ac.commands.common import add_threads_argument, apply_threads, write_json

CHECKPOINT = "checkpoint.pt"
# settings recorded in the checkpoint; with --resume each one given again must equal the run's
RUN_DEFAULTS: dict[str, Any] = {"model": "vjepa2-ac-sim-small", "steps": 2000, "batch_size": 16, "lr": 2e-3,
                                "seed": 0, "grad_weight": 0.1, "channels": None, "frame_step": 1,
                                "val_fraction": 0.1}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", metavar="PATH",
                        help="episode datasets (our HDF5 episodes, raw DROID, LeRobot v3); optional with --resume")
    parser.add_argument("--model", default=None,
                        help="world model whose frozen encoder makes the latents: a directory or a bundled name "
                             f"(default: {RUN_DEFAULTS['model']})")
    parser.add_argument("--out", required=True, metavar="RUN_DIR",
                        help="run directory (checkpoint.pt, metrics.jsonl, decoder/, result.json)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"optimizer steps (default: {RUN_DEFAULTS['steps']})")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"frames per step (default: {RUN_DEFAULTS['batch_size']})")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"peak AdamW learning rate, cosine decay (default: {RUN_DEFAULTS['lr']})")
    parser.add_argument("--seed", type=int, default=None, help="init, split and batch seed (default: 0)")
    parser.add_argument("--grad-weight", type=float, default=None,
                        help=f"weight of the image-gradient L1 term (default: {RUN_DEFAULTS['grad_weight']})")
    parser.add_argument("--channels", type=int, nargs="+", default=None, metavar="C",
                        help="decoder widths from the token grid up to the image, one per doubling + 1 "
                             "(default: 192 128 64 32 16, cut to the model's doublings)")
    parser.add_argument("--frame-step", type=int, default=None,
                        help="use every k-th frame of each episode (default: 1)")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help=f"share of episodes held out for validation (default: {RUN_DEFAULTS['val_fraction']})")
    parser.add_argument("--save-every", type=int, default=200, help="checkpoint interval in steps (default: 200)")
    parser.add_argument("--log-every", type=int, default=50, help="print / log interval in steps (default: 50)")
    parser.add_argument("--install", action="store_true",
                        help="also write the decoder to <model dir>/decoder/ (where `vjepa2-ac imagine` looks)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in RUN_DIR from its checkpoint with the run's settings")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    add_threads_argument(parser)


def _checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write a training checkpoint atomically (a seam for tests that interrupt a run)."""
    from vjepa2_ac.training.checkpointing import save_checkpoint

    save_checkpoint(path, payload)


def _settings(args: argparse.Namespace, out: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The run's settings (given, else recorded when resuming, else defaults) and the checkpoint when resuming."""
    import os

    from vjepa2_ac.training.checkpointing import load_checkpoint

    given = {k: getattr(args, k) for k in RUN_DEFAULTS}
    given["data"] = [os.path.abspath(os.path.expanduser(p)) for p in args.data] if args.data else None
    if given["channels"] is not None:
        given["channels"] = list(given["channels"])
    ckpt_path = out / CHECKPOINT
    if not args.resume:
        if ckpt_path.exists():
            raise SystemExit(f"--out {out} already holds a run ({ckpt_path}); pass --resume to continue it or choose "
                             "another --out")
        if not args.data:
            raise SystemExit("--data is required (unless --resume)")
        return {k: (RUN_DEFAULTS[k] if v is None else v) for k, v in given.items()}, None
    if not ckpt_path.is_file():
        raise SystemExit(f"--resume: no checkpoint at {ckpt_path}")
    ckpt = load_checkpoint(ckpt_path)
    run = dict(ckpt["run"])
    for key, value in given.items():
        if value is not None and value != run[key]:
            raise SystemExit(f"--resume: --{key.replace('_', '-')} differs from the run's (run: {run[key]!r}, "
                             f"given: {value!r}); omit it to use the run's")
    return run, ckpt


def _check(settings: dict[str, Any]) -> None:
    """One line naming the argument for each bad value."""
    for key in ("steps", "batch_size", "frame_step"):
        if settings[key] < 1:
            raise SystemExit(f"--{key.replace('_', '-')} must be >= 1, got {settings[key]}")
    if not settings["lr"] > 0:
        raise SystemExit(f"--lr must be > 0, got {settings['lr']}")
    if not settings["grad_weight"] >= 0:
        raise SystemExit(f"--grad-weight must be >= 0, got {settings['grad_weight']}")
    if not 0 <= settings["val_fraction"] < 1:
        raise SystemExit(f"--val-fraction must be in [0, 1), got {settings['val_fraction']}")


def load_frames(paths: list[str], frame_step: int) -> list:
    """uint8 frames ``[T_e, H, W, 3]`` of every episode of every dataset, every ``frame_step``-th frame."""
    import numpy as np

    from vjepa2_ac.data.clips import open_source
    from vjepa2_ac.training.latent_cache import is_latent_cache

    episodes = []
    for path in paths:
        if not Path(path).exists():
            raise SystemExit(f"--data {path}: no such file or directory")
        if is_latent_cache(path):
            raise SystemExit(f"--data {path} is a latent cache (no pixels); give the episode dataset it was made from")
        source = open_source(path)
        for i in range(len(source)):
            frames, _ = source.read(i, np.arange(0, source.episode_length(i), frame_step))
            if len(frames):
                episodes.append(np.asarray(frames, dtype=np.uint8))
    if not episodes:
        raise SystemExit(f"--data {' '.join(paths)}: no frames found")
    return episodes


def encode_cache(world_model: Any, episodes: list, image_size: int, *, chunk: int = 64):
    """The in-memory cache: normalised latents ``[F, N, D]`` (float32) and uint8 targets ``[F, 3, S, S]``, with the
    episode of each frame ``[F]``."""
    import numpy as np
    import torch

    from vjepa2_ac.model.decoder import target_images

    latents, targets, owner = [], [], []
    for e, frames in enumerate(episodes):
        for i in range(0, len(frames), chunk):
            part = frames[i:i + chunk]
            latents.append(world_model.encode(part)[0].cpu())  # [t, N, D]
            targets.append((target_images(part, image_size) * 255).round().to(torch.uint8))
            owner.append(np.full(len(part), e))
    return torch.cat(latents), torch.cat(targets), np.concatenate(owner)


def decoder_loss(pred, target, grad_weight: float):
    """L1 on pixels + ``grad_weight`` x L1 of the horizontal and vertical differences; returns (loss, pixel L1)."""
    l1 = (pred - target).abs().mean()
    if grad_weight <= 0:
        return l1, l1
    dx = lambda x: x[..., :, 1:] - x[..., :, :-1]  # noqa: E731
    dy = lambda x: x[..., 1:, :] - x[..., :-1, :]  # noqa: E731
    grad = (dx(pred) - dx(target)).abs().mean() + (dy(pred) - dy(target)).abs().mean()
    return l1 + grad_weight * grad, l1


def mean_l1(decoder: Any, latents, targets, *, batch: int = 64) -> float:
    """Mean absolute pixel error (in [0, 1] units) of ``decoder`` over a cache."""
    import torch

    if len(latents) == 0:
        return float("nan")
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(latents), batch):
            pred = decoder(latents[i:i + batch].to(decoder.device))
            total += float((pred - targets[i:i + batch].to(pred.device).float() / 255).abs().sum())
    return total / targets.numel()


def _lr_at(step: int, steps: int, lr: float) -> float:
    """Linear warm-up over the first 5% (at most 100 steps), then cosine decay to 5% of ``lr``."""
    import math

    warm = min(100, max(1, steps // 20))
    if step < warm:
        return lr * (step + 1) / warm
    t = (step - warm) / max(1, steps - warm)
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from vjepa2_ac.agent.loading import check_device
    from vjepa2_ac.commands.train import user_errors
    from vjepa2_ac.model.decoder import LatentDecoder, LatentDecoderConfig, decoder_dir
    from vjepa2_ac.model.world_model import WorldModel, resolve_model_dir
    from vjepa2_ac.training.checkpointing import MetricsLogger

    apply_threads(args)
    out = Path(args.out)
    for key in ("save_every", "log_every"):
        if getattr(args, key) < 1:
            raise SystemExit(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    try:
        device = check_device(args.device)
    except ValueError as err:
        raise SystemExit(f"--device: {err}") from None
    settings, ckpt = _settings(args, out)
    _check(settings)
    try:
        model_dir = resolve_model_dir(settings["model"])
        wm = WorldModel.from_pretrained(model_dir, device=device)
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"--model {settings['model']}: cannot load the world model ({err})") from None
    if wm.encoder is None:
        raise SystemExit(f"--model {settings['model']}: the world model has no encoder")
    kwargs = {"channels": tuple(settings["channels"])} if settings["channels"] else {}
    try:
        config = LatentDecoderConfig.for_world_model(wm, **kwargs)
    except ValueError as err:
        raise SystemExit(f"--channels: {err}") from None

    with user_errors("train-decoder", out):
        # ---- data: encode every frame once
        start = time.perf_counter()
        episodes = load_frames(settings["data"], settings["frame_step"])
        latents, targets, owner = encode_cache(wm, episodes, config.image_size)
        encode_s = time.perf_counter() - start
        n_val = int(round(settings["val_fraction"] * len(episodes))) if len(episodes) > 1 else 0
        val_eps = np.random.default_rng([settings["seed"], 1]).permutation(len(episodes))[:n_val]
        is_val = np.isin(owner, val_eps)
        train_idx = torch.from_numpy(np.flatnonzero(~is_val))
        val_idx = torch.from_numpy(np.flatnonzero(is_val))
        print(f"encoded {len(latents)} frames of {len(episodes)} episodes in {encode_s:.0f} s "
              f"({len(train_idx)} train, {len(val_idx)} val in {n_val} held-out episodes)", flush=True)

        # ---- model + optimizer (init from the seed; restored when resuming)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings["seed"])
            decoder = LatentDecoder(config).to(device)
        opt = torch.optim.AdamW(decoder.parameters(), lr=settings["lr"], weight_decay=1e-4)
        step = 0
        if ckpt is not None:
            decoder.load_state_dict(ckpt["decoder"])
            opt.load_state_dict(ckpt["optimizer"])
            step = int(ckpt["step"])
            print(f"resumed at step {step}", flush=True)
        logger = MetricsLogger(out, resume_step=step if ckpt is not None else None, tensorboard=False)

        def save(at: int) -> None:
            _checkpoint(out / CHECKPOINT, {"step": at, "decoder": decoder.state_dict(),
                                           "optimizer": opt.state_dict(), "config": config.to_dict(),
                                           "run": settings})

        # ---- train
        decoder.train()
        steps, bs = settings["steps"], settings["batch_size"]
        train_start, window = time.perf_counter(), []
        while step < steps:
            rng = np.random.default_rng([settings["seed"], 2, step])  # the batch: a function of (seed, step)
            pick = train_idx[torch.from_numpy(rng.integers(0, len(train_idx), size=bs))]
            z, y = latents[pick].to(device), targets[pick].to(device).float() / 255
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, steps, settings["lr"])
            loss, l1 = decoder_loss(decoder(z), y, settings["grad_weight"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            window.append(float(l1.detach()))
            if step % args.log_every == 0 or step == steps:
                mean = float(np.mean(window))
                logger.log(step, l1=mean, loss=float(loss.detach()), lr=opt.param_groups[0]["lr"])
                print(f"step {step}/{steps}: train L1 {mean:.4f} ({time.perf_counter() - train_start:.0f} s)",
                      flush=True)
                window = []
            if step % args.save_every == 0 or step == steps:
                save(step)
        train_s = time.perf_counter() - train_start
        logger.close()

        # ---- evaluate and save
        decoder.eval()
        eval_train = train_idx[torch.from_numpy(np.random.default_rng([settings["seed"], 3]).permutation(
            len(train_idx))[:512])]
        train_l1 = mean_l1(decoder, latents[eval_train], targets[eval_train])
        val_l1 = mean_l1(decoder, latents[val_idx], targets[val_idx])
        decoder.requires_grad_(False)
        saved = decoder.save_pretrained(out / "decoder")
        installed = decoder.save_pretrained(decoder_dir(model_dir)) if args.install else None
        result = {"steps": steps, "train_l1": train_l1, "val_l1": val_l1, "frames": len(latents),
                  "train_frames": len(train_idx), "val_frames": len(val_idx), "encode_s": encode_s,
                  "train_s_this_session": train_s, "parameters": decoder.num_parameters(),
                  "settings": settings, "installed": str(installed) if installed else None}
        write_json(out / "result.json", result)
    print(f"train L1 {train_l1:.4f}, val L1 {val_l1:.4f} (pixels in [0, 1]); saved the decoder to {saved}"
          + (f" and {installed}" if installed else ""))
    return 0
