"""``vjepa2-ac eval``: closed-loop success rates over tasks x objects x backends x N episodes (episode i uses
seed S+i), with baselines in the same run; prints a Markdown table and writes JSON (``success_rate`` is a
fraction, with its 95% Wilson interval ``ci_low``/``ci_high``)."""

from __future__ import annotations

import argparse

from vjepa2_ac.commands.common import (
    BACKENDS,
    OBJECTS,
    TASK_CHOICES,
    add_model_arguments,
    load_model_or_exit,
    write_json,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", nargs="+", default=["pick-place"], choices=TASK_CHOICES, metavar="TASK",
                        help=f"one or more of {', '.join(TASK_CHOICES)} (default: pick-place)")
    parser.add_argument("--object", nargs="+", default=["cube"], choices=OBJECTS, metavar="OBJECT",
                        help="one or more of cube, cup (default: cube)")
    parser.add_argument("--backend", nargs="+", default=["mujoco"], choices=BACKENDS,
                        metavar="BACKEND", help="one or more of mujoco, pybullet (default: mujoco)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per cell (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1000,
                        help="episode i uses env seed SEED+i (default: %(default)s, away from training seeds)")
    parser.add_argument("--planner", default=None, choices=["cem", "mppi", "icem", "gradient"],
                        help="planner (default: the model's planning.json, else cem)")
    add_model_arguments(parser)
    parser.add_argument("--baselines", nargs="*", default=[], choices=["random", "untrained"], metavar="BASELINE",
                        help="also run: random (random actions), untrained (same encoder, fresh predictor)")
    parser.add_argument("--baselines-only", action="store_true",
                        help="run only the --baselines (same seeds), not the model's planner")
    parser.add_argument("--max-steps", type=int, default=None, help="actions per episode (default: planning.json)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--no-episodes-in-json", action="store_true", help="leave per-episode records out of the JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import time

    from vjepa2_ac import __version__
    from vjepa2_ac.eval import evaluate, results_table, software_versions

    if args.episodes < 1:
        raise SystemExit(f"--episodes must be >= 1, got {args.episodes}")
    if args.max_steps is not None and args.max_steps < 1:
        raise SystemExit(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.baselines_only and not args.baselines:
        raise SystemExit("--baselines-only needs --baselines (random, untrained)")
    wm, planning, description = load_model_or_exit(args)
    start = time.perf_counter()
    cells = evaluate(wm, planning, tasks=args.task, objects=args.object, backends=args.backend,
                     episodes=args.episodes, seed=args.seed, baselines=list(dict.fromkeys(args.baselines)),
                     planner=args.planner, max_steps=args.max_steps, progress=not args.no_progress,
                     include_model=not args.baselines_only)
    wall = time.perf_counter() - start
    table = results_table(cells)
    print(f"world model: {description}; planner {args.planner or planning.planner.type}; seeds {args.seed}.."
          f"{args.seed + args.episodes - 1}; {wall:.0f} s")
    versions = software_versions()
    print(table)
    print("software: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None))
    if args.json:
        report = {"vjepa2_ac_version": __version__, "versions": versions, "model": description,
                  "planner": args.planner or planning.planner.type, "planning": planning.to_dict(),
                  "planning_source": planning.source, "seed": args.seed, "episodes": args.episodes,
                  "wall_time_s": wall, "table": table,
                  "cells": [c.to_dict(episodes=not args.no_episodes_in_json) for c in cells]}
        print(f"wrote {write_json(args.json, report)}")
    return 0

