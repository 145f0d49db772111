"""Closed-loop success over issue 6's task table (MuJoCo; PyBullet with --backend), with baselines, seconds per
action and the targets / paper numbers side by side.

    python benchmarks/bench_eval.py --episodes 50                        # bundled model, full table (slow)
    python benchmarks/bench_eval.py --model DIR --episodes 5 --tasks reach --baselines random untrained
    python benchmarks/bench_eval.py --episodes 50 --backend pybullet --json pybullet.json

Episode i of every cell uses env seed SEED+i (default 1000: away from the seeds collection uses). The JSON has
the same layout as ``vjepa2-ac eval --json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vjepa2_ac.agent import ModelNotAvailable, load_world_model  # noqa: E402
from vjepa2_ac.atomic import atomic_write_text  # noqa: E402
from vjepa2_ac.eval import evaluate  # noqa: E402

# (task, object) -> (target success, paper success on the real Franka or None)
TABLE = {
    ("reach", "cube"): (0.95, 1.00),
    ("grasp", "cube"): (0.70, 0.25),
    ("grasp", "cup"): (0.60, 0.65),
    ("reach-with-object", "cube"): (0.70, 0.75),
    ("reach-with-object", "cup"): (0.70, 0.75),
    ("pick-place", "cube"): (0.70, 0.65),
    ("pick-place", "cup"): (0.60, 0.80),
}
SECONDS_PER_ACTION_TARGET = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vjepa2-ac-sim-small")
    parser.add_argument("--checkpoint", default=None, help="released checkpoint (then --model is the encoder id)")
    parser.add_argument("--planning", default=None, help="planning.json overriding the model's")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--tasks", nargs="+", default=None, help="subset of the table's tasks")
    parser.add_argument("--objects", nargs="+", default=None, help="subset of cube, cup")
    parser.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"])
    parser.add_argument("--planner", default=None, choices=["cem", "mppi", "icem", "gradient"])
    parser.add_argument("--baselines", nargs="*", default=[], choices=["random", "untrained"])
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the CI machine's share)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    try:
        wm, planning, description = load_world_model(args.model, checkpoint=args.checkpoint, device=args.device,
                                                     planning=args.planning)
    except ModelNotAvailable as err:
        raise SystemExit(f"bench_eval.py: {err}") from None
    rows = [(t, o) for t, o in TABLE if (args.tasks is None or t in args.tasks)
            and (args.objects is None or o in args.objects)]
    if not rows:
        raise SystemExit(f"no (task, object) of the table left after --tasks/--objects; table: {list(TABLE)}")
    cells, start = [], time.perf_counter()
    for task, obj in rows:
        cells += evaluate(wm, planning, tasks=[task], objects=[obj], backends=[args.backend], episodes=args.episodes,
                          seed=args.seed, baselines=args.baselines, planner=args.planner, max_steps=args.max_steps)
    wall = time.perf_counter() - start

    print(f"\nworld model: {description}; planner {args.planner or planning.planner.type}; backend {args.backend}; "
          f"{args.episodes} episodes per cell, seeds {args.seed}..{args.seed + args.episodes - 1}; "
          f"{torch.get_num_threads()} thread(s); {wall / 60:.1f} min\n")
    print("| task | object | policy | success | 95% CI | target | paper (real Franka) | meets target | "
          "mean final distance (cm) | s / action |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        target, paper = TABLE[(c.task, c.object)]
        meets = ("yes" if c.success_rate >= target else "no") if c.policy == "model" else "-"
        print(f"| {c.task} | {c.object} | {c.policy} | {100 * c.success_rate:.0f}% ({c.successes}/{c.episodes}) | "
              f"{100 * c.ci_low:.0f}-{100 * c.ci_high:.0f}% | >= {100 * target:.0f}% | {100 * paper:.0f}% | {meets} | "
              f"{100 * c.mean_final_distance:.1f} | {c.seconds_per_action:.3f} |")
    model_cells = [c for c in cells if c.policy == "model"]
    worst = max(c.seconds_per_action for c in model_cells)
    print(f"\nslowest planning: {worst:.3f} s per action (target <= {SECONDS_PER_ACTION_TARGET:.1f} s): "
          f"{'meets' if worst <= SECONDS_PER_ACTION_TARGET else 'misses'} the target")
    if args.json:
        path = Path(args.json)
        report = {"model": description, "backend": args.backend, "episodes": args.episodes, "seed": args.seed,
                  "wall_time_s": wall, "planning": planning.to_dict(),
                  "cells": [{**c.to_dict(), "target": TABLE[(c.task, c.object)][0],
                             "paper": TABLE[(c.task, c.object)][1]} for c in cells]}
        atomic_write_text(path, json.dumps(report, indent=2, default=str))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
