"""Does the scripted expert still succeed under every factor of variation (``envs.factors``)?

For every task x object x backend, the scripted expert (``envs.scripted_expert``, simulator ground truth) runs
``--seeds`` episodes (seeds 0..N-1) in the nominal scene and under each factor alone. The factors change only
what the cameras see, except the distractors, which are obstacles on the table: a failure under ``distractors``
means one blocks the expert's path. Episodes stop at their first success (as ``is_success`` ever being true in a
full-length episode). Small images and no goal images keep it cheap. Prints a Markdown table (successes / N per
cell, wall time per row; rows are printed as they finish) and the failed seeds.

    python investigations/check_expert_factors.py                                  # both backends, 20 seeds
    python investigations/check_expert_factors.py --backend mujoco --seeds 5 --factors nominal distractors
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium  # noqa: E402

import envs  # noqa: E402
from envs.factors import FACTORS  # noqa: E402
from envs.franka_env import BACKENDS  # noqa: E402

NOMINAL = "nominal"


def run_episode(env, seed: int) -> bool:
    """One scripted-expert episode; whether it succeeded (the env ends it at the first success)."""
    expert = envs.scripted_expert(env)
    obs, info = env.reset(seed=seed)
    for _ in range(env.spec.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(expert(obs))
        if info["is_success"]:
            return True
        if terminated or truncated:
            break
    return False


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=20, help="episodes per cell, seeds 0..N-1 (default 20)")
    p.add_argument("--backend", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    p.add_argument("--factors", nargs="+", choices=(NOMINAL, *FACTORS), default=[NOMINAL, *FACTORS],
                   help="columns: 'nominal' (no factor) and factor names (default: all)")
    p.add_argument("--tasks", nargs="+", choices=envs.TASK_NAMES, default=list(envs.TASK_NAMES))
    p.add_argument("--objects", nargs="+", choices=("cube", "cup"), default=["cube", "cup"])
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")

    print(f"Scripted expert, successes / {args.seeds} seeds per cell (seeds 0..{args.seeds - 1}).\n")
    print("| task | object | backend | " + " | ".join(args.factors) + " | wall (s) |")
    print("|---|---|---|" + "---|" * len(args.factors) + "---|", flush=True)
    failures: list[str] = []
    start = time.perf_counter()
    for backend in args.backend:
        for task in args.tasks:
            for obj in args.objects:
                row_start = time.perf_counter()
                cells = []
                for factor in args.factors:
                    env = gymnasium.make(envs.task_spec(task).env_id, object=obj, backend=backend, image_size=16,
                                         render_goals=False, terminate_on_success=True,
                                         factors=[] if factor == NOMINAL else [factor])
                    failed = [s for s in range(args.seeds) if not run_episode(env, s)]
                    env.close()
                    cells.append(f"{args.seeds - len(failed)}/{args.seeds}")
                    if failed:
                        failures.append(f"{task} {obj} {backend} {factor}: seeds {failed}")
                print(f"| {task} | {obj} | {backend} | " + " | ".join(cells)
                      + f" | {time.perf_counter() - row_start:.0f} |", flush=True)
    print(f"\nTotal wall time {time.perf_counter() - start:.0f} s.")
    print("Failures: " + ("none" if not failures else "\n- " + "\n- ".join(failures)), flush=True)


if __name__ == "__main__":
    main()
