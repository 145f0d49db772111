"""``vjepa2-ac eval-offline``: the jepa-wms offline planning protocol on recorded episodes (see
:mod:`vjepa2_ac.eval.offline`): per ``--data`` path, ``--episodes`` segments (start frame, goal ``--goal-offset``
steps later), each planned once with CEM; the planned and recorded action sums are compared. Prints a Markdown table
and writes JSON (``"suite": "offline"``, one cell per ``--data`` path)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vjepa2_ac.commands.common import (
    add_cost_arguments,
    add_model_arguments,
    check_context_window,
    check_writable,
    load_model_or_exit,
    one_line,
    read_report,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="PATH",
                        help="recorded episodes: a directory of our HDF5 episodes, raw DROID or a LeRobot v3 "
                             "dataset; one result cell per PATH")
    add_model_arguments(parser)
    parser.add_argument("--goal-offset", type=int, default=3, metavar="K",
                        help="goal frame = start + K control steps; the planning horizon (default: %(default)s, "
                             "jepa-wms)")
    parser.add_argument("--episodes", type=int, default=64, metavar="N",
                        help="number of segments (the protocol's 'episodes': a start frame and the goal K steps "
                             "later) per --data path (default: %(default)s, jepa-wms)")
    parser.add_argument("--seed", type=int, default=0,
                        help="segment j is drawn and planned from (SEED, j) (default: %(default)s)")
    parser.add_argument("--planner-budget", choices=("model", "jepa-wms"), default="model",
                        help="CEM samples / elites / iterations: the model's planning.json ('model', default) or "
                             "jepa-wms's 300 / 10 / 15; the search region is jepa-wms's either way")
    add_cost_arguments(parser)
    parser.add_argument("--fps", type=float, default=4.0,
                        help="the model's control rate; faster recordings are subsampled (default: %(default)s Hz)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="segments encoded together (results do not depend on it; default: %(default)s)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--no-segments-in-json", action="store_true", help="leave per-segment records out")
    parser.add_argument("--resume", action="store_true",
                        help="keep the cells already in --json (same model and settings) and run the other --data "
                             "paths")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress lines")


def _open(path: str, goal_offset: int, fps: float):
    """The episode source at ``path`` checked for the protocol, or a one-line exit naming the argument."""
    import json
    import warnings

    from vjepa2_ac.data.clips import open_source
    from vjepa2_ac.data.lerobot import is_lerobot_dataset
    from vjepa2_ac.eval.offline import frames_at_rate
    from vjepa2_ac.model.checkpoint import is_hub_id

    p = Path(path)
    if not p.exists() and not is_hub_id(path):
        raise SystemExit(f"--data {path}: no such file or directory (or hub dataset id owner/name)")
    if is_lerobot_dataset(p):  # a state of another layout: say what is expected (the reader's hint is for code)
        try:
            feature = json.loads((p / "meta" / "info.json").read_text()).get("features", {}).get("observation.state")
        except (OSError, ValueError) as err:
            raise SystemExit(f"--data {path}: cannot read meta/info.json: {one_line(err)}") from None
        shape = list((feature or {}).get("shape", []))
        if feature is not None and shape != [7]:
            raise SystemExit(f"--data {path}: observation.state has shape {shape}; expected 7 dims "
                             "([x, y, z, roll, pitch, yaw, gripper] end-effector state)")
    with warnings.catch_warnings(record=True) as skipped:  # unreadable episode files are skipped with a warning
        warnings.simplefilter("always")
        try:
            source = open_source(p)
        except (OSError, ValueError, KeyError) as err:
            raise SystemExit(f"--data {path}: not a readable episode dataset ({one_line(err)})") from None
    if len(source) == 0:
        why = f"; {len(skipped)} unreadable, e.g. {one_line(skipped[0].message)}" if skipped else ""
        raise SystemExit(f"--data {path}: no readable episodes found (expected HDF5 episodes, raw DROID or "
                         f"LeRobot v3){why}")
    for w in skipped:
        warnings.warn(w.message, stacklevel=2)
    at_rate, _ = frames_at_rate(source, fps)
    if at_rate.max() < goal_offset + 1:
        raise SystemExit(f"--goal-offset {goal_offset} needs episodes of at least {goal_offset + 1} frames at the "
                         f"model's rate ({fps:g} Hz); the longest in {path} has {int(at_rate.max())}")
    return source


def results_table(cells: list[dict]) -> str:
    """Markdown table of the cells (means over segments; the zero-action score for reference)."""
    lines = ["| data | segments | xyz error (m) | orientation error (rad) | gripper error | action score | "
             "score, zero actions | s / segment |", "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        sem = f" ± {c['action_score_sem']:.1f}" if c.get("action_score_sem") is not None else ""
        lines.append(f"| {c['data']} | {c['episodes']} | {c['xyz_error_m']:.4f} | {c['orientation_error_rad']:.4f} | "
                     f"{c['gripper_error']:.3f} | {c['action_score']:.1f}{sem} | "
                     f"{c['zero_action']['action_score']:.1f} | {c['seconds_per_segment']:.2f} |")
    return "\n".join(lines)


def dumps_report(report: dict) -> str:
    """``report`` as indented JSON with each per-segment record on one line (200 segments: about 70 KB)."""
    import json

    blocks: dict[str, str] = {}

    def mark(cell: dict) -> dict:
        if not cell.get("segments"):
            return cell
        key = f"@@segments-{len(blocks)}@@"
        lines = ",\n".join("      " + json.dumps(s, default=str) for s in cell["segments"])
        blocks[key] = f"[\n{lines}\n    ]"
        return {**cell, "segments": key}

    text = json.dumps({**report, "cells": [mark(c) for c in report.get("cells", [])]}, indent=2, default=str)
    for key, block in blocks.items():
        text = text.replace(f'"{key}"', block)
    return text + "\n"


def _relative_names(cell: dict, path: str) -> dict:
    """Episode names of the segments relative to their ``--data`` path (shorter JSON)."""
    prefix = str(Path(path)).rstrip("/") + "/"
    for seg in cell.get("segments", []):
        seg["episode"] = seg["episode"].removeprefix(prefix).removeprefix(str(Path(path)) + " ")
    return cell


RESUME_KEYS = ("model", "planner_budget", "planner", "cost", "context_window", "goal_offset", "episodes", "seed", "fps")


def _finished_cells(json_path: Path, report: dict) -> dict[str, dict]:
    """The cells of an earlier run in ``json_path`` by ``--data`` path; ``{}`` when there is none yet. The run must
    have the same model and settings (:data:`RESUME_KEYS`)."""
    import json

    if not json_path.is_file():
        return {}
    earlier = read_report(json_path, "--resume")
    if earlier.get("suite") != "offline":
        raise SystemExit(f"--resume: {json_path} is not an eval-offline JSON (suite {earlier.get('suite')!r})")
    for key in RESUME_KEYS:
        if earlier.get(key) != json.loads(json.dumps(report.get(key))):  # as the JSON holds it
            raise SystemExit(f"--resume: {json_path} was made with another {key} ({earlier.get(key)!r}, now "
                             f"{report.get(key)!r}); resume only the same evaluation")
    return {cell["data"]: cell for cell in earlier["cells"] if isinstance(cell, dict) and "data" in cell}


def run(args: argparse.Namespace) -> int:
    import math
    import time

    from vjepa2_ac import __version__
    from vjepa2_ac.atomic import atomic_write_text
    from vjepa2_ac.eval.offline import OfflineConfig, evaluate_offline, offline_planner, planner_dict
    from vjepa2_ac.eval.suite import software_versions

    if args.goal_offset < 1:
        raise SystemExit(f"--goal-offset must be >= 1 (control steps to the goal), got {args.goal_offset}")
    if args.episodes < 1:
        raise SystemExit(f"--episodes must be >= 1 (segments per --data path), got {args.episodes}")
    if args.seed < 0:
        raise SystemExit(f"--seed must be >= 0, got {args.seed}")
    if not (math.isfinite(args.fps) and args.fps > 0):
        raise SystemExit(f"--fps must be > 0, got {args.fps}")
    if args.batch_size < 1:
        raise SystemExit(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.resume and not args.json:
        raise SystemExit("--resume needs --json (the file of the run to resume)")
    json_path = check_writable(args.json, "--json") if args.json else None
    sources = [(path, _open(path, args.goal_offset, args.fps)) for path in args.data]
    wm, planning, description = load_model_or_exit(args)
    try:
        planner = offline_planner(args.planner_budget, args.goal_offset, planning)
    except ValueError as err:
        raise SystemExit(f"--planner-budget {args.planner_budget}: {one_line(err)}") from None
    check_context_window(args, "eval-offline")
    config = OfflineConfig(goal_offset=args.goal_offset, segments=args.episodes, seed=args.seed, fps=args.fps,
                           planner=planner, budget=args.planner_budget, cost=args.cost,
                           context_window=args.context_window, batch_size=args.batch_size)
    versions = software_versions()
    report = {"suite": "offline", "vjepa2_ac_version": __version__, "versions": versions, "model": description,
              "planner_budget": args.planner_budget, "planner": planner_dict(planner), "cost": config.cost,
              "context_window": config.context_window,
              "goal_offset": args.goal_offset, "episodes": args.episodes, "seed": args.seed, "fps": args.fps,
              "cells": []}

    def progress(path: str):
        def report_progress(done: int, total: int) -> None:
            if not args.no_progress and (done == total or done % max(1, total // 10) == 0):
                print(f"eval-offline: {path}: {done}/{total} segments", file=sys.stderr, flush=True)
        return report_progress

    done = _finished_cells(json_path, report) if args.resume else {}
    cells = []
    start = time.perf_counter()
    for path, source in sources:
        if path in done:
            print(f"eval-offline: {path}: kept from {json_path}", file=sys.stderr, flush=True)
            cells.append(done[path])
            continue
        try:
            result = evaluate_offline(wm, source, config, progress=progress(path))
        except ValueError as err:
            raise SystemExit(f"--data {path}: {one_line(err)}") from None
        cells.append(_relative_names({"data": path, **result.to_dict(segments=not args.no_segments_in_json)}, path))
        if json_path is not None:  # a finished cell is never lost
            atomic_write_text(json_path, dumps_report({**report, "cells": cells}))
    wall = time.perf_counter() - start
    table = results_table(cells)
    print(f"world model: {description}; CEM {planner.samples} samples x {planner.iterations} iterations "
          f"({args.planner_budget} budget), horizon {args.goal_offset}, {args.cost.upper()} cost"
          f"{'' if args.context_window is None else f', window {args.context_window}'}; seed {args.seed}; {wall:.0f} s")
    print(table)
    if json_path is not None:
        final = {**report, "wall_time_s": wall, "table": table, "cells": cells}
        print(f"wrote {atomic_write_text(json_path, dumps_report(final))}")
    return 0
