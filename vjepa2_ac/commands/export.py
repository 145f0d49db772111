"""``vjepa2-ac export --format lerobot --data DIR [DIR ...] --out DIR``: collected or robot-loop episodes (this
library's HDF5 files) as a LeRobotDataset v3.0 directory (:mod:`vjepa2_ac.data.lerobot_export`)."""

from __future__ import annotations

import argparse

from vjepa2_ac.commands.common import check_output_dir, one_line


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("lerobot",), required=True, help="output format (LeRobotDataset v3.0)")
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="episode directories (searched recursively) or episode files")
    parser.add_argument("--out", required=True, help="the dataset directory to write (replaced atomically)")
    parser.add_argument("--task", default=None, help="task text of every episode (default: each episode's env id)")
    parser.add_argument("--fps", type=float, default=None, help="control rate (default: the episodes' control_hz)")
    parser.add_argument("--robot-type", default="franka", help="meta/info.json robot_type (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vjepa2_ac.data.episode import EpisodeFormatError
    from vjepa2_ac.data.index import episode_files
    from vjepa2_ac.data.lerobot_export import export_lerobot

    files = []
    for item in args.data:
        path = Path(item)
        if not path.exists():
            raise SystemExit(f"export: --data {item}: no such file or directory")
        found = [path] if path.is_file() else episode_files(path)
        if not found:
            raise SystemExit(f"export: --data {item}: no episode files (*.h5) found")
        files += found
    check_output_dir(args.out)
    try:
        out = export_lerobot(files, args.out, fps=args.fps, task=args.task, robot_type=args.robot_type)
    except (EpisodeFormatError, ValueError, OSError, RuntimeError) as err:
        raise SystemExit(f"export: {one_line(err)}") from None
    print(f"wrote {out}: {len(files)} episodes, LeRobotDataset v3.0")
    return 0
