"""Replay recorded episodes of a ``vjepa2-ac eval --json`` file (the simulators are deterministic)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from vjepa2_ac.agent.planning import PlanningConfig, task_name


def load_recorded_cells(path: str | os.PathLike, task: str) -> tuple[PlanningConfig, list[dict[str, Any]]]:
    """The planning config and the ``task`` cells with recorded episodes of a ``vjepa2-ac eval --json`` file (what
    replays need: ``cell["episode_results"]`` holds each episode's seed and actions)."""
    path, task = Path(path), task_name(task)
    data = json.loads(path.read_text())
    cells = [c for c in data.get("cells", []) if c["task"] == task and c.get("episode_results")]
    if not cells:
        raise ValueError(f"{path} has no {task} cell with recorded episodes (eval --json without "
                         f"--no-episodes-in-json writes them)")
    return PlanningConfig.from_dict(data["planning"]), cells


def replay_recorded(env: Any, episode: dict[str, Any], steps: int | None = None,
                    extra: np.ndarray | None = None) -> tuple[dict, dict]:
    """Reset ``env`` to a recorded episode's seed (an ``episode_results`` entry of an eval JSON), replay its first
    ``steps`` actions (all by default), then ``extra``; returns ``(obs, reset info)``. The simulators are
    deterministic, so this reproduces the recorded state."""
    obs, info = env.reset(seed=episode["seed"])
    for action in [*episode["actions"][:steps], *([] if extra is None else [extra])]:
        obs, *_ = env.step(np.asarray(action, dtype=np.float32))
    return obs, info


__all__ = ["load_recorded_cells", "replay_recorded"]
