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
    parser.add_argument("--expert-kwargs", default="{}",
                        help='JSON dict of extra expert arguments (scripted expert: {"miss": 0.5} for near-miss grasps)')
    parser.add_argument("--env-kwargs", default="{}", help="JSON dict of extra gymnasium.make arguments")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _json_object(flag: str, text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise SystemExit(f"collect: {flag} must be a JSON object: {err}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"collect: {flag} must be a JSON object, got {text!r}") from None
    return value


def run(args: argparse.Namespace) -> int:
    from vjepa2_ac.data.collect import CollectConfig, CollectError, collect

    env_kwargs, expert_kwargs = (_json_object(flag, text) for flag, text in
                                 (("--env-kwargs", args.env_kwargs), ("--expert-kwargs", args.expert_kwargs)))
    try:
        config = CollectConfig(
            env_id=args.env, policy=args.policy, episodes=args.episodes, out=args.out, workers=args.workers,
            seed=args.seed, image_size=args.image_size, camera=args.camera, max_steps=args.max_steps,
            noise=args.noise, expert_kwargs=expert_kwargs, env_kwargs=env_kwargs,
        )
        summary = collect(config, progress=not args.no_progress)
    except CollectError as err:  # bad settings, unknown env, dataset with other settings: one line, no traceback
        raise SystemExit(f"collect: {err}") from None
    print(f"wrote {summary.written} episodes ({summary.skipped} already there) to {config.out}: "
          f"{summary.successes}/{summary.written} successful, {summary.steps} steps, "
          f"{summary.episodes_per_minute:.1f} episodes/min")
    return 0
