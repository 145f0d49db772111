"""Success statistics: Wilson intervals, the aggregate of a cell of episodes, and the Markdown results table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vjepa2_ac.eval.episode import EpisodeResult


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (default 95%); ``(0, 1)`` when ``n == 0``."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends (no rounding residue)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclass
class CellResult:
    """Aggregate of the episodes of one (task, object, backend, policy) cell."""

    task: str
    object: str
    backend: str
    policy: str
    episodes: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_final_distance: float
    seconds_per_action: float
    mean_steps: float
    seeds: list[int]
    episode_results: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @classmethod
    def from_episodes(cls, results: Sequence[EpisodeResult]) -> CellResult:
        if not results:
            raise ValueError("a cell needs at least one episode")
        first, n = results[0], len(results)
        wins = sum(r.success for r in results)
        low, high = wilson_interval(wins, n)
        latencies = [x for r in results for x in r.latencies]
        return cls(task=first.task, object=first.object, backend=first.backend, policy=first.policy, episodes=n,
                   successes=wins, success_rate=wins / n, ci_low=low, ci_high=high,
                   mean_final_distance=float(np.mean([r.final_distance for r in results])),
                   seconds_per_action=float(np.mean(latencies)) if latencies else float("nan"),
                   mean_steps=float(np.mean([r.steps for r in results])), seeds=[r.seed for r in results],
                   episode_results=[r.summary() for r in results])

    def to_dict(self, episodes: bool = True) -> dict[str, Any]:
        out = asdict(self)
        if not episodes:
            out.pop("episode_results")
        return out


def results_table(cells: Sequence[CellResult]) -> str:
    """Markdown table: one row per cell."""
    lines = ["| task | object | backend | policy | success | 95% CI | mean final distance (cm) | s / action | episodes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {c.task} | {c.object} | {c.backend} | {c.policy} | {100 * c.success_rate:.0f}% "
                     f"({c.successes}/{c.episodes}) | {100 * c.ci_low:.0f}-{100 * c.ci_high:.0f}% | "
                     f"{100 * c.mean_final_distance:.1f} | {c.seconds_per_action:.3f} | {c.episodes} |")
    return "\n".join(lines)


__all__ = ["CellResult", "results_table", "wilson_interval"]
