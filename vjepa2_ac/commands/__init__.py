"""Sub-commands of the ``vjepa2-ac`` CLI: one module per command, each with ``configure(parser)`` and ``run(args)``.

Command modules keep heavy imports (torch, mujoco) inside ``run`` so that ``vjepa2-ac --help`` is fast.
"""

from __future__ import annotations

import argparse


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
