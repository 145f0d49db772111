"""``vjepa2-ac eval``: closed-loop success rates over tasks x objects x backends x N episodes (episode i uses
seed S+i), with baselines in the same run; prints a Markdown table and writes JSON (``success_rate`` is a
fraction, with its 95% Wilson interval ``ci_low``/``ci_high``) with the table beside it (``OUT.md``).

``--suite recipe`` (default) plans with the model's own planning.json, ``--suite paper`` with the paper's protocol
(the same for every model), ``--suite shift`` with the recipe under the factors of ``--factors`` (each cell beside
the nominal one); see :mod:`vjepa2_ac.eval.suite`. ``--compare OTHER.json`` adds an exact McNemar test per cell on
the shared seeds; ``--workers N`` runs episodes in N processes with identical results.

Nothing finished is lost: with ``--json OUT.json`` every finished episode is appended to ``OUT.episodes.jsonl`` and
``OUT.json`` is rewritten (atomically) after every finished cell; ``--resume`` reuses the recorded episodes of the same
model and planning settings and runs the rest, with identical results. The output path, the seeds and every phase's
planner settings of every requested task are checked before the first episode runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vjepa2_ac.commands.common import (
    BACKENDS,
    OBJECTS,
    TASK_CHOICES,
    add_model_arguments,
    check_writable,
    load_model_or_exit,
    read_report,
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
    parser.add_argument("--suite", default="recipe",
                        help="recipe, paper or shift. "
                             "recipe: the model's planning.json; paper: the paper's protocol (one goal image, the "
                             "gripper searched, the model's search budget only); shift: the recipe under "
                             "--factors (default: %(default)s)")
    parser.add_argument("--factors", nargs="+", default=None, metavar="FACTOR",
                        help="shift suite: some of lighting, table, object_color, camera, distractors, all (every "
                             "factor at once), pybullet (the other simulator); default: all of them")
    parser.add_argument("--compare", default=None, metavar="OTHER.json",
                        help="an earlier eval JSON of the same suite and seeds: adds a paired exact McNemar test "
                             "per cell")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes running episodes, identical results for any number (default: %(default)s; "
                             "use with --threads 1)")
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
    parser.add_argument("--resume", action="store_true",
                        help="reuse the finished episodes recorded next to --json (same model and planning) and run "
                             "the rest")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def episodes_path(json_path: Path) -> Path:
    """Where ``--json OUT.json`` records its finished episodes: ``OUT.episodes.jsonl``."""
    return json_path.with_name(f"{json_path.stem}.episodes.jsonl")


def _load_finished(json_path: Path, identity: dict) -> dict:
    """Finished episodes of the earlier run written to ``json_path``, which must have the same identity (suite,
    model, planning, planner, max steps)."""
    import json

    from vjepa2_ac.eval import EpisodeResult

    report = read_report(json_path, "--resume")
    for key, value in identity.items():
        if report.get(key, "recipe" if key == "suite" else None) != value:
            raise SystemExit(f"--resume: {json_path} was made with another {key} ({report.get(key)!r}, now "
                             f"{value!r}); resume only the same evaluation")
    done = {}
    path = episodes_path(json_path)
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                r = EpisodeResult.from_summary(json.loads(line))
            except (ValueError, TypeError):  # a line cut short by a crash: that episode runs again
                continue
            done[(r.task, r.object, r.backend, r.factor, r.policy, r.seed)] = r
    return done


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import time

    from vjepa2_ac import __version__
    from vjepa2_ac.eval import evaluate, results_table, software_versions
    from vjepa2_ac.eval.stats import compare_cells, relate_to_nominal
    from vjepa2_ac.eval.suite import SHIFT_FACTORS, check_factors, check_suite, suite_planning

    if args.episodes < 1:
        raise SystemExit(f"--episodes must be >= 1, got {args.episodes}")
    if args.seed < 0:
        raise SystemExit(f"--seed must be >= 0 (env seeds are non-negative), got {args.seed}")
    if args.max_steps is not None and args.max_steps < 1:
        raise SystemExit(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.workers < 1:
        raise SystemExit(f"--workers must be >= 1, got {args.workers}")
    if args.baselines_only and not args.baselines:
        raise SystemExit("--baselines-only needs --baselines (random, untrained)")
    if args.resume and not args.json:
        raise SystemExit("--resume needs --json (the file of the evaluation to resume)")
    try:
        check_suite(args.suite)
    except ValueError as err:
        raise SystemExit(f"--suite: {err}") from None
    if args.factors is not None and args.suite != "shift":
        raise SystemExit(f"--factors applies to --suite shift only (this is --suite {args.suite})")
    factors: list = [None]
    if args.suite == "shift":
        try:
            factors += check_factors(args.factors or list(SHIFT_FACTORS))
        except ValueError as err:
            raise SystemExit(f"--factors: {err}") from None
        if "pybullet" in factors and set(args.backend) != {"mujoco"}:
            raise SystemExit("--factors pybullet moves MuJoCo cells to PyBullet: it needs --backend mujoco, got "
                             f"--backend {' '.join(args.backend)}")
    other = read_report(args.compare, "--compare") if args.compare else None
    if other is not None and other.get("suite", "recipe") != args.suite:
        raise SystemExit(f"--compare: {args.compare} is of suite {other.get('suite', 'recipe')!r}, this run is "
                         f"{args.suite!r}; a paired test compares the same suite")
    if other is not None and (other.get("seed"), other.get("episodes")) != (args.seed, args.episodes):
        raise SystemExit(f"--compare: {args.compare} ran seeds {other.get('seed')}.."
                         f"{(other.get('seed') or 0) + (other.get('episodes') or 0) - 1}, this run "
                         f"{args.seed}..{args.seed + args.episodes - 1}; a paired test needs the same seeds")
    json_path = check_writable(args.json, "--json") if args.json else None
    wm, model_planning, description = load_model_or_exit(args)
    planning = suite_planning(args.suite, model_planning)
    versions = software_versions()
    report = {"vjepa2_ac_version": __version__, "suite": args.suite, "versions": versions, "model": description,
              "planner": args.planner or planning.planner.type, "planning": planning.to_dict(),
              "planning_source": planning.source, "max_steps": args.max_steps, "seed": args.seed,
              "episodes": args.episodes, "factors": factors[1:] if args.suite == "shift" else None,
              "compare": args.compare, "cells": []}
    done: dict = {}
    if json_path is not None:
        jsonl = episodes_path(json_path)
        if args.resume:
            identity = {k: report[k] for k in ("suite", "model", "planner", "planning", "max_steps")}
            done = _load_finished(json_path, identity)
            print(f"resuming: {len(done)} finished episodes from {jsonl}")
        else:
            jsonl.unlink(missing_ok=True)
        write_json(json_path, report)  # the header: what is being evaluated

    def save_episode(result) -> None:
        line = json.dumps(result.summary(), default=float) + "\n"
        with open(jsonl, "a") as f:  # one write per line: a crash loses at most the line being written
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    cells = []

    def finished(all_cells) -> list:
        relate_to_nominal(all_cells)
        if other is not None:
            compare_cells(all_cells, other, name=f"--compare {args.compare}")
        return [c.to_dict(episodes=not args.no_episodes_in_json) for c in all_cells]

    def save_cell(cell) -> None:
        cells.append(cell)
        if json_path is not None:
            write_json(json_path, {**report, "cells": finished(cells)})

    start = time.perf_counter()
    try:
        cells = evaluate(wm, planning, tasks=args.task, objects=args.object, backends=args.backend,
                         factors=factors, episodes=args.episodes, seed=args.seed,
                         baselines=list(dict.fromkeys(args.baselines)), planner=args.planner,
                         max_steps=args.max_steps, progress=not args.no_progress,
                         include_model=not args.baselines_only, workers=args.workers, done=done,
                         on_episode=save_episode if json_path else None, on_cell=save_cell)
        cell_dicts = finished(cells)
    except ValueError as err:
        raise SystemExit(f"eval: {err}") from None
    except KeyboardInterrupt:
        kept = f"; finished episodes are kept in {jsonl} (run again with --resume)" if json_path else ""
        print(f"eval: interrupted after {len(cells)} finished cell(s){kept}", file=sys.stderr)
        return 130
    wall = time.perf_counter() - start
    table = results_table(cells)
    print(f"suite {args.suite}; world model: {description}; planner {args.planner or planning.planner.type}; seeds "
          f"{args.seed}..{args.seed + args.episodes - 1}; {wall:.0f} s")
    print(table)
    print("software: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None))
    if json_path is not None:
        final = {**report, "wall_time_s": wall, "table": table, "cells": cell_dicts}
        print(f"wrote {write_json(json_path, final)}")
        from vjepa2_ac.atomic import atomic_write_text

        heading = (f"# eval --suite {args.suite}: {description}\n\nSeeds {args.seed}..{args.seed + args.episodes - 1}, "
                   f"{wall:.0f} s wall time.\n\n")
        print(f"wrote {atomic_write_text(json_path.with_suffix('.md'), heading + table + chr(10))}")
    return 0
