"""Success statistics: Wilson intervals, the aggregate of a cell of episodes, the paired comparison of two
evaluations on shared seeds (exact McNemar), and the Markdown results table. Intervals and tests are
``scipy.stats``'s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vjepa2_ac.eval.episode import EpisodeResult


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (default 95%); ``(0, 1)`` when ``n == 0``."""
    from scipy.stats import binomtest

    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    low = 0.0 if successes == 0 else max(0.0, float(ci.low))  # exact ends (no rounding residue)
    high = 1.0 if successes == n else min(1.0, float(ci.high))
    return low, high


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Exact McNemar test of paired outcomes ``a[i]`` vs ``b[i]`` (the same seed): the discordant counts
    ``a_only`` (a succeeded, b failed) and ``b_only``, and the two-sided binomial p-value of ``a_only`` among the
    discordant pairs at 1/2 (``1.0`` without discordant pairs)."""
    from scipy.stats import binomtest

    if len(a) != len(b):
        raise ValueError(f"paired outcomes need equal lengths, got {len(a)} and {len(b)}")
    a_only = sum(bool(x) and not bool(y) for x, y in zip(a, b))
    b_only = sum(bool(y) and not bool(x) for x, y in zip(a, b))
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)
    return {"pairs": len(a), "a_only": a_only, "b_only": b_only, "p_value": p}


@dataclass
class CellResult:
    """Aggregate of the episodes of one (task, object, backend, factor, policy) cell.

    factor: the distribution-shift factor (``None``: the nominal scene).
    relative_to_nominal: success rate / that of the same cell's nominal scene in the same run (shift suite).
    compare: the paired test against another evaluation (``eval --compare``): its success rate, the discordant
        counts on the shared seeds and the exact McNemar p-value.
    """

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
    factor: str | None = None
    relative_to_nominal: float | None = None
    compare: dict[str, Any] | None = None
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
                   factor=first.factor, episode_results=[r.summary() for r in results])

    @property
    def key(self) -> tuple:
        """``(task, object, backend, factor, policy)``: what pairs a cell with the same cell of another run."""
        return (self.task, self.object, self.backend, self.factor, self.policy)

    def outcomes(self) -> dict[int, bool]:
        """Success by seed (from the per-episode results)."""
        return {int(e["seed"]): bool(e["success"]) for e in self.episode_results}

    def to_dict(self, episodes: bool = True) -> dict[str, Any]:
        out = asdict(self)
        if not episodes:
            out.pop("episode_results")
        return out


def relate_to_nominal(cells: Sequence[CellResult]) -> None:
    """Set each shifted cell's :attr:`CellResult.relative_to_nominal` from the nominal cell (``factor None``) of
    the same task, object, nominal backend and policy in ``cells`` (``pybullet`` cells relate to the MuJoCo one)."""
    nominal = {(c.task, c.object, c.backend, c.policy): c for c in cells if c.factor is None}
    for c in cells:
        backend = "mujoco" if c.factor == "pybullet" else c.backend
        ref = nominal.get((c.task, c.object, backend, c.policy))
        if c.factor is not None and ref is not None and ref.success_rate > 0:
            c.relative_to_nominal = c.success_rate / ref.success_rate


def compare_cells(cells: Sequence[CellResult], other: dict[str, Any], name: str = "the other run") -> None:
    """Pair each cell with the same cell of ``other`` (an ``eval`` JSON: same suite, per-episode results kept) on
    their shared seeds and set :attr:`CellResult.compare`. ``ValueError`` when the suites or the seeds differ."""
    by_key = {}
    for c in other.get("cells", []):
        if not c.get("episode_results"):
            raise ValueError(f"{name} has no per-episode results (it was written with --no-episodes-in-json); a "
                             "paired test needs them")
        by_key[(c["task"], c["object"], c["backend"], c.get("factor"), c["policy"])] = c
    for cell in cells:
        ref = by_key.get(cell.key)
        if ref is None:
            continue
        theirs = {int(e["seed"]): bool(e["success"]) for e in ref["episode_results"]}
        mine = cell.outcomes()
        if set(theirs) != set(mine):
            raise ValueError(f"{name} ran cell {'/'.join(str(k) for k in cell.key)} on other seeds "
                             f"({_span(theirs)} vs {_span(mine)}); a paired test needs the same seeds")
        seeds = sorted(mine)
        test = mcnemar_exact([mine[s] for s in seeds], [theirs[s] for s in seeds])
        cell.compare = {"other_success_rate": float(ref["success_rate"]), "other_successes": int(ref["successes"]),
                        **test}


def _span(seeds: dict[int, bool]) -> str:
    s = sorted(seeds)
    return f"{len(s)} seeds {s[0]}..{s[-1]}" if s else "no seeds"


def results_table(cells: Sequence[CellResult]) -> str:
    """Markdown table: one row per cell (a factor column when any cell has a factor; the nominal ratio and the
    paired comparison when present)."""
    factors = any(c.factor is not None for c in cells)
    compared = any(c.compare is not None for c in cells)
    head = ["task", "object", "backend", *(["factor"] if factors else []), "policy", "success", "95% CI",
            *(["vs nominal"] if factors else []), *(["other run", "paired p (McNemar)"] if compared else []),
            "mean final distance (cm)", "s / action", "episodes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        row = [c.task, c.object, c.backend, *([c.factor or "none"] if factors else []), c.policy,
               f"{100 * c.success_rate:.0f}% ({c.successes}/{c.episodes})",
               f"{100 * c.ci_low:.0f}-{100 * c.ci_high:.0f}%"]
        if factors:
            row.append("" if c.relative_to_nominal is None else f"{c.relative_to_nominal:.2f}")
        if compared:
            cmp = c.compare
            row += ["", ""] if cmp is None else [f"{100 * cmp['other_success_rate']:.0f}%", f"{cmp['p_value']:.3f}"]
        row += [f"{100 * c.mean_final_distance:.1f}", f"{c.seconds_per_action:.3f}", str(c.episodes)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


__all__ = ["CellResult", "compare_cells", "mcnemar_exact", "relate_to_nominal", "results_table", "wilson_interval"]
