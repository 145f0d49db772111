"""AC training throughput (clips/s) on this machine, from frames (frozen encoder every step) and from a latent cache.

Small config: the geometry of ``configs/ac_small_cpu.yaml`` (predictor 192 wide, 6 blocks) on a random encoder shaped
like ``configs/encoder_small_cpu.yaml`` (128 px, patch 16 -> 64 tokens/frame, 192 wide, 6 layers), 8-frame clips,
batch 16, synthetic 128 px episodes. Prints a table; also times ``encode-dataset`` (frames/s).

    python benchmarks/bench_train.py [--steps 8] [--threads 1] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_dataset(root: Path, episodes: int, steps: int, size: int) -> Path:
    from vjepa2_ac.data import write_episode

    rng = np.random.default_rng(0)
    for e in range(episodes):
        states = np.zeros((steps, 7))
        states[:, :3] = np.cumsum(rng.normal(0, 0.01, (steps, 3)), 0)
        frames = rng.integers(0, 255, (steps, size, size, 3), dtype=np.uint8)
        write_episode(root / f"episode_{e:06d}.h5", frames, states, metadata={"control_hz": 4.0}, compression="lzf")
    return root


def run(config, data: Path, out: Path) -> float:
    from vjepa2_ac.training.ac_trainer import train

    train(config, [data], out, progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["clips_per_s"] for r in rows if "clips_per_s" in r][1:]  # the first step includes warm-up
    return float(np.median(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import VJEPA2Config

    from vjepa2_ac.model.encoder import Encoder
    from vjepa2_ac.training.config import TrainConfig
    from vjepa2_ac.training.latent_cache import encode_dataset

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_dataset(tmp / "data", episodes=8, steps=40, size=128)
        torch.manual_seed(0)
        enc_cfg = VJEPA2Config(crop_size=128, patch_size=16, hidden_size=192, num_hidden_layers=6,
                               num_attention_heads=3, pred_hidden_size=96, pred_num_hidden_layers=1,
                               pred_num_attention_heads=3)
        enc_dir = Encoder(enc_cfg).save_pretrained(tmp / "encoder")
        encoder = Encoder.from_pretrained(enc_dir)
        t0 = time.perf_counter()
        with torch.inference_mode():
            cache = encode_dataset([data], encoder, tmp / "cache", progress=False)
        encode_fps = 8 * 40 / (time.perf_counter() - t0)

        config = TrainConfig(encoder=str(enc_dir), predictor=dict(predictor_embed_dim=192, depth=6, num_heads=4,
                                                                  num_frames=16),
                             frames_per_clip=8, batch_size=args.batch_size, total_steps=args.steps,
                             clips_per_epoch=args.batch_size * args.steps, ckpt_every=0, log_every=1,
                             num_workers=args.workers)
        frames_rate = run(config, data, tmp / "run_frames")
        cache_rate = run(config, cache, tmp / "run_cache")

    print(f"AC training throughput, {args.threads} thread(s), batch {args.batch_size}, 8 frames/clip, 128 px, "
          f"encoder 192x6 (64 tokens/frame), predictor 192x6, median of {args.steps - 1} steps")
    print(f"| {'mode':<28} | {'clips/s':>8} | {'s/step':>7} |")
    print(f"|{'-' * 30}|{'-' * 10}|{'-' * 9}|")
    for name, rate in (("frames (frozen encoder)", frames_rate), ("latent cache", cache_rate)):
        print(f"| {name:<28} | {rate:8.2f} | {args.batch_size / rate:7.2f} |")
    print(f"latent cache speed-up: {cache_rate / frames_rate:.2f}x; encode-dataset: {encode_fps:.0f} frames/s")


if __name__ == "__main__":
    main()
