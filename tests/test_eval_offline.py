"""``vjepa2-ac eval-offline`` and :mod:`vjepa2_ac.eval.offline`: the jepa-wms offline planning protocol on recorded
episodes (metrics, segment sampling, determinism, fps subsampling, the CLI and its one-line errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from planners.protocol import Plan
from vjepa2_ac.agent import PlanningConfig
from vjepa2_ac.cli import main
from vjepa2_ac.data.clips import open_source
from vjepa2_ac.data.episode import write_episode
from vjepa2_ac.eval import offline
from vjepa2_ac.eval.offline import (
    OfflineConfig,
    ShortEpisodesError,
    action_metrics,
    evaluate_offline,
    jepa_wms_cem,
    model_budget_cem,
    sample_segments,
)

TINY_CEM = dict(samples=16, topk=4, iterations=2)  # fast planner for the tiny model
TINY_PLANNING = PlanningConfig(camera="workspace", image_size=64,
                               planner={"samples": 16, "topk": 4, "iterations": 2})


def linear_states(n: int, velocity: tuple[float, ...] = (0.01, -0.02, 0.005, 0.0, 0.0, 0.01, 0.05)) -> np.ndarray:
    """States [n, 7] moving at a constant ``velocity`` per recorded step (gripper clipped to [0, 1])."""
    start = np.array([0.5, 0.0, 0.3, 3.0, 0.1, -0.2, 0.0])
    states = start + np.arange(n)[:, None] * np.asarray(velocity)
    states[:, 6] = states[:, 6].clip(0, 1)
    return states


def make_dataset(root: Path, lengths: list[int], hz: float = 4.0, size: int = 32) -> Path:
    """HDF5 episodes written with the library's writer; frame brightness encodes (episode, step)."""
    for e, n in enumerate(lengths):
        frames = np.zeros((n, size, size, 3), np.uint8)
        frames[..., 0] = (np.arange(n) * 7 % 256)[:, None, None]
        frames[..., 1] = 40 * e
        write_episode(root / f"episode_{e:03d}.h5", frames, linear_states(n), metadata={"control_hz": hz})
    return root


class FakeSource:
    """An ``EpisodeSource`` of lengths and rates only (for sampling tests)."""

    def __init__(self, lengths: list[int], fps: float = 4.0) -> None:
        self.lengths, self.fps = lengths, fps

    def __len__(self) -> int:
        return len(self.lengths)

    def episode_name(self, i: int) -> str:
        return f"ep{i}"

    def episode_length(self, i: int) -> int:
        return self.lengths[i]

    def episode_fps(self, i: int) -> float:
        return self.fps

    def read(self, i, indices):  # pragma: no cover - not used
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------- metrics
def test_action_metrics_hand_made():
    planned = torch.tensor([[0.05, -0.02, 0.01, 0.1, 0.0, -0.2, 0.5],
                            [0.1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    recorded = torch.tensor([[0.03, 0.01, 0.01, 0.0, 0.05, -0.1, 0.25],
                             [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    m = action_metrics(planned, recorded)
    torch.testing.assert_close(m["xyz_error"], torch.tensor([0.05, 0.2], dtype=torch.float64))
    torch.testing.assert_close(m["orientation_error"], torch.tensor([0.25, 0.0], dtype=torch.float64))
    torch.testing.assert_close(m["gripper_error"], torch.tensor([0.25, 1.0], dtype=torch.float64))
    torch.testing.assert_close(m["action_score"], torch.tensor([40.0, 0.0], dtype=torch.float64))  # 800 * 0.05; > 0.1: 0
    with pytest.raises(ValueError, match=r"\[S, 7\]"):
        action_metrics(planned[:, :6], recorded[:, :6])


def test_evaluate_offline_compares_sums_with_a_known_plan(tmp_path, tiny_world_model, monkeypatch):
    """A planner that always plans the same K actions: the errors are exact functions of the recorded states
    (8 Hz recording, 4 Hz model: every other frame, so each model step is two recorded steps)."""
    data = make_dataset(tmp_path / "d", [12, 9], hz=8.0)
    const = torch.tensor([0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])

    class FixedPlanner:
        def __init__(self, config):
            self.config = config

        def plan(self, wm, z0, s0, z_goal, *, generator=None):
            assert z0.shape == z_goal.shape == (1, 1, wm.tokens_per_frame, wm.embed_dim) and s0.shape == (1, 1, 7)
            return Plan(actions=const.expand(self.config.horizon, 7).clone(), energy=0.0)

    monkeypatch.setattr(offline, "CEM", FixedPlanner)
    result = evaluate_offline(tiny_world_model, open_source(data), OfflineConfig(goal_offset=3, segments=6, seed=3))
    velocity = np.array([0.01, -0.02, 0.005, 0.0, 0.0, 0.01])
    for seg in result.segments:
        assert seg.step == 2 and seg.t_goal - seg.t == 6
        recorded = velocity * 6  # 3 model steps of 2 recorded steps
        np.testing.assert_allclose(seg.recorded_sum[:6], recorded, atol=1e-9)
        np.testing.assert_allclose(seg.planned_sum, [0.03, 0, 0, 0, 0, 0, 0], atol=1e-7)
        xyz = abs(0.03 - 0.06) + 0.12 + 0.03
        assert seg.xyz_error == pytest.approx(xyz, abs=1e-6)
        assert seg.orientation_error == pytest.approx(0.06, abs=1e-6)
        assert seg.gripper_error == pytest.approx(seg.recorded_sum[6], abs=1e-7)  # planned dg sum is 0
        assert seg.action_score == 0.0  # xyz error 0.18 > 0.1
    assert result.xyz_error_m == pytest.approx(0.18, abs=1e-6)
    assert result.zero_action["xyz_error"] == pytest.approx(0.21, abs=1e-6)
    # one segment: no standard error, still strict JSON and a table row
    one = offline.OfflineResult(config=result.config, segments=result.segments[:1], episodes_used=2, seconds=1.0,
                                zero_action=result.zero_action).to_dict()
    assert one["action_score_sem"] is None and one["episodes"] == 1
    json.dumps(one, allow_nan=False)
    from vjepa2_ac.commands.eval_offline import results_table

    assert "| d | 1 | 0.1800 |" in results_table([{"data": "d", **one}])


# ---------------------------------------------------------------------------------------------- segments
def test_segments_respect_goal_offset_and_episode_bounds():
    source = FakeSource([5, 3, 40, 4])  # the 3-frame episode is too short for K = 3
    segments = sample_segments(source, 3, 300, seed=7)
    assert {s.episode for s in segments} == {0, 2, 3}
    for s in segments:
        length = source.lengths[s.episode]
        assert len(s.frames) == 4 and s.step == 1 and 0 <= s.t and s.t_goal <= length - 1
        assert list(s.frames) == list(range(s.t, s.t_goal + 1))
    assert {s.t for s in segments if s.episode == 3} == {0}  # exactly K + 1 frames: one start
    assert max(s.t for s in segments if s.episode == 2) == 36  # the last start that leaves room for the goal
    # segment j depends on (seed, j) only
    assert sample_segments(source, 3, 5, seed=7) == segments[:5]
    assert sample_segments(source, 3, 5, seed=8) != segments[:5]
    with pytest.raises(ShortEpisodesError, match="at least 4 frames.*longest has 3") as err:
        sample_segments(FakeSource([3, 2]), 3, 1, seed=0)
    assert err.value.longest == 3


def test_fps_subsampling_of_faster_recordings():
    source = FakeSource([10, 9, 30], fps=12.0)  # step ceil(12 / 4) = 3: 4, 3 and 10 frames at 4 Hz
    segments = sample_segments(source, 3, 200, seed=0)
    assert {s.episode for s in segments} == {0, 2}
    for s in segments:
        assert s.step == 3 and np.diff(s.frames).tolist() == [3, 3, 3]
        assert s.t_goal <= source.lengths[s.episode] - 1
    assert {s.t for s in segments if s.episode == 0} == {0}
    assert max(s.t for s in segments if s.episode == 2) == 20
    assert len(sample_segments(FakeSource([10], fps=12.0), 3, 1, seed=0, fps=12.0)[0].frames) == 4  # same rate


def test_config_checks_and_presets():
    cfg = jepa_wms_cem(3)
    assert (cfg.samples, cfg.topk, cfg.iterations, cfg.horizon) == (300, 10, 15, 3)
    assert cfg.search_rotation and cfg.constraint == "box" and cfg.maxnorm == cfg.rotation_maxnorm == 0.1
    assert cfg.gripper_max == 0.75 and cfg.xyz_std == cfg.rotation_std == cfg.gripper_std == 0.1
    own = model_budget_cem(TINY_PLANNING, 2)
    assert (own.samples, own.topk, own.iterations, own.horizon, own.maxnorm) == (16, 4, 2, 2, 0.1)
    assert OfflineConfig(goal_offset=2).planner.horizon == 2
    with pytest.raises(ValueError, match="horizon 3 must equal goal_offset 2"):
        OfflineConfig(goal_offset=2, planner=jepa_wms_cem(3))
    assert OfflineConfig(cost="l2", context_window=2).cost == "l2"
    with pytest.raises(ValueError, match="cost must be 'l1' or 'l2'"):
        OfflineConfig(cost="l3")
    for bad in (dict(goal_offset=0), dict(segments=0), dict(seed=-1), dict(batch_size=0), dict(fps=0.0),
                dict(context_window=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            OfflineConfig(**bad)


# ---------------------------------------------------------------------------------------------- determinism
def test_same_seed_same_results_any_batch_size(tmp_path, tiny_world_model):
    source = open_source(make_dataset(tmp_path / "d", [10, 7, 12]))

    def run(batch_size: int, seed: int = 5) -> list[dict]:
        cfg = OfflineConfig(goal_offset=2, segments=5, seed=seed, planner=jepa_wms_cem(2, **TINY_CEM),
                            batch_size=batch_size)
        return [{k: v for k, v in s.to_dict().items() if k != "seconds"}
                for s in evaluate_offline(tiny_world_model, source, cfg).segments]

    first = run(2)
    assert run(2) == first
    assert run(1) == first and run(5) == first
    assert run(2, seed=6) != first
    assert all(len(s["planned_sum"]) == 7 for s in first)


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def tiny_model_dir(save_tiny_model):
    return save_tiny_model(TINY_PLANNING)


CELL_KEYS = {"data", "episodes", "goal_offset", "xyz_error_m", "orientation_error_rad", "gripper_error",
             "action_score", "seconds_per_segment", "seed", "segments"}
SEGMENT_KEYS = {"episode", "t", "xyz_error", "orientation_error", "gripper_error", "action_score", "planned_sum",
                "recorded_sum"}


def test_cli_end_to_end_writes_the_json(tmp_path, tiny_model_dir, capsys):
    a = make_dataset(tmp_path / "a", [9, 6])
    b = make_dataset(tmp_path / "b", [8], hz=8.0)
    out = tmp_path / "out" / "offline.json"
    argv = ["eval-offline", "--data", str(a), str(b), "--model", str(tiny_model_dir), "--goal-offset", "2",
            "--episodes", "3", "--seed", "4", "--threads", "1", "--json", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| data | segments | xyz error (m)" in printed and str(a) in printed
    report = json.loads(out.read_text())
    assert report["suite"] == "offline" and report["planner_budget"] == "model" and report["cost"] == "l1"
    assert report["planner"]["samples"] == 16 and report["planner"]["horizon"] == 2
    assert [c["data"] for c in report["cells"]] == [str(a), str(b)]
    for cell in report["cells"]:
        assert CELL_KEYS <= set(cell) and cell["episodes"] == 3 and cell["goal_offset"] == 2 and cell["seed"] == 4
        assert len(cell["segments"]) == 3
        for seg in cell["segments"]:
            assert SEGMENT_KEYS <= set(seg) and len(seg["planned_sum"]) == len(seg["recorded_sum"]) == 7
            assert seg["episode"].startswith("episode_") and seg["action_score"] >= 0
        assert cell["action_score"] == pytest.approx(np.mean([s["action_score"] for s in cell["segments"]]),
                                                     rel=1e-5)
    assert {s["step"] for s in report["cells"][1]["segments"]} == {2}
    # same seed, other batch size: the same figures
    out2 = tmp_path / "again.json"
    assert main([*argv[:-3], "--json", str(out2), "--no-progress", "--batch-size", "1"]) == 0
    again = json.loads(out2.read_text())

    def figures(rep):
        return [[{k: v for k, v in s.items() if k != "seconds"} for s in c["segments"]] for c in rep["cells"]]

    assert figures(again) == figures(report)


def test_cli_jepa_wms_budget_and_lerobot_source(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from test_data import make_lerobot_v3

    root = make_lerobot_v3(tmp_path / "lr", [12, 20], fps=8)
    monkeypatch.setattr(offline, "JEPA_WMS_CEM", {**offline.JEPA_WMS_CEM, **TINY_CEM})  # keep the test fast
    out = tmp_path / "lr.json"
    assert main(["eval-offline", "--data", str(root), "--model", str(tiny_model_dir), "--episodes", "2",
                 "--planner-budget", "jepa-wms", "--cost", "l2", "--context-window", "2", "--json", str(out),
                 "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["planner_budget"] == "jepa-wms" and report["planner"]["search_rotation"] is True
    assert report["cost"] == "l2" and report["context_window"] == 2
    segments = report["cells"][0]["segments"]
    assert all(s["step"] == 2 and s["episode"].startswith("episode ") for s in segments)


@pytest.mark.parametrize("args, message", [
    (["--goal-offset", "0"], "--goal-offset must be >= 1"),
    (["--episodes", "0"], "--episodes must be >= 1"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--goal-offset", "9"], "--goal-offset 9 needs episodes of at least 10 frames at the model's rate"),
    (["--context-window", "0"], "--context-window must be >= 1"),
])
def test_cli_bad_numbers(tmp_path, tiny_model_dir, capsys, args, message):
    data = make_dataset(tmp_path / "d", [6, 4])
    assert main(["eval-offline", "--data", str(data), "--model", str(tiny_model_dir), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    if "needs episodes" in message:
        assert f"the longest in {data} has 6" in err


def test_cli_bad_data(tmp_path, tiny_model_dir, capsys):
    from test_data import make_lerobot_v3

    missing = tmp_path / "nope"
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "episode_000.h5").write_bytes(b"not hdf5")
    fourteen = make_lerobot_v3(tmp_path / "lr14", [10], state_dim=14)
    for path, message in ((missing, f"--data {missing}: no such file"),
                          (empty, f"--data {empty}: no readable episodes"),
                          (broken, f"--data {broken}: no readable episodes found (expected HDF5 episodes, raw DROID "
                                   "or LeRobot v3); 1 unreadable"),
                          (fourteen, f"--data {fourteen}: observation.state has shape [14]; expected 7 dims")):
        assert main(["eval-offline", "--data", str(path), "--model", str(tiny_model_dir)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_cli_resume_keeps_finished_cells(tmp_path, tiny_model_dir, capsys):
    a = make_dataset(tmp_path / "a", [9, 6])
    b = make_dataset(tmp_path / "b", [8])
    out = tmp_path / "offline.json"

    def argv(seed=4, *extra):
        return ["eval-offline", "--data", str(a), str(b), "--model", str(tiny_model_dir), "--goal-offset", "2",
                "--episodes", "2", "--seed", str(seed), "--threads", "1", "--no-progress", *extra]

    def figures(cell):
        return [{k: v for k, v in seg.items() if k != "seconds"} for seg in cell["segments"]]

    assert main(argv(4, "--json", str(out))) == 0
    full = json.loads(out.read_text())
    cut = {**full, "cells": full["cells"][:1]}  # as if the run stopped after the first cell
    cut["cells"][0]["action_score"] = -1.0  # a marker: a kept cell is not recomputed
    out.write_text(json.dumps(cut))
    capsys.readouterr()
    assert main(argv(4, "--json", str(out), "--resume")) == 0
    assert f"{a}: kept from" in capsys.readouterr().err
    resumed = json.loads(out.read_text())
    assert resumed["cells"][0]["action_score"] == -1.0
    assert figures(resumed["cells"][1]) == figures(full["cells"][1])
    assert main(argv(5, "--json", str(out), "--resume")) == 2
    assert "was made with another seed (4, now 5)" in capsys.readouterr().err
    assert main(argv(4, "--resume")) == 2
    assert "--resume needs --json" in capsys.readouterr().err
