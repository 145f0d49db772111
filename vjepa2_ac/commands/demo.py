"""``vjepa2-ac demo``: one simulated episode planned by a world model from goal images (default: MuJoCo
pick-and-place of the cube with the bundled model, the phases of its planning.json, CEM MPC). Writes the episode video
(MP4, or GIF when no MP4 encoder is available), a PNG sheet (sub-goals, frames, energy per step) and
``summary.json`` into ``--out``; prints success and seconds per action."""

from __future__ import annotations

import argparse

from vjepa2_ac.commands.common import (
    BACKENDS,
    OBJECTS,
    TASK_CHOICES,
    add_model_arguments,
    check_output_dir,
    load_model_or_exit,
    write_json,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="vjepa2ac_demo", help="output directory (default: ./%(default)s/)")
    parser.add_argument("--task", default="pick-place", choices=TASK_CHOICES)
    parser.add_argument("--object", default="cube", choices=OBJECTS)
    parser.add_argument("--backend", default="mujoco", choices=BACKENDS)
    parser.add_argument("--planner", default=None, choices=["cem", "mppi", "icem", "gradient"],
                        help="planner (default: the model's planning.json, else cem)")
    add_model_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="env and planner seed (default: %(default)s)")
    parser.add_argument("--max-steps", type=int, default=None, help="actions per episode (default: planning.json)")
    parser.add_argument("--video-size", type=int, default=256,
                        help="pixel size of the video frames rendered from the planning camera (0 = the model's "
                             "own observations; default: %(default)s)")
    parser.add_argument("--fps", type=float, default=4.0, help="video frame rate (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from vjepa2_ac.agent import make_env
    from vjepa2_ac.data.video import write_video
    from vjepa2_ac.eval import run_episode
    from vjepa2_ac.eval.plots import plot_episode_sheet

    if args.max_steps is not None and args.max_steps < 1:
        raise SystemExit(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.video_size < 0:
        raise SystemExit(f"--video-size must be >= 0, got {args.video_size}")
    check_output_dir(args.out)
    wm, planning, description = load_model_or_exit(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"world model: {description}; planner: {args.planner or planning.planner.type}; camera {planning.camera} "
          f"at {planning.image_size} px")
    env = make_env(planning, args.task, object=args.object, backend=args.backend, max_steps=args.max_steps)
    view = (planning.camera, args.video_size) if args.video_size and args.video_size != planning.image_size else None
    try:
        result = run_episode(env, wm, planning, args.task, seed=args.seed, max_steps=args.max_steps,
                             planner=args.planner, record_frames=True, view=view, progress=not args.no_progress)
    finally:
        env.close()
    stem = f"{args.task}_{args.object}_{args.backend}_seed{args.seed}"
    video = write_video(result.frames, out / f"{stem}.mp4", fps=args.fps)
    sheet = plot_episode_sheet(
        out / f"{stem}.png", goals=result.goals, frames=result.frames, energies=result.energies,
        frame_energies=result.frame_energies, phases=result.phases,
        title=f"{args.task} / {args.object} / {args.backend}, seed {args.seed}: "
              f"{'success' if result.success else 'failure'} in {result.steps} steps")
    summary = {**result.summary(), "model": description, "video": str(video), "sheet": str(sheet)}
    write_json(out / f"{stem}.json", summary)
    print(f"{'SUCCESS' if result.success else 'FAILURE'}: {args.task} {args.object} ({args.backend}), "
          f"{result.steps} actions, final distance {100 * result.final_distance:.1f} cm, "
          f"{result.seconds_per_action:.3f} s per action (median {np.median(result.latencies):.3f} s)")
    print(f"wrote {video}, {sheet} and {out / f'{stem}.json'}")
    return 0
