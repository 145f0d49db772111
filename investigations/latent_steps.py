"""How are an encoder's per-step latent changes distributed over a dataset, and which loss suits them?

For every transition ``t -> t+1`` of a latent cache (``vjepa2-ac encode-dataset``), the mean squared change of the
normalised latents ``[N, D]`` is one number. The predictor's training loss is ``mean(|z - h|^p) / p``; for a predictor
that copies the frame it is the transitions' mean change. This script reports:

* median, 99th percentile and maximum of the per-transition change;
* the share of the summed squared change carried by the largest 1% and 5% of transitions: where a few transitions
  carry most of it, a squared loss (``loss_exp: 2``) trains on those few (a wrist camera swinging past the table
  edge), and the small, action-driven changes of the other steps barely move the gradient;
* the same shares for the absolute change (what ``loss_exp: 1``, the official loss, weighs);
* the largest transitions (episode file, step), to look at.

    python investigations/latent_steps.py data/latents                 # every episode
    python investigations/latent_steps.py data/latents --episodes 300  # a random sample of episodes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from vjepa2_ac.training.latent_cache import LatentCache  # noqa: E402


def top_share(values: np.ndarray, fraction: float) -> float:
    """Share of ``values.sum()`` carried by the largest ``fraction`` of the values."""
    k = max(1, int(len(values) * fraction))
    return float(np.sort(values)[::-1][:k].sum() / values.sum())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cache", help="latent cache directory (vjepa2-ac encode-dataset --out)")
    p.add_argument("--episodes", type=int, default=None, help="random sample of this many episodes (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episode sample")
    p.add_argument("--top", type=int, default=8, help="largest transitions listed")
    args = p.parse_args(argv)
    if args.episodes is not None and args.episodes < 1:
        p.error(f"--episodes must be >= 1, got {args.episodes}")
    cache = LatentCache(args.cache)
    episodes = np.arange(len(cache))
    if args.episodes is not None and args.episodes < len(cache):
        episodes = np.sort(np.random.default_rng(args.seed).choice(len(cache), args.episodes, replace=False))
    sq, ab, where = [], [], []
    for i in episodes:
        z, _ = cache.read(int(i), np.arange(cache.episode_length(int(i))))  # [T, N, D]
        d = np.diff(z.astype(np.float64), axis=0)  # [T-1, N, D]
        sq.append((d ** 2).mean(axis=(1, 2)))
        ab.append(np.abs(d).mean(axis=(1, 2)))
        where += [(cache.episode_name(int(i)), t) for t in range(len(d))]
    sq, ab = np.concatenate(sq), np.concatenate(ab)
    print(f"{args.cache}: {len(sq)} transitions of {len(episodes)} episodes, {cache.tokens_per_frame} tokens x "
          f"{cache.embed_dim}\n")
    print("| change per transition | mean | median | p99 | max | top 1% share | top 5% share |")
    print("|---|---|---|---|---|---|---|")
    for name, v in (("mean squared (loss_exp 2)", sq), ("mean absolute (loss_exp 1)", ab)):
        print(f"| {name} | {v.mean():.5f} | {np.median(v):.5f} | {np.quantile(v, 0.99):.4f} | {v.max():.4f} | "
              f"{top_share(v, 0.01):.2f} | {top_share(v, 0.05):.2f} |")
    print(f"\nlargest {args.top} (mean squared change, episode, step t -> t+1):")
    for k in np.argsort(sq)[::-1][:args.top]:
        print(f"  {sq[k]:.4f}  {where[k][0]}  {where[k][1]}")


if __name__ == "__main__":
    main()
