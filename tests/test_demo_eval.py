"""demo / eval / landscape commands, the planning config, the episode runner, statistics, plots and videos.

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

from vjepa2_ac.evaluation import (
    CellResult,
    EpisodeResult,
    RandomPolicy,
    energy_landscape,
    landscape_actions,
    load_franka_example,
    load_recorded_cells,
    results_table,
    untrained_world_model,
    wilson_interval,
)
from vjepa2_ac.planning_config import PlanningConfig, TaskSettings, task_name

TINY_PLANNING = PlanningConfig(
    camera="workspace", image_size=64, planner_config={"samples": 16, "topk": 4, "iterations": 2},
    tasks={"reach": TaskSettings(max_steps=2), "pick-place": TaskSettings(max_steps=3, switch_after=[1, 1])})


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_world_model):
    path = tmp_path_factory.mktemp("tiny_wm")
    tiny_world_model.save_pretrained(path)
    TINY_PLANNING.save(path)
    return path


def run_command(name: str, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(f"vjepa2_ac.commands.{name}")
    parser = argparse.ArgumentParser(prog=f"vjepa2-ac {name}")
    module.configure(parser)
    args = parser.parse_args(argv)
    args.command = name
    return module.run(args)


# ---------------------------------------------------------------------------------------------- planning config
def test_planning_config_defaults_when_the_file_is_missing(tmp_path):
    cfg = PlanningConfig.load(tmp_path)
    assert cfg == PlanningConfig() and cfg.source is None
    assert cfg.task("pick_place").switch_after == [4, 10, 4]  # the paper's schedule
    assert PlanningConfig.load(None) == PlanningConfig()


def test_planning_config_round_trip_and_per_task_overrides(tmp_path):
    data = {"camera": "workspace", "image_size": 96, "env_kwargs": {"msaa": 0}, "planner": "cem",
            "planner_config": {"samples": 50, "dtype": "bf16", "axis": {"6": 0.0}},
            "tasks": {"pick_place": {"max_steps": 30, "switch_energy": 0.2, "planner_config": {"samples": 70}}}}
    (tmp_path / "planning.json").write_text(json.dumps(data))
    cfg = PlanningConfig.load(tmp_path)
    assert cfg.source == str(tmp_path / "planning.json")
    assert cfg.task("pick-place").max_steps == 30 and cfg.task("PICK-PLACE").switch_energy == 0.2
    assert cfg.task("reach") == TaskSettings(max_steps=20)  # unlisted tasks keep the defaults
    fields = cfg.planner_fields("pick-place")
    assert fields["samples"] == 70 and fields["dtype"] is torch.bfloat16 and fields["axis"] == {6: 0.0}
    assert cfg.planner_fields("reach")["samples"] == 50
    auto = PlanningConfig(planner_config={"dtype": "auto"})
    assert auto.planner_fields("reach")["dtype"] == "auto" and auto.build_planner("reach").config.dtype == "auto"
    planner = cfg.build_planner("pick-place")
    assert type(planner).__name__ == "CEM"
    assert planner.config.samples == 70 and planner.config.constraint == "l1_ball"  # paper preset underneath
    kwargs = cfg.env_kwargs_for("grasp", object="cup", backend="pybullet")
    assert kwargs == {"object": "cup", "backend": "pybullet", "camera": "workspace", "image_size": (96, 96),
                      "msaa": 0}
    cfg.save(tmp_path / "copy")
    assert PlanningConfig.load(tmp_path / "copy") == cfg


def test_planning_config_per_subgoal_planner_fields():
    cfg = PlanningConfig(planner_config={"samples": 50}, tasks={"pick-place": {
        "switch_after": [2, 2], "planner_config": {"samples": 60},
        "subgoal_planner_config": [{}, {"close_gripper": 0, "samples": 40}, {}]}})
    assert cfg.planner_fields("pick-place", 0)["samples"] == 60 and "close_gripper" not in cfg.planner_fields("pick-place", 0)
    assert cfg.planner_fields("pick-place", 1) == {"samples": 40, "close_gripper": 0}
    assert cfg.planner_fields("pick-place", 1, samples=20)["samples"] == 20  # explicit overrides win
    assert cfg.build_planner("pick-place", subgoal=1).config.close_gripper == 0
    assert cfg.build_planner("pick-place").config.close_gripper is None
    with pytest.raises(ValueError, match="subgoal=3"):
        cfg.planner_fields("pick-place", 3)
    with pytest.raises(ValueError, match="subgoal=0"):
        cfg.planner_fields("reach", 0)


def test_planning_config_fallback_planner_fields():
    cfg = PlanningConfig(planner_config={"samples": 50}, tasks={
        "reach": {"planner_config": {"samples": 60}, "fallback_after": 10, "fallback_planner_config": {"horizon": 2}},
        "pick-place": {"switch_after": [2, 2], "subgoal_planner_config": [{}, {}, {"open_gripper": 0}],
                       "fallback_after": 3, "fallback_planner_config": {"samples": 80}}})
    assert cfg.planner_fields("reach", fallback=True) == {"samples": 60, "horizon": 2}
    assert "horizon" not in cfg.planner_fields("reach")
    assert cfg.planner_fields("reach", fallback=True, horizon=3)["horizon"] == 3  # explicit overrides win
    assert cfg.build_planner("reach", fallback=True).config.horizon == 2
    # over the final sub-goal's fields
    assert cfg.planner_fields("pick-place", 2, fallback=True) == {"samples": 80, "open_gripper": 0}
    with pytest.raises(ValueError, match="has no fallback_planner_config"):
        cfg.planner_fields("grasp", fallback=True)
    assert PlanningConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name, cls", [("cem", "CEM"), ("mppi", "MPPI"), ("icem", "ICEM"),
                                       ("gradient", "GradientPlanner")])
def test_build_planner_for_every_planner_name(name, cls):
    cfg = PlanningConfig(planner=name, planner_config={"horizon": 2})
    planner = cfg.build_planner("reach")
    assert type(planner).__name__ == cls and planner.config.horizon == 2
    # a CEM-tuned file asked for another planner keeps the shared fields only
    other = PlanningConfig(planner_config={"samples": 32, "topk": 4, "maxnorm": 0.04}).build_planner(planner="gradient")
    assert type(other).__name__ == "GradientPlanner" and other.config.maxnorm == 0.04


@pytest.mark.parametrize("data, match", [
    ({"cameras": "x"}, "unknown planning config key"),
    ({"planner": "rrt"}, "planner must be one of"),
    ({"image_size": 8}, "image_size"),
    ({"tasks": {"stack": {}}}, "unknown task"),
    ({"tasks": {"reach": {"max_steps": 0}}}, "max_steps"),
    ({"tasks": {"reach": {"steps": 3}}}, "unknown key"),
    ({"tasks": {"pick-place": {"switch_after": [4, 0]}}}, "switch_after"),
    ({"tasks": {"pick-place": {"switch_after": [4], "switch_energy": 0.1}}}, "at most one"),
    ({"env_kwargs": {"camera": "wrist"}}, "env_kwargs must not set"),
    ({"tasks": {"pick-place": {"subgoal_planner_config": {"close_gripper": 0}}}}, "subgoal_planner_config"),
    ({"tasks": {"pick-place": {"subgoal_planner_config": [{}, 3]}}}, "subgoal_planner_config"),
    ({"tasks": {"reach": {"fallback_after": 10}}}, "both fallback_after and fallback_planner_config"),
    ({"tasks": {"reach": {"fallback_planner_config": {"horizon": 2}}}}, "both fallback_after"),
    ({"tasks": {"reach": {"fallback_after": 0, "fallback_planner_config": {}}}}, "fallback_after must be an int"),
    ({"tasks": {"reach": {"fallback_after": "10", "fallback_planner_config": {}}}}, "fallback_after must be an int"),
    ({"tasks": {"reach": {"fallback_after": 3, "fallback_planner_config": [2]}}}, "fallback_planner_config must"),
])
def test_planning_config_rejects_bad_files(tmp_path, data, match):
    (tmp_path / "planning.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=match):
        PlanningConfig.load(tmp_path)


def test_planning_config_bad_json_and_unknown_planner_field(tmp_path):
    (tmp_path / "planning.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        PlanningConfig.load(tmp_path)
    with pytest.raises(ValueError, match=r"unknown CEMConfig field\(s\) \['sample'\]"):
        PlanningConfig(planner_config={"sample": 3}).build_planner("reach")
    with pytest.raises(ValueError, match="unknown task"):
        task_name("stack")


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
    from vjepa2_ac.evaluation import load_world_model, make_env, run_episode

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


def test_pick_place_episode_uses_the_subgoal_planners(tiny_model_dir):
    from dataclasses import replace

    from vjepa2_ac.evaluation import load_world_model, make_env, run_episode

    wm, planning, _ = load_world_model(tiny_model_dir)
    settings = replace(planning.task("pick-place"), max_steps=3,
                       subgoal_planner_config=[{}, {"close_gripper": 0}, {"open_gripper": 0}])
    per_goal = replace(planning, tasks={**planning.tasks, "pick-place": settings})
    env = make_env(per_goal, "pick-place")
    try:
        result = run_episode(env, wm, per_goal, "pick-place", seed=4)
        per_goal.tasks["pick-place"] = replace(settings, subgoal_planner_config=[{}, {}])
        with pytest.raises(ValueError, match="subgoal_planner_config has 2 entries for 3 sub-goals"):
            run_episode(env, wm, per_goal, "pick-place", seed=4)
    finally:
        env.close()
    assert result.goal_indices == [0, 1, 2]
    assert result.actions[1, 6] > 0.95  # sub-goal 1 (lift and carry): the gripper is held closed
    assert result.actions[2, 6] < -0.95  # sub-goal 2 (placed): the gripper is opened


def test_reach_episode_hands_over_to_the_fallback_planner(tiny_model_dir):
    from dataclasses import replace

    from vjepa2_ac.evaluation import load_world_model, make_env, run_episode

    wm, planning, _ = load_world_model(tiny_model_dir)
    late = replace(planning, stop_on_success=False, tasks={**planning.tasks, "reach": TaskSettings(
        max_steps=3, fallback_after=2, fallback_planner_config={"horizon": 2})})
    env = make_env(late, "reach")
    try:
        result = run_episode(env, wm, late, "reach", seed=3)
        plain = run_episode(env, wm, replace(late, tasks={**late.tasks, "reach": TaskSettings(max_steps=3)}), "reach",
                            seed=3)
    finally:
        env.close()
    assert result.steps == 3 and result.fallback_from == 2 and result.summary()["fallback_from"] == 2
    assert plain.fallback_from is None
    np.testing.assert_array_equal(result.actions[:2], plain.actions[:2])  # the same planner until the hand-over
    assert not np.allclose(result.actions[2], plain.actions[2])


def test_grasp_plans_through_its_subgoals_only_with_a_switch_rule(tiny_model_dir):
    from dataclasses import replace

    from vjepa2_ac.evaluation import load_world_model, make_agent, make_env, run_episode

    wm, planning, _ = load_world_model(tiny_model_dir)
    one_image = replace(planning, tasks={**planning.tasks, "grasp": TaskSettings(max_steps=3)})
    assert not one_image.task("grasp").plans_subgoals and not TaskSettings(switch_after=[2], use_subgoals=False).plans_subgoals
    env = make_env(one_image, "grasp")
    try:
        _, info = env.reset(seed=2)
        assert len(info["subgoals"]) == 2  # grasped, lifted
        assert len(make_agent(wm, one_image, "grasp", info).goals) == 1  # the paper's one-image protocol
        two = replace(planning, tasks={**planning.tasks, "grasp": TaskSettings(
            max_steps=3, switch_after=[1], subgoal_planner_config=[{}, {"close_gripper": 0}])})
        assert two.task("grasp").plans_subgoals
        result = run_episode(env, wm, two, "grasp", seed=2)
    finally:
        env.close()
    assert result.goal_indices == [0, 1, 1] and np.all(result.actions[1:, 6] > 0.95)


def test_random_policy_stays_in_the_planners_action_space():
    planner = PlanningConfig().build_planner("reach")  # paper: xyz in the L1 ball of radius 0.075
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
    assert summary["goal_indices"] == [0, 1, 2]  # switch_after [1, 1] through the three sub-goals
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
    from vjepa2_ac.evaluation import evaluate

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
    assert run_command("landscape", ["--model", str(tiny_model_dir), "--env", "pick-place", "--subgoal", "0",
                                     "--grid", "3", "--reduce", "slice", "--out", str(out2)]) == 0
    assert out2.stat().st_size > 10_000


def test_missing_bundled_model_gives_one_clear_line(monkeypatch, tmp_path, capsys):
    from vjepa2_ac import bundled

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

    from vjepa2_ac.video import write_video

    frames = np.random.default_rng(0).integers(0, 255, (5, 33, 47, 3), dtype=np.uint8)  # odd sizes get padded
    mp4 = write_video(frames, tmp_path / "v.mp4", fps=4)
    assert mp4.suffix == ".mp4"
    with av.open(str(mp4)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 5 and decoded[0].shape == (34, 48, 3)
    gif = write_video(frames, tmp_path / "v.gif")
    from PIL import Image

    with Image.open(gif) as img:
        assert img.n_frames == 5
    with pytest.raises(ValueError, match="uint8"):
        write_video(frames.astype(np.float32), tmp_path / "bad.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.gif", "v.mp4"]  # no temp files left


def test_plots_check_their_inputs(tmp_path):
    from vjepa2_ac.plotting import plot_episode_sheet, reduce_landscape

    e = np.arange(27.0).reshape(3, 3, 3)
    np.testing.assert_allclose(reduce_landscape(e, 1, "mean"), e.mean(1))
    np.testing.assert_allclose(reduce_landscape(e, 2, "slice", index=0), e[:, :, 0])
    with pytest.raises(ValueError, match="reduce"):
        reduce_landscape(e, 1, "max")
    with pytest.raises(ValueError, match="frames"):
        plot_episode_sheet(tmp_path / "s.png", subgoals=[], frames=np.zeros((0, 8, 8, 3), np.uint8))
    img = np.zeros((8, 8, 3), np.uint8)
    path = plot_episode_sheet(tmp_path / "s.png", subgoals=[img], frames=np.stack([img] * 3), energies=[1.0, 0.5],
                              frame_energies=[1.1, 0.7], goal_indices=[0, 0])
    assert path.stat().st_size > 5_000


def test_subgoal_order_plans_phases_over_the_envs_subgoal_images(tiny_model_dir):
    """``subgoal_order`` [0, 0, 1, 2]: a second phase on the "grasped" image closes the gripper there (in place)
    before the lift; ``switch_after`` and ``subgoal_planner_config`` then count phases."""
    from dataclasses import replace

    from vjepa2_ac.evaluation import load_world_model, make_agent, make_env, run_episode

    wm, planning, _ = load_world_model(tiny_model_dir)
    settings = TaskSettings(max_steps=4, switch_after=[1, 1, 1, 1], subgoal_order=[0, 0, 1, 2],
                            subgoal_planner_config=[{"open_gripper": 0}, {"close_gripper": 0}, {"close_gripper": 0},
                                                    {"open_gripper": 0}])
    phased = replace(planning, tasks={**planning.tasks, "pick-place": settings})
    env = make_env(phased, "pick-place")
    try:
        _, info = env.reset(seed=4)
        agent = make_agent(wm, phased, "pick-place", info)
        assert len(agent.goals) == 4
        assert torch.equal(agent.goals[0], agent.goals[1])  # both phases plan to the "grasped" image's latent
        placed = wm.encode(np.asarray(info["subgoals"][2])[None, None]).reshape(agent.goals[3].shape)
        torch.testing.assert_close(agent.goals[3], placed)
        assert not torch.allclose(agent.goals[1], agent.goals[2])
        result = run_episode(env, wm, phased, "pick-place", seed=4)
        assert result.goal_indices == [0, 1, 2, 3]
        assert result.actions[0, 6] < 0 < result.actions[1, 6] and result.actions[2, 6] > 0 > result.actions[3, 6]
        phased.tasks["pick-place"] = replace(settings, subgoal_order=[0, 3])
        with pytest.raises(ValueError, match=r"subgoal_order names sub-goal\(s\) \[3\]; the env gives 3"):
            make_agent(wm, phased, "pick-place", info)
        phased.tasks["pick-place"] = replace(settings, subgoal_order=[0, 1, 2], switch_after=[1, 1])
        with pytest.raises(ValueError, match=r"subgoal_planner_config has 4 entries for 3 phases \(subgoal_order\)"):
            make_agent(wm, phased, "pick-place", info)
    finally:
        env.close()
    for bad in ([], [0, -1], [0, 1.5], "012", [True]):
        with pytest.raises(ValueError, match="subgoal_order must be a non-empty list"):
            TaskSettings(subgoal_order=bad)


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
