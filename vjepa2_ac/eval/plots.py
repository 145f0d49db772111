"""Figures (matplotlib's ``Figure`` API, no pyplot and no global backend; written to PNG atomically).

* :func:`plot_episode_sheet`: the phases' goal images, frames of the episode and the energy per step.
* :func:`plot_landscape`: the energy landscape over xyz deltas as heatmaps over (dx, dz) and (dx, dy), with the
  argmin and a reference move marked (as the V-JEPA 2 paper's figure).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vjepa2_ac.atomic import atomic_path

if TYPE_CHECKING:
    from vjepa2_ac.eval.landscape import Landscape

REDUCTIONS = ("mean", "min", "slice")


def _figure(**kwargs):
    from matplotlib.figure import Figure

    return Figure(**kwargs)  # no pyplot: nothing global, nothing shown


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """``fig`` -> PNG at ``path`` via a temp file renamed on success."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)


def _show(ax, image: np.ndarray, title: str) -> None:
    ax.imshow(np.asarray(image))
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_episode_sheet(path: str | os.PathLike, *, goals: Sequence[tuple[str, np.ndarray]], frames: np.ndarray,
                       energies: Sequence[float] = (), frame_energies: Sequence[float] = (),
                       phases: Sequence[int] = (), title: str = "", max_frames: int = 8) -> Path:
    """PNG sheet: row 1 the goal image of each phase (``(name, uint8 [H, W, 3])`` pairs), row 2 up to
    ``max_frames`` evenly spaced frames ``[T, H, W, 3]`` (frame 0 = after reset), row 3 the plan energy and
    observed-frame energy per step, with the phase switches (``phases``: the phase index of each step)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"frames must be [T >= 1, H, W, 3], got shape {frames.shape}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    shown = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))
    cols = max(len(goals), len(shown), 1)
    fig = _figure(figsize=(1.6 * cols, 1.6 * 2 + 2.4), layout="constrained")
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=[1, 1, 1.5])
    for i, ax in enumerate(top.subplots(1, cols, squeeze=False)[0]):
        if i < len(goals):
            name, image = goals[i]
            _show(ax, image, name if len(goals) == 1 else f"{i + 1}: {name}")
        else:
            ax.axis("off")
    for i, ax in enumerate(middle.subplots(1, cols, squeeze=False)[0]):
        if i < len(shown):
            _show(ax, frames[shown[i]], f"t = {shown[i]}")
        else:
            ax.axis("off")
    ax = bottom.subplots()
    steps = np.arange(len(energies))
    if len(energies):
        ax.plot(steps, energies, "o-", ms=3, label="plan (predicted) energy")
    if len(frame_energies):
        ax.plot(np.arange(len(frame_energies)), frame_energies, "s--", ms=3, label="observed frame energy")
    for t in range(1, len(phases)):
        if phases[t] != phases[t - 1]:
            ax.axvline(t - 0.5, color="grey", ls=":", lw=1)
            ax.text(t - 0.5, 1.0, f" phase {phases[t] + 1}", transform=ax.get_xaxis_transform(),
                    fontsize=7, va="top", color="grey")
    if len(energies) or len(frame_energies):
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no energies (random actions)", ha="center", va="center", transform=ax.transAxes)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel("energy (mean |z - z_goal|)")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def reduce_landscape(energies: np.ndarray, axis: int, how: str = "mean", index: int | None = None) -> np.ndarray:
    """``[G, G, G]`` -> ``[G, G]`` over ``axis``: ``mean`` (the sum up to a constant), ``min``, or ``slice`` at
    ``index`` (default: the middle, delta 0)."""
    energies = np.asarray(energies)
    if energies.ndim != 3:
        raise ValueError(f"energies must be [G, G, G], got shape {energies.shape}")
    if how == "mean":
        return energies.mean(axis=axis)
    if how == "min":
        return energies.min(axis=axis)
    if how == "slice":
        return np.take(energies, energies.shape[axis] // 2 if index is None else index, axis=axis)
    raise ValueError(f"reduce must be one of {REDUCTIONS}, got {how!r}")


def plot_landscape(path: str | os.PathLike, landscape: Landscape, *, frame: np.ndarray | None = None,
                   goal: np.ndarray | None = None, reduce: str = "mean", title: str = "",
                   reference_label: str = "ground truth") -> Path:
    """PNG: (current frame, goal frame,) energy over (dx, dz) and over (dx, dy) in cm, the third axis reduced
    by ``reduce`` (``slice`` takes the argmin's plane); argmin marked with a star, reference move with a cross."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    d = 100 * np.asarray(landscape.deltas)
    e = np.asarray(landscape.energies)
    best = np.unravel_index(int(e.argmin()), e.shape)
    images = [(img, name) for img, name in ((frame, "current frame"), (goal, "goal frame")) if img is not None]
    fig = _figure(figsize=(3.2 * (len(images) + 2), 3.4), layout="constrained")
    axes = fig.subplots(1, len(images) + 2, squeeze=False)[0]
    for ax, (img, name) in zip(axes, images):
        _show(ax, img, name)
    half = (d[1] - d[0]) / 2
    extent = (d[0] - half, d[-1] + half, d[0] - half, d[-1] + half)
    amin = 100 * np.asarray(landscape.argmin_delta)
    ref = None if landscape.reference_delta is None else 100 * np.asarray(landscape.reference_delta)
    lim = d[-1] + half
    emin = float(e.min())
    # (reduced axis, vertical action index, its name): energies are indexed (dx, dy, dz)
    for ax, (reduced, vertical, label) in zip(axes[len(images):], ((1, 2, "dz"), (2, 1, "dy"))):
        plane = reduce_landscape(e, reduced, reduce, index=best[reduced]) - emin  # [G(dx), G(other)]
        im = ax.imshow(plane.T, origin="lower", extent=extent, cmap="viridis", aspect="equal")
        fig.colorbar(im, ax=ax, shrink=0.8, label=f"energy - {emin:.4f}")
        ax.plot(amin[0], amin[vertical], marker="*", color="white", mec="black", ms=14, ls="", label="argmin")
        if ref is not None:
            point = np.array([ref[0], ref[vertical]])
            inside = bool(np.all(np.abs(point) <= lim))
            text = reference_label if inside else (
                f"{reference_label} (outside the grid: dx {point[0]:+.1f}, {label} {point[1]:+.1f} cm)")
            shown = np.clip(point, -lim, lim)
            ax.plot(*shown, marker="X", ms=10, ls="", mec="red" if not inside else "white",
                    color="red" if inside else "none", mew=1.5, label=text, clip_on=False)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        other = "dy" if reduced == 1 else "dz"
        how = f"{reduce} over {other}" if reduce != "slice" else f"{other} = {d[best[reduced]]:.1f} cm"
        ax.set_title(f"energy over (dx, {label}), {how}", fontsize=8)
        ax.set_xlabel("dx (cm)")
        ax.set_ylabel(f"{label} (cm)")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), framealpha=0.6)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
