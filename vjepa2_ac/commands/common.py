"""Helpers shared by the CLI commands: threads, the model arguments, the task / object / backend choices, and
writing an output file atomically with a one-line error."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from envs.tasks import TASK_NAMES

TASK_CHOICES = TASK_NAMES  # one spelling everywhere: envs.tasks
OBJECTS = ("cube", "cup")
BACKENDS = ("mujoco", "pybullet")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is often fastest on a busy machine)")


def apply_threads(args: argparse.Namespace) -> None:
    """``torch.set_num_threads(args.threads)`` when given (exits with a clear message when < 1)."""
    if getattr(args, "threads", None) is None:
        return
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--checkpoint``, ``--planning``, ``--device``, ``--threads`` (demo, eval, landscape)."""
    parser.add_argument("--model", default="vjepa2-ac-sim-small",
                        help="world model: a local save_pretrained directory, a bundled or hub name, or (with "
                             "--checkpoint) the encoder id, e.g. facebook/vjepa2-vitg-fpc64-256 "
                             "(default: %(default)s)")
    parser.add_argument("--checkpoint", default=None,
                        help="released AC checkpoint (vjepa2-ac-vitg.pt path or URL); --model is then the encoder")
    parser.add_argument("--planning", default=None,
                        help="planning.json to use instead of the model's own (camera, image size, planner, ...)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    add_threads_argument(parser)


def load_model_or_exit(args: argparse.Namespace):
    """``(world_model, planning_config, description)``, or print one line and exit with status 2."""
    from vjepa2_ac.agent import ModelNotAvailable, load_world_model

    apply_threads(args)
    try:
        return load_world_model(args.model, checkpoint=args.checkpoint, device=args.device, planning=args.planning)
    except (ModelNotAvailable, ValueError, FileNotFoundError) as err:
        print(f"vjepa2-ac: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def one_line(err: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    return " ".join(str(err).split()) or type(err).__name__


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON at ``path``, atomically (temp file, then rename; mode 0644)."""
    import json

    from vjepa2_ac.atomic import atomic_write_text

    return atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def check_writable(path: str | Path, option: str) -> Path:
    """Exit with one line unless a file can be written at ``path`` (checked before any work starts): not a
    directory, its directory creatable and writable."""
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise SystemExit(f"{option}: {path} is a directory; give a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".check"):
            pass
    except OSError as err:
        raise SystemExit(f"{option}: cannot write {path}: {err.strerror or err}") from None
    return path


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Exit with one line unless ``path`` is, or can be made, a writable directory (checked before any work
    starts; nothing is created here)."""
    import os

    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == path and not path.is_dir():
        raise SystemExit(f"{option}: {path} exists and is not a directory")
    if not existing.is_dir():
        raise SystemExit(f"{option}: cannot create {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SystemExit(f"{option}: cannot create {path}: {existing} is not writable")
    return path


def add_cost_arguments(parser: argparse.ArgumentParser, *, saved: bool = False) -> None:
    """``--cost`` and ``--context-window``: the planning energy and the rollout window (jepa-wms: l2 and 2);
    ``saved``: the values are stored with a model rather than used for one run."""
    what = "saved with the model" if saved else "used to plan"
    parser.add_argument("--cost", choices=("l1", "l2"), default="l1",
                        help=f"planning energy {what}: mean |z - goal| (l1, official, default) or mean squared "
                             "(l2, jepa-wms)")
    parser.add_argument("--context-window", type=int, default=None, metavar="W",
                        help=f"rollout window {what}: each step sees the last W frames (jepa-wms: 2); default: "
                             "the whole history")


def check_context_window(args: argparse.Namespace, prog: str) -> None:
    if args.context_window is not None and args.context_window < 1:
        raise SystemExit(f"{prog}: --context-window must be >= 1 (frames each rollout step sees), got "
                         f"{args.context_window}")


def read_report(path: str | Path, option: str) -> dict:
    """An earlier eval / eval-offline JSON (a dict with a ``"cells"`` list), or a one-line exit naming ``option``."""
    import json

    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"{option}: cannot read {path}: {err}") from None
    if not isinstance(report, dict) or not isinstance(report.get("cells"), list):
        raise SystemExit(f"{option}: {path} is not an eval JSON (no \"cells\" list)")
    return report
