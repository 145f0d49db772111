"""``vjepa2-ac collect``: record episodes from a simulated env into a dataset directory (resumable)."""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="vjepa2ac/FrankaPickPlace-v0", help="Gymnasium env id")
    parser.add_argument("--policy", default="expert", choices=["expert", "noisy-expert", "random", "mix"])
    parser.add_argument("--episodes", type=int, required=True, help="total episodes in the dataset (>= 1)")
    parser.add_argument("--out", required=True, help="dataset directory (episodes already there are kept; refused if collected with other settings)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--seed", type=int, default=0, help="collection seed (episode i uses a seed derived from it)")
    parser.add_argument("--image-size", type=int, default=128, help="rendered frame size (pixels)")
    parser.add_argument("--camera", default=None, help="camera name (env default if omitted)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap on steps per episode")
    parser.add_argument("--noise", type=float, default=0.01,
                        help="noisy-expert action noise (scripted expert: translation std in metres)")
    parser.add_argument("--env-kwargs", default="{}", help="JSON dict of extra gymnasium.make arguments")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from vjepa2_ac.data.collect import CollectConfig, CollectError, collect

    try:
        env_kwargs = json.loads(args.env_kwargs)
    except json.JSONDecodeError as err:
        raise SystemExit(f"collect: --env-kwargs must be a JSON object: {err}") from None
    if not isinstance(env_kwargs, dict):
        raise SystemExit(f"collect: --env-kwargs must be a JSON object, got {args.env_kwargs!r}")
    try:
        config = CollectConfig(
            env_id=args.env, policy=args.policy, episodes=args.episodes, out=args.out, workers=args.workers,
            seed=args.seed, image_size=args.image_size, camera=args.camera, max_steps=args.max_steps,
            noise=args.noise, env_kwargs=env_kwargs,
        )
        summary = collect(config, progress=not args.no_progress)
    except CollectError as err:  # bad settings, unknown env, dataset with other settings: one line, no traceback
        raise SystemExit(f"collect: {err}") from None
    print(f"wrote {summary.written} episodes ({summary.skipped} already there) to {config.out}: "
          f"{summary.successes}/{summary.written} successful, {summary.steps} steps, "
          f"{summary.episodes_per_minute:.1f} episodes/min")
    return 0
