"""Franka env benchmark: scripted-expert success rates and env steps/s with one render per step.

    python benchmarks/bench_envs.py                       # 100 seeds per task x object x backend, speed, images
    python benchmarks/bench_envs.py --seeds 20 --tasks reach pick-place --backends mujoco --no-images

Prints two markdown tables. ``--images DIR`` (default docs/envs) saves, per task, the start frame next to its
goal images in order (256x256, exterior camera) as PNG.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402
from envs.tasks import TASK_NAMES, task_spec  # noqa: E402
from vjepa2_ac.atomic import atomic_path  # noqa: E402


def expert_success(task: str, obj: str, backend: str, seeds: int) -> tuple[int, float]:
    env = gym.make(task_spec(task).env_id, object=obj, backend=backend, render_goals=False, image_size=16)
    expert = envs.scripted_expert(env)
    wins, steps, t0 = 0, 0, time.perf_counter()
    for seed in range(seeds):
        obs, info = env.reset(seed=seed)
        ok = False
        for _ in range(env.spec.max_episode_steps):
            obs, _, term, trunc, info = env.step(expert(obs))
            steps += 1
            ok |= info["is_success"]
            if term or trunc:
                break
        wins += ok
    env.close()
    return wins, (time.perf_counter() - t0) / max(1, seeds)


def steps_per_second(backend: str, size: int, n_steps: int, **kw) -> float:
    env = gym.make(task_spec("pick-place").env_id, backend=backend, image_size=size, render_goals=False, **kw)
    expert = envs.scripted_expert(env)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(expert(obs))  # warm up the renderer
    t0 = time.perf_counter()
    for _ in range(n_steps):
        obs, _, term, trunc, _ = env.step(expert(obs))
        if term or trunc:
            obs, _ = env.reset(seed=1)
    dt = time.perf_counter() - t0
    env.close()
    return n_steps / dt


def save_images(out: Path) -> list[Path]:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    cases = [(task, "cube", "mujoco") for task in TASK_NAMES]
    cases += [("pick-place", "cup", "mujoco"), ("pick-place", "cube", "pybullet")]
    paths = []
    gap = np.full((256, 4, 3), 255, np.uint8)
    for task, obj, backend in cases:
        env = gym.make(task_spec(task).env_id, object=obj, backend=backend, image_size=256)
        obs, info = env.reset(seed=0)
        goals = [info["goals"][name] for name in env.unwrapped.goal_names]  # in order, "final" not repeated
        row = np.concatenate([obs["pixels"], gap] + [np.concatenate([g, gap], 1) for g in goals], axis=1)[:, :-4]
        name = env.spec.id.split("/")[1].replace("-v0", "").replace("Franka", "").lower()
        path = out / f"{name}_{obj}_{backend}.png"
        with atomic_path(path, suffix=".png") as tmp:
            Image.fromarray(row).save(tmp, format="PNG")
        paths.append(path)
        env.close()
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--tasks", nargs="+", default=list(TASK_NAMES), choices=TASK_NAMES)
    ap.add_argument("--objects", nargs="+", default=["cube", "cup"])
    ap.add_argument("--backends", nargs="+", default=["mujoco", "pybullet"])
    ap.add_argument("--speed-steps", type=int, default=100)
    ap.add_argument("--images", type=Path, default=Path("docs/envs"))
    ap.add_argument("--no-images", action="store_true")
    ap.add_argument("--no-success", action="store_true")
    args = ap.parse_args()

    if not args.no_success:
        print(f"\n### Scripted expert success ({args.seeds} seeds each)\n")
        print("| task | object | backend | success | s / episode |\n|---|---|---|---|---|")
        for task in args.tasks:
            for obj in args.objects:
                for backend in args.backends:
                    wins, sec = expert_success(task, obj, backend, args.seeds)
                    print(f"| {task} | {obj} | {backend} | {wins}/{args.seeds} ({100 * wins / args.seeds:.0f}%) "
                          f"| {sec:.2f} |", flush=True)

    print(f"\n### Env steps/s, one 256x256 exterior render per step ({args.speed_steps} steps, pick-and-place)\n")
    print("| backend | renderer | steps/s |\n|---|---|---|")
    for backend in args.backends:
        variants = [("EGL/llvmpipe, no MSAA (default)", {}), ("EGL/llvmpipe, MSAA 4", {"msaa": 4})]
        if backend == "pybullet":
            variants = [("TinyRenderer, no shadows (default)", {})]
        for label, kw in variants:
            sps = steps_per_second(backend, 256, args.speed_steps, **kw)
            print(f"| {backend} | {label} | {sps:.1f} |", flush=True)

    if not args.no_images:
        for p in save_images(args.images):
            print("saved", p)


if __name__ == "__main__":
    main()
