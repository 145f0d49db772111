"""demo / eval / landscape commands, the episode runner, statistics, plots and videos (planning files and the agent
builder: ``test_planning.py``).

Everything runs on a tiny random world model (64 px, 1 encoder layer, 1 predictor layer) saved with a
``planning.json`` to a temp dir and passed with ``--model DIR``."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vjepa2_ac.agent import PlanningConfig, TaskPlan, build_planner, load_world_model, make_env
from vjepa2_ac.agent.planning import PhaseSpec
from vjepa2_ac.data.franka_example import load_franka_example
from vjepa2_ac.eval import (
    CellResult,
    EpisodeResult,
    RandomPolicy,
    energy_landscape,
    landscape_actions,
    load_recorded_cells,
    results_table,
    run_episode,
    untrained_world_model,
    wilson_interval,
)

TINY_PLANNING = PlanningConfig(
    camera="workspace", image_size=64, planner={"samples": 16, "topk": 4, "iterations": 2},
    tasks={"reach": TaskPlan(2), "pick-place": TaskPlan(3, [PhaseSpec("grasped", 1), PhaseSpec("lifted", 1),
                                                            PhaseSpec("placed")])})


@pytest.fixture(scope="module")
def tiny_model_dir(save_tiny_model):
    return save_tiny_model(TINY_PLANNING)


def run_command(name: str, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(f"vjepa2_ac.commands.{name}")
    parser = argparse.ArgumentParser(prog=f"vjepa2-ac {name}")
    module.configure(parser)
    args = parser.parse_args(argv)
    args.command = name
    return module.run(args)


# ---------------------------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("k, n, low, high", [(0, 10, 0.0, 0.27753), (10, 10, 0.72247, 1.0), (5, 10, 0.23659, 0.76341),
                                             (35, 50, 0.56242, 0.80893)])
def test_wilson_interval_known_values(k, n, low, high):
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-4)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_the_rate_and_is_symmetric(kn):
    k, n = kn
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    low2, high2 = wilson_interval(n - k, n)
    assert (low, high) == pytest.approx((1 - high2, 1 - low2), abs=1e-12)


def test_wilson_interval_rejects_bad_counts():
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_cell_result_aggregates_episodes():
    eps = [EpisodeResult("reach", "cube", "mujoco", "model", seed=s, success=s % 2 == 0, final_distance=0.01 * s,
                         steps=3, seconds_per_action=0.5, actions=np.zeros((3, 7)), latencies=[0.5, 0.5, 0.5])
           for s in range(4)]
    cell = CellResult.from_episodes(eps)
    assert (cell.successes, cell.episodes, cell.success_rate) == (2, 4, 0.5)
    assert (cell.ci_low, cell.ci_high) == pytest.approx(wilson_interval(2, 4))
    assert cell.mean_final_distance == pytest.approx(0.015) and cell.seeds == [0, 1, 2, 3]
    assert "| reach | cube | mujoco | model | 50% (2/4) |" in results_table([cell])


# ---------------------------------------------------------------------------------------------- landscape
def test_energy_landscape_matches_the_official_notebook(official_small):
    """Same grid order and energies as the official code's 5x5x5 one-step landscape."""
    from vjepa2_ac import ACPredictor, ACPredictorConfig, WorldModel

    pred = ACPredictor(ACPredictorConfig(**official_small["predictor_config"]))
    pred.load_official_state_dict(official_small["checkpoint"]["predictor"])
    wm = WorldModel(None, pred.eval())
    z = official_small["encoder_tokens"][:1, :2]
    land = energy_landscape(wm, z[:, :1], z[:, 1:], official_small["states_real"][0], grid=5, radius=0.075)
    np.testing.assert_allclose(land.actions, official_small["landscape_actions"].numpy(), atol=1e-7)
    np.testing.assert_allclose(land.energies.reshape(-1), official_small["landscape_energy"].numpy(), atol=2e-5)
    best = int(official_small["landscape_energy"].argmin())
    np.testing.assert_allclose(land.argmin_delta, official_small["landscape_actions"][best, :3].numpy(), atol=1e-7)


def test_landscape_inputs_are_checked():
    with pytest.raises(ValueError, match="grid"):
        landscape_actions(1)
    with pytest.raises(ValueError, match="radius"):
        landscape_actions(3, radius=0.0)


def test_franka_example_asset_matches_the_fixture(official_small):
    ex = load_franka_example()
    assert ex["frames"].shape == (2, 256, 256, 3) and ex["frames"].dtype == np.uint8
    np.testing.assert_array_equal(ex["frames"], official_small["frames_uint8"].numpy())
    np.testing.assert_allclose(ex["gt_action"], official_small["example_gt_action"].numpy(), atol=1e-5)


# ---------------------------------------------------------------------------------------------- episodes
def test_run_episode_is_deterministic_and_baselines_share_seeds(tiny_model_dir):
    wm, planning, _ = load_world_model(tiny_model_dir)
    assert planning == TINY_PLANNING
    env = make_env(planning, "reach")
    try:
        a = run_episode(env, wm, planning, "reach", seed=3, record_frames=True)
        b = run_episode(env, wm, planning, "reach", seed=3)
        r = run_episode(env, None, planning, "reach", seed=3, record_frames=True)
    finally:
        env.close()
    np.testing.assert_array_equal(a.actions, b.actions)
    assert a.steps == 2 and a.frames.shape == (3, 64, 64, 3) and len(a.energies) == 2 and a.policy == "model"
    assert r.policy == "random" and r.energies == [] and r.steps == 2
    np.testing.assert_array_equal(a.frames[0], r.frames[0])  # same seed -> same initial state
    assert not np.allclose(a.actions, r.actions)


def test_random_policy_stays_in_the_planners_action_space():
    planner = build_planner(PlanningConfig())  # paper: xyz in the L1 ball of radius 0.075
    policy = RandomPolicy(planner, seed=0)
    actions = np.stack([policy() for _ in range(200)])
    assert np.all(np.abs(actions[:, :3]).sum(1) <= 0.075 + 1e-6)
    assert np.all(actions[:, 3:6] == 0) and np.all(np.abs(actions[:, 6]) <= 0.75)
    assert actions[:, :3].std(0).min() > 0.01


def test_untrained_world_model_shares_the_encoder_and_is_seeded(tiny_model_dir):
    from vjepa2_ac import WorldModel

    wm = WorldModel.from_pretrained(tiny_model_dir)
    u1, u2 = untrained_world_model(wm, seed=1), untrained_world_model(wm, seed=1)
    assert u1.encoder is wm.encoder and u1.config == wm.config
    w = "predictor_embed.weight"
    assert torch.equal(u1.predictor.state_dict()[w], u2.predictor.state_dict()[w])
    assert not torch.equal(u1.predictor.state_dict()[w], wm.predictor.state_dict()[w])


# ---------------------------------------------------------------------------------------------- commands
def test_demo_end_to_end_writes_video_sheet_and_summary(tiny_model_dir, tmp_path, capsys):
    import av

    out = tmp_path / "demo"
    rc = run_command("demo", ["--model", str(tiny_model_dir), "--out", str(out), "--max-steps", "3",
                              "--video-size", "96", "--no-progress"])
    assert rc == 0
    stem = "pick-place_cube_mujoco_seed0"
    videos = list(out.glob(f"{stem}.mp4")) + list(out.glob(f"{stem}.gif"))
    assert len(videos) == 1 and (out / f"{stem}.png").stat().st_size > 10_000
    summary = json.loads((out / f"{stem}.json").read_text())
    assert summary["steps"] == 3 and isinstance(summary["success"], bool)
    assert summary["phases"] == [0, 1, 2] and summary["phase_goals"] == ["grasped", "lifted", "placed"]
    if videos[0].suffix == ".mp4":
        with av.open(str(videos[0])) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 4 and frames[0].shape == (96, 96, 3)
    printed = capsys.readouterr().out
    assert "s per action" in printed and ("SUCCESS" in printed or "FAILURE" in printed)


def test_eval_writes_json_and_markdown_with_baselines(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "eval.json"
    rc = run_command("eval", ["--model", str(tiny_model_dir), "--task", "reach", "--episodes", "2", "--seed", "7",
                              "--baselines", "random", "untrained", "--json", str(path), "--no-progress"])
    assert rc == 0
    report = json.loads(path.read_text())
    cells = report["cells"]
    assert [c["policy"] for c in cells] == ["model", "random", "untrained"]
    for c in cells:
        assert {"task", "object", "backend", "success_rate", "ci_low", "ci_high", "mean_final_distance",
                "seconds_per_action", "episodes", "seeds", "episode_results"} <= set(c)
        assert c["task"] == "reach" and c["episodes"] == 2 and c["seeds"] == [7, 8]
        assert 0.0 <= c["ci_low"] <= c["success_rate"] <= c["ci_high"] <= 1.0
        assert c["success_rate"] == sum(e["success"] for e in c["episode_results"]) / 2
        assert math.isfinite(c["mean_final_distance"]) and c["mean_final_distance"] > 0
    assert report["planning_source"].endswith("planning.json")
    import mujoco
    import torch

    assert report["versions"]["mujoco"] == mujoco.__version__ and report["versions"]["torch"] == torch.__version__
    printed = capsys.readouterr().out
    assert f"mujoco {mujoco.__version__}" in printed
    assert "| task | object | backend | policy | success |" in printed and "| reach | cube | mujoco | random |" in printed


def test_eval_baselines_only_runs_the_same_seeds_without_the_model(tiny_model_dir, tmp_path):
    path = tmp_path / "eval.json"
    assert run_command("eval", ["--model", str(tiny_model_dir), "--task", "reach", "--episodes", "2", "--seed", "7",
                                "--baselines", "random", "--baselines-only", "--json", str(path),
                                "--no-progress"]) == 0
    cells = json.loads(path.read_text())["cells"]
    assert [(c["policy"], c["seeds"]) for c in cells] == [("random", [7, 8])]
    with pytest.raises(SystemExit, match="--baselines-only needs --baselines"):
        run_command("eval", ["--model", str(tiny_model_dir), "--baselines-only"])
    from vjepa2_ac.eval import evaluate

    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(None, None, tasks=["reach"], include_model=False)


def test_landscape_on_the_franka_example_and_on_a_sim_frame(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "land.png"
    assert run_command("landscape", ["--model", str(tiny_model_dir), "--example", "franka", "--grid", "3",
                                     "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    with np.load(out.with_suffix(".npz")) as data:
        assert data["energies"].shape == (3, 3, 3)
        flat = data["actions"][data["energies"].reshape(-1).argmin(), :3]
        np.testing.assert_allclose(data["argmin_delta"], flat)
        np.testing.assert_allclose(data["reference_delta"], load_franka_example()["gt_action"][:3], atol=1e-6)
    assert "ground truth" in capsys.readouterr().out
    out2 = tmp_path / "land_env.png"
    assert run_command("landscape", ["--model", str(tiny_model_dir), "--env", "pick-place", "--goal-name", "grasped",
                                     "--grid", "3", "--reduce", "slice", "--out", str(out2)]) == 0
    assert out2.stat().st_size > 10_000


def test_missing_bundled_model_gives_one_clear_line(monkeypatch, tmp_path, capsys):
    from vjepa2_ac.model import bundled

    monkeypatch.setattr(bundled, "MODELS", {})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_command("demo", ["--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "vjepa2-ac-sim-small" in err and "--model DIR" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        run_command("eval", ["--model", str(tmp_path / "nope"), "--checkpoint", str(tmp_path / "nope.pt")])
    assert "checkpoint file not found" in capsys.readouterr().err


@pytest.mark.parametrize("name, argv, match", [
    ("demo", ["--max-steps", "0"], "--max-steps"),
    ("eval", ["--episodes", "0"], "--episodes"),
    ("landscape", ["--grid", "1"], "--grid"),
    ("landscape", ["--goal", "x.png"], "--goal and --state go with --frame"),
])
def test_commands_reject_bad_arguments(tiny_model_dir, name, argv, match):
    with pytest.raises(SystemExit, match=match):
        run_command(name, ["--model", str(tiny_model_dir), *argv])


def test_landscape_from_image_files(tiny_model_dir, tmp_path):
    from PIL import Image

    ex = load_franka_example()
    Image.fromarray(ex["frames"][0]).save(tmp_path / "a.png")
    Image.fromarray(ex["frames"][1]).save(tmp_path / "b.png")
    state = [str(v) for v in ex["states"][0]]
    assert run_command("landscape", ["--model", str(tiny_model_dir), "--frame", str(tmp_path / "a.png"), "--goal",
                                     str(tmp_path / "b.png"), "--state", *state, "--grid", "2",
                                     "--out", str(tmp_path / "l.png")]) == 0
    with pytest.raises(SystemExit, match="needs --goal"):
        run_command("landscape", ["--model", str(tiny_model_dir), "--frame", str(tmp_path / "a.png")])


# ---------------------------------------------------------------------------------------------- plots / video
def test_write_video_mp4_and_gif(tmp_path):
    import av

    from vjepa2_ac.data.video import video_info, write_video

    frames = np.random.default_rng(0).integers(0, 255, (5, 33, 47, 3), dtype=np.uint8)  # odd sizes get padded
    mp4 = write_video(frames, tmp_path / "v.mp4", fps=4)
    assert mp4.suffix == ".mp4"
    with av.open(str(mp4)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 5 and decoded[0].shape == (34, 48, 3)
    assert video_info(write_video(frames, tmp_path / "f.mp4", fps=2.5)) == (5, 2.5)  # fractional rates are kept
    gif = write_video(frames, tmp_path / "v.gif")
    from PIL import Image

    with Image.open(gif) as img:
        assert img.n_frames == 5
    with pytest.raises(ValueError, match="uint8"):
        write_video(frames.astype(np.float32), tmp_path / "bad.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.mp4", "v.gif", "v.mp4"]  # no temp files left
    for fps in (0, -1.0, "4", True):
        with pytest.raises(ValueError, match="fps"):
            write_video(frames, tmp_path / "bad.mp4", fps=fps)


def test_plots_check_their_inputs(tmp_path):
    from vjepa2_ac.eval.plots import plot_episode_sheet, reduce_landscape

    e = np.arange(27.0).reshape(3, 3, 3)
    np.testing.assert_allclose(reduce_landscape(e, 1, "mean"), e.mean(1))
    np.testing.assert_allclose(reduce_landscape(e, 2, "slice", index=0), e[:, :, 0])
    with pytest.raises(ValueError, match="reduce"):
        reduce_landscape(e, 1, "max")
    with pytest.raises(ValueError, match="frames"):
        plot_episode_sheet(tmp_path / "s.png", goals=[], frames=np.zeros((0, 8, 8, 3), np.uint8))
    img = np.zeros((8, 8, 3), np.uint8)
    path = plot_episode_sheet(tmp_path / "s.png", goals=[("final", img), ("final", img)], frames=np.stack([img] * 3),
                              energies=[1.0, 0.5], frame_energies=[1.1, 0.7], phases=[0, 1])
    assert path.stat().st_size > 5_000


def test_load_recorded_cells_reads_an_eval_json_back(tmp_path):
    planning = PlanningConfig(camera="dual", image_size=64, env_kwargs={"pregrasp_height": 0.1})
    episode = {"seed": 7, "success": False, "final_distance": 0.2, "actions": [[0.0] * 7]}
    cells = [{"task": "reach", "object": "cube", "backend": "mujoco", "policy": "model", "episode_results": [episode]},
             {"task": "pick-place", "object": "cube", "backend": "mujoco", "policy": "random", "episode_results": []}]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"planning": planning.to_dict(), "cells": cells}))
    loaded, found = load_recorded_cells(path, "reach")
    assert loaded.to_dict() == planning.to_dict() and found == cells[:1]
    with pytest.raises(ValueError, match="has no pick-place cell with recorded episodes"):  # its cell has none
        load_recorded_cells(path, "pick-place")
    with pytest.raises(ValueError, match="task"):
        load_recorded_cells(path, "fly")


# ---------------------------------------------------------------------------------------------- nothing finished is lost
def test_eval_checks_its_output_seeds_and_every_phase_before_running(tiny_model_dir, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("vjepa2_ac.eval.suite.run_episode", lambda *a, **k: calls.append(a))
    base = ["--model", str(tiny_model_dir), "--task", "reach", "--episodes", "1", "--no-progress"]
    with pytest.raises(SystemExit, match="--json: .* is a directory"):
        run_command("eval", [*base, "--json", str(tmp_path)])
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit, match="--json: cannot write"):
        run_command("eval", [*base, "--json", str(tmp_path / "file" / "out.json")])
    with pytest.raises(SystemExit, match="--seed must be >= 0"):
        run_command("eval", [*base, "--seed", "-5"])
    with pytest.raises(SystemExit, match="--resume needs --json"):
        run_command("eval", [*base, "--resume"])
    bad = PlanningConfig.from_dict({**TINY_PLANNING.to_dict(), "tasks": {"pick-place": {"max_steps": 3, "phases": [
        {"goal": "grasped", "steps": 1}, {"goal": "placed", "planner": {"sample": 3}}]}}})
    bad.save(tmp_path / "bad.json")
    with pytest.raises(SystemExit, match=r"task 'pick-place', phase 1: unknown CEMConfig field\(s\) \['sample'\]"):
        run_command("eval", [*base, "--task", "reach", "pick-place", "--planning", str(tmp_path / "bad.json"),
                             "--json", str(tmp_path / "e.json")])
    assert calls == []  # nothing ran: the second task's bad setting was found first


def test_eval_saves_each_episode_and_resumes_with_identical_results(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from vjepa2_ac.commands.eval import episodes_path

    path = tmp_path / "eval.json"
    argv = ["--model", str(tiny_model_dir), "--task", "reach", "--episodes", "3", "--seed", "7", "--json", str(path),
            "--no-progress"]
    assert run_command("eval", argv) == 0
    full = json.loads(path.read_text())
    assert path.stat().st_mode & 0o777 == 0o644  # like every other output (mkstemp would give 0600)
    lines = episodes_path(path).read_text().splitlines()
    assert len(lines) == 3 and [json.loads(x)["seed"] for x in lines] == [7, 8, 9]
    # a crash during the third episode: two records kept, one line cut short, the cell never written
    episodes_path(path).write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:40] + "\n")
    path.write_text(json.dumps({**full, "cells": []}))
    import vjepa2_ac.eval.suite as evaluate_module

    ran = []
    real = evaluate_module.run_episode
    monkeypatch.setattr(evaluate_module, "run_episode", lambda *a, **k: ran.append(k["seed"]) or real(*a, **k))
    assert run_command("eval", [*argv, "--resume"]) == 0
    assert ran == [9] and "resuming: 2 finished episodes" in capsys.readouterr().out
    resumed = json.loads(path.read_text())["cells"][0]
    for key in ("successes", "episodes", "seeds", "mean_final_distance"):
        assert resumed[key] == full["cells"][0][key]
    assert [e["actions"] for e in resumed["episode_results"]] == [e["actions"] for e in full["cells"][0]["episode_results"]]
    # another planning file is another evaluation: refused
    other = PlanningConfig.from_dict({**TINY_PLANNING.to_dict(), "stop_on_success": False})
    other.save(tmp_path / "other.json")
    with pytest.raises(SystemExit, match="--resume: .* another planning"):
        run_command("eval", [*argv, "--resume", "--planning", str(tmp_path / "other.json")])


def test_eval_ctrl_c_ends_with_one_line_and_keeps_finished_episodes(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import vjepa2_ac.eval.suite as evaluate_module
    from vjepa2_ac.commands.eval import episodes_path

    real, count = evaluate_module.run_episode, []

    def interrupted(*a, **k):
        count.append(1)
        if len(count) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(evaluate_module, "run_episode", interrupted)
    path = tmp_path / "eval.json"
    rc = run_command("eval", ["--model", str(tiny_model_dir), "--task", "reach", "--episodes", "3", "--json",
                              str(path), "--no-progress"])
    assert rc == 130
    assert "interrupted" in capsys.readouterr().err and len(episodes_path(path).read_text().splitlines()) == 1
    assert json.loads(path.read_text())["planning"] == TINY_PLANNING.to_dict()  # the header says what ran
