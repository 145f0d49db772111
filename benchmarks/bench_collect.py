"""Collection throughput (episodes/min) of ``vjepa2_ac.data.collect`` on this machine.

    python benchmarks/bench_collect.py [--env vjepa2ac/FrankaPickPlace-v0] [--episodes 4] [--image-size 128]
                                       [--workers 1 2] [--compression gzip lzf]

Prints one row per (workers, compression): episodes/min, env steps/s, MB per episode. Also times the env alone
(same policy, no writing) to show the storage overhead.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def env_only_steps_per_s(env_id: str, image_size: int, steps: int) -> float:
    import gymnasium as gym

    import envs  # noqa: F401

    env = gym.make(env_id, render_mode="rgb_array", image_size=image_size)
    expert = envs.scripted_expert(env)
    obs, _ = env.reset(seed=0)
    for _ in range(5):  # warm-up (first renders)
        obs, _, _, _, _ = env.step(expert(obs))
    start = time.perf_counter()
    for _ in range(steps):
        obs, _, term, trunc, _ = env.step(expert(obs))
        if term or trunc:
            obs, _ = env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="vjepa2ac/FrankaPickPlace-v0")
    parser.add_argument("--policy", default="expert")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--compression", nargs="+", default=["gzip", "lzf"])
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from vjepa2_ac.data.collect import CollectConfig, collect

    print(f"env {args.env}, policy {args.policy}, {args.image_size}px, {args.episodes} episodes, "
          f"{os.cpu_count()} CPUs visible")
    print(f"env alone (expert, no writing): {env_only_steps_per_s(args.env, args.image_size, 80):.1f} steps/s")
    header = f"| {'workers':>7} | {'compression':>11} | {'episodes/min':>12} | {'steps/s':>8} | {'MB/episode':>10} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for compression in args.compression:
        for workers in args.workers:
            with tempfile.TemporaryDirectory() as out:
                cfg = CollectConfig(env_id=args.env, policy=args.policy, episodes=args.episodes, out=out,
                                    workers=workers, image_size=args.image_size, compression=compression)
                summary = collect(cfg, progress=False)
                size = sum(p.stat().st_size for p in Path(out).glob("*.h5")) / 1e6 / max(summary.written, 1)
                print(f"| {workers:>7} | {compression:>11} | {summary.episodes_per_minute:>12.1f} | "
                      f"{summary.steps / summary.seconds:>8.1f} | {size:>10.2f} |")


if __name__ == "__main__":
    main()
