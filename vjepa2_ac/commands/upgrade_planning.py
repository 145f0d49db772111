"""``vjepa2-ac upgrade-planning OLD.json [--out NEW.json]``: convert a ``planning.json`` written before phases
(``planner_preset``, ``planner_config``, ``switch_after``, ``subgoal_planner_config``, ``fallback_after`` ...) into
phases. Episodes planned with the result take the same actions. Prints the new file, or writes it to ``--out``."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="the old planning.json (or a model directory holding one)")
    parser.add_argument("--out", default=None, help="write the converted file here (default: print it)")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from vjepa2_ac.agent.planning import FILE_NAME, PlanningConfig, upgrade_planning_dict
    from vjepa2_ac.commands.common import write_json

    path = Path(args.path)
    path = path / FILE_NAME if path.is_dir() else path
    try:
        old = json.loads(path.read_text())
        new = upgrade_planning_dict(old)
        PlanningConfig.from_dict(new)  # the result must load
    except (OSError, json.JSONDecodeError, ValueError) as err:
        raise SystemExit(f"upgrade-planning: {path}: {err}") from None
    if args.out is None:
        print(json.dumps(new, indent=2))
    else:
        print(f"wrote {write_json(args.out, new)}")
    return 0
