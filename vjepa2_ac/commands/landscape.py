"""``vjepa2-ac landscape``: the one-step energy landscape over a grid of xyz deltas around the current pose for a
(frame, goal) pair, as the V-JEPA 2 paper's figure, to PNG (+ the raw grid as ``.npz``).

Sources: ``--example franka`` (the official repository's two real Franka frames; the ground-truth move is marked),
``--frame A.png --goal B.png --state x y z roll pitch yaw g``, or ``--env TASK --seed S`` (a simulated reset: its
observation, goal image (``--goal-name NAME``, e.g. ``grasped``; default the task's final goal) and state; the move to the goal state is marked)."""

from __future__ import annotations

import argparse

from vjepa2_ac.commands.common import BACKENDS, OBJECTS, TASK_CHOICES, add_model_arguments, load_model_or_exit


def configure(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--example", choices=["franka"], default=None,
                        help="the official example frames (default source when no other is given)")
    source.add_argument("--frame", default=None, help="current frame image (PNG/JPEG); needs --goal and --state")
    source.add_argument("--env", default=None, choices=TASK_CHOICES, help="a simulated task reset")
    parser.add_argument("--goal", default=None, help="goal image for --frame")
    parser.add_argument("--state", type=float, nargs=7, default=None, metavar=("X", "Y", "Z", "R", "P", "YAW", "G"),
                        help="end-effector state for --frame")
    parser.add_argument("--seed", type=int, default=0, help="env seed for --env (default: %(default)s)")
    parser.add_argument("--object", default="cube", choices=OBJECTS, help="object for --env")
    parser.add_argument("--backend", default="mujoco", choices=BACKENDS, help="backend for --env")
    parser.add_argument("--goal-name", default="final",
                        help="for --env: the goal image to use, by name (e.g. grasped; default: %(default)s)")
    add_model_arguments(parser)
    parser.add_argument("--grid", type=int, default=5, help="points per axis (default: %(default)s)")
    parser.add_argument("--radius", type=float, default=0.075, help="largest delta per axis, m (default: %(default)s)")
    parser.add_argument("--reduce", default="mean", choices=["mean", "min", "slice"],
                        help="how the third axis is collapsed in each heatmap (default: %(default)s)")
    parser.add_argument("--out", default="landscape.png", help="output PNG (default: %(default)s)")


def _read_image(path: str, name: str):
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise SystemExit(f"--{name}: cannot read image {path!r}: {err}") from None


def _source(args: argparse.Namespace, planning):
    """(frame, goal, state, reference_delta or None, reference label, title)."""
    import numpy as np

    if args.frame is not None:
        if args.goal is None or args.state is None:
            raise SystemExit("--frame needs --goal IMAGE and --state X Y Z ROLL PITCH YAW G")
        if not np.all(np.isfinite(args.state)):
            raise SystemExit(f"--state must be 7 finite numbers, got {args.state}")
        return (_read_image(args.frame, "frame"), _read_image(args.goal, "goal"), np.asarray(args.state, np.float32),
                None, "", f"{args.frame} -> {args.goal}")
    if args.goal is not None or args.state is not None:
        raise SystemExit("--goal and --state go with --frame")
    if args.env is not None:
        from vjepa2_ac.agent import make_env

        env = make_env(planning, args.env, object=args.object, backend=args.backend)
        try:
            obs, info = env.reset(seed=args.seed)
        finally:
            env.close()
        name = args.goal_name
        if name not in info["goals"]:
            raise SystemExit(f"--goal-name: the {args.env} env renders {list(info['goals'])}, got {name!r}")
        state = obs["agent_pos"]
        return (obs["pixels"], info["goals"][name], state, np.asarray(info["goal_states"][name][:3] - state[:3]),
                "move to goal state", f"{args.env} ({args.object}, {args.backend}) seed {args.seed}, goal {name}")
    from vjepa2_ac.data.franka_example import load_franka_example

    ex = load_franka_example()
    return (ex["frames"][0], ex["frames"][1], ex["states"][0], ex["gt_action"][:3], "ground truth",
            "Franka example (official repository)")


def run(args: argparse.Namespace) -> int:
    import io
    from pathlib import Path

    import numpy as np

    from vjepa2_ac.atomic import atomic_write_bytes
    from vjepa2_ac.eval.landscape import energy_landscape
    from vjepa2_ac.eval.plots import plot_landscape

    if args.grid < 2:
        raise SystemExit(f"--grid must be >= 2, got {args.grid}")
    if not args.radius > 0:
        raise SystemExit(f"--radius must be > 0, got {args.radius}")
    if args.goal_name != "final" and args.env is None:
        raise SystemExit("--goal-name goes with --env")
    wm, planning, description = load_model_or_exit(args)
    frame, goal, state, ref, ref_label, title = _source(args, planning)
    land = energy_landscape(wm, frame, goal, state, grid=args.grid, radius=args.radius, reference_delta=ref)
    out = Path(args.out)
    plot_landscape(out, land, frame=frame, goal=goal, reduce=args.reduce, title=f"{title}\n{description}",
                   reference_label=ref_label)
    buffer = io.BytesIO()
    np.savez(buffer, deltas=land.deltas, energies=land.energies, actions=land.actions, argmin_delta=land.argmin_delta,
             reference_delta=np.full(3, np.nan) if ref is None else ref)
    npz = atomic_write_bytes(out.with_suffix(".npz"), buffer.getvalue(), fsync=False)
    a = 100 * land.argmin_delta
    line = f"argmin delta (cm): dx {a[0]:+.1f}, dy {a[1]:+.1f}, dz {a[2]:+.1f}"
    if ref is not None:
        r = 100 * np.asarray(ref)
        line += f"; {ref_label} (cm): dx {r[0]:+.1f}, dy {r[1]:+.1f}, dz {r[2]:+.1f}"
    print(line)
    print(f"energy range {land.energies.min():.4f} .. {land.energies.max():.4f}; wrote {out} and "
          f"{npz}")
    return 0
