"""Planning files (phases), the converter from the old format, and THE agent builder (``vjepa2_ac.agent``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa2_ac.agent import (
    PhaseSpec,
    PlanningConfig,
    TaskPlan,
    build_agent,
    build_planner,
    load_world_model,
    make_env,
    upgrade_planning_dict,
)
from vjepa2_ac.agent.planning import task_name

BUNDLED_PLANNING = Path(__file__).resolve().parents[1] / "vjepa2_ac" / "models" / "vjepa2-ac-sim-small" / "planning.json"

# The bundled model's planning.json as it was written before phases (commit bc47a97): the converter must give the
# shipped file, so episodes plan exactly as before.
OLD_BUNDLED = {
    "camera": "dual", "image_size": 128, "env_kwargs": {"goal_gripper_yaw": "home", "pregrasp_height": 0.1},
    "planner": "cem", "planner_preset": "paper",
    "planner_config": {"samples": 64, "topk": 10, "iterations": 5, "dtype": "auto", "rescore": 16},
    "stop_on_success": True,
    "tasks": {
        "reach": {"max_steps": 40, "fallback_after": 10, "fallback_planner_config": {"horizon": 2}},
        "grasp": {"max_steps": 25, "switch_after": [4, 4],
                  "subgoal_planner_config": [{"constraint": "box", "open_gripper": 0},
                                             {"constraint": "box", "open_gripper": 0}, {"close_gripper": 0}]},
        "reach-with-object": {"max_steps": 20, "planner_config": {"close_gripper": 0}},
        "pick-place": {"max_steps": 30, "switch_after": [4, 4, 14, 8],
                       "subgoal_planner_config": [{"constraint": "box", "open_gripper": 0},
                                                  {"constraint": "box", "open_gripper": 0}, {"close_gripper": 0},
                                                  {"open_gripper": 0}]}}}

TINY = PlanningConfig(camera="workspace", image_size=64,
                      planner={"type": "cem", "preset": "paper", "samples": 16, "topk": 4, "iterations": 2},
                      stop_on_success=False)


@pytest.fixture(scope="module")
def tiny_model_dir(save_tiny_model):
    return save_tiny_model(TINY)


def with_task(planning: PlanningConfig, task: str, max_steps: int, *phases: dict) -> PlanningConfig:
    return replace(planning, tasks={**planning.tasks, task: TaskPlan(max_steps, list(phases))})


# ---------------------------------------------------------------------------------------------- the file
def test_defaults_when_the_file_is_missing(tmp_path):
    cfg = PlanningConfig.load(tmp_path)
    assert cfg == PlanningConfig() and cfg.source is None and PlanningConfig.load(None) == cfg
    pick = cfg.task("pick-place")
    assert [(p.goal, p.steps) for p in pick.phases] == [("grasped", 4), ("lifted", 10), ("placed", None)]  # paper
    assert cfg.task("grasp").phases == [PhaseSpec(goal="final")]  # the paper's one goal image, gripper searched
    assert cfg.planner.type == "cem" and cfg.planner.preset == "paper"


def test_round_trip_and_merged_planner_fields(tmp_path):
    data = {"camera": "workspace", "image_size": 96, "env_kwargs": {"msaa": 0},
            "planner": {"type": "cem", "preset": "paper", "samples": 50, "dtype": "bf16", "axis": {"6": 0.0}},
            "tasks": {"pick-place": {"max_steps": 30, "phases": [
                {"goal": "grasped", "steps": 4, "gripper": "open", "constraint": "box"},
                {"goal": "lifted", "switch_energy": 0.2, "gripper": "closed", "planner": {"samples": 70}},
                {"goal": "placed", "steps": None}]}}}
    (tmp_path / "planning.json").write_text(json.dumps(data))
    cfg = PlanningConfig.load(tmp_path)
    assert cfg.source == str(tmp_path / "planning.json")
    phases = cfg.task("pick-place").phases
    assert cfg.task("pick-place").max_steps == 30 and phases[1].switch_energy == 0.2 and phases[1].steps is None
    assert cfg.task("reach") == TaskPlan(20)  # unlisted tasks keep the defaults
    first = cfg.planner_fields(phases[0])
    assert first["dtype"] is torch.bfloat16 and first["axis"] == {6: 0.0}
    assert first["open_gripper"] == 0 and first["constraint"] == "box" and "close_gripper" not in first
    assert cfg.planner_fields(phases[1]) | {"dtype": None} == {"samples": 70, "dtype": None, "axis": {6: 0.0},
                                                                "close_gripper": 0}
    assert cfg.planner_fields(phases[1], samples=20)["samples"] == 20  # explicit overrides win
    assert cfg.planner_fields()["samples"] == 50
    planner = build_planner(cfg, phases[1])
    assert type(planner).__name__ == "CEM" and planner.config.samples == 70 and planner.config.close_gripper == 0
    assert planner.config.constraint == "l1_ball"  # the paper preset underneath
    assert build_planner(cfg, phases[0]).config.constraint == "box"
    assert cfg.env_kwargs_for("grasp", object="cup", backend="pybullet") == {
        "object": "cup", "backend": "pybullet", "camera": "workspace", "image_size": (96, 96), "msaa": 0}
    cfg.save(tmp_path / "copy")
    assert PlanningConfig.load(tmp_path / "copy") == cfg
    auto = PlanningConfig(planner={"dtype": "auto"})
    assert build_planner(auto).config.dtype == "auto"


@pytest.mark.parametrize("name, cls", [("cem", "CEM"), ("mppi", "MPPI"), ("icem", "ICEM"),
                                       ("gradient", "GradientPlanner")])
def test_build_planner_for_every_planner_type(name, cls):
    planner = build_planner(PlanningConfig(planner={"type": name, "horizon": 2}))
    assert type(planner).__name__ == cls and planner.config.horizon == 2
    # a CEM-tuned file asked for another planner keeps the shared fields only
    other = build_planner(PlanningConfig(planner={"samples": 32, "topk": 4, "maxnorm": 0.04}), planner="gradient")
    assert type(other).__name__ == "GradientPlanner" and other.config.maxnorm == 0.04


def test_samples_below_topk_lower_topk():
    cfg = PlanningConfig(planner={"samples": 64, "topk": 10})
    assert build_planner(cfg, samples=6).config.topk == 6
    assert build_planner(cfg, samples=32).config.topk == 10
    assert build_planner(cfg, samples=None).config.samples == 64  # None overrides are ignored


@pytest.mark.parametrize("data, match", [
    ({"cameras": "x"}, "unknown key"),
    ({"planner": {"type": "rrt"}}, "planner.type must be one of"),
    ({"planner": {"preset": "fast"}}, "planner.preset must be one of"),
    ({"planner": {"close_gripper": 0}}, "per phase"),
    ({"image_size": 8}, "image_size"),
    ({"stop_on_success": "yes"}, "stop_on_success"),
    ({"env_kwargs": {"camera": "wrist"}}, "env_kwargs must not set"),
    ({"tasks": {"stack": {}}}, "unknown task"),
    ({"tasks": {"pick_place": {}}}, "did you mean 'pick-place'"),
    ({"tasks": {"reach": {"max_steps": 0}}}, "max_steps"),
    ({"tasks": {"reach": {"steps": 3}}}, "unknown key"),
    ({"tasks": {"reach": {"phases": []}}}, "non-empty list"),
    ({"tasks": {"reach": {"phases": {"goal": "final"}}}}, "non-empty list"),
    ({"tasks": {"reach": {"phases": [{"goal": "final", "steps": 3}]}}}, "last phase"),
    ({"tasks": {"reach": {"phases": [{"goal": "final"}, {"goal": "final"}]}}}, "never ends"),
    ({"tasks": {"reach": {"phases": [{"goal": "final", "steps": 0}, {}]}}}, r"phases\[0\]: steps must be"),
    ({"tasks": {"reach": {"phases": [{"goal": "final", "steps": 2.5}, {}]}}}, "steps must be"),
    ({"tasks": {"reach": {"phases": [{"switch_energy": -1}, {}]}}}, "switch_energy"),
    ({"tasks": {"reach": {"phases": [{"gripper": "shut"}]}}}, "gripper must be one of"),
    ({"tasks": {"reach": {"phases": [{"constraint": "ball"}]}}}, "constraint must be one of"),
    ({"tasks": {"reach": {"phases": [{"planner": {"open_gripper": 0}}]}}}, "per phase"),
    ({"tasks": {"reach": {"phases": [{"planner": {"constraint": "box"}}]}}}, "phase's own"),
    ({"tasks": {"reach": {"phases": [{"planner": {"type": "mppi"}}]}}}, "must not set 'type'"),
    ({"tasks": {"reach": {"phases": [{"goal": "lifted"}]}}}, "does not render"),
    ({"tasks": {"grasp": {"phases": [{"goal": "pregrasp", "steps": 2}, {"goal": "final"}]}}}, "does not render"),
    ({"tasks": {"reach": {"phases": [{"goal": "final", "speed": 2}]}}}, "unknown key"),
])
def test_bad_files_get_one_clear_error(tmp_path, data, match):
    (tmp_path / "planning.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=match) as err:
        PlanningConfig.load(tmp_path)
    assert str(tmp_path / "planning.json") in str(err.value)  # the error names the file


@pytest.mark.parametrize("data", [
    {"planner": "cem"}, {"planner_preset": "paper"}, {"planner_config": {"samples": 3}},
    {"tasks": {"reach": {"fallback_after": 10, "fallback_planner_config": {"horizon": 2}}}},
    {"tasks": {"pick-place": {"switch_after": [4, 10, 4]}}},
    {"tasks": {"grasp": {"subgoal_planner_config": [{}, {"close_gripper": 0}]}}},
])
def test_the_old_format_is_refused_with_a_pointer_to_the_converter(data):
    with pytest.raises(ValueError, match="old .*format.*vjepa2-ac upgrade-planning"):
        PlanningConfig.from_dict(data)


def test_bad_json_and_unknown_planner_field(tmp_path):
    (tmp_path / "planning.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        PlanningConfig.load(tmp_path)
    with pytest.raises(ValueError, match=r"unknown CEMConfig field\(s\) \['sample'\]"):
        build_planner(PlanningConfig(planner={"sample": 3}))
    with pytest.raises(ValueError, match="unknown task"):
        task_name("stack")
    with pytest.raises(FileNotFoundError):
        PlanningConfig.load(tmp_path / "nope.json")


# ---------------------------------------------------------------------------------------------- the converter
def test_the_converter_turns_the_old_bundled_file_into_the_shipped_one():
    new = upgrade_planning_dict(OLD_BUNDLED)
    assert PlanningConfig.from_dict(new) == PlanningConfig.load(BUNDLED_PLANNING)
    reach = new["tasks"]["reach"]["phases"]
    assert reach == [{"goal": "final", "steps": 10, "gripper": "search"},
                     {"goal": "final", "steps": None, "gripper": "search", "planner": {"horizon": 2}}]
    assert [p["goal"] for p in new["tasks"]["pick-place"]["phases"]] == ["pregrasp", "grasped", "lifted", "placed"]


def test_the_converter_handles_switch_energy_order_fallback_and_one_image_tasks():
    old = {"planner_config": {"samples": 50},
           "tasks": {"pick_place": {"switch_energy": 0.2, "subgoal_order": [0, 0, 1, 2],
                                    "planner_config": {"samples": 60},
                                    "subgoal_planner_config": [{"open_gripper": 0}, {"close_gripper": 0}, {},
                                                               {"open_gripper": 0}],
                                    "fallback_after": 3, "fallback_planner_config": {"horizon": 2}},
                     "grasp": {"max_steps": 9, "switch_after": [2], "use_subgoals": False,
                               "subgoal_planner_config": [{}, {"close_gripper": 0}]}}}
    new = upgrade_planning_dict(old)
    pick = new["tasks"]["pick-place"]["phases"]
    assert [(p["goal"], p["steps"], p.get("switch_energy"), p["gripper"]) for p in pick] == [
        ("grasped", None, 0.2, "open"), ("grasped", None, 0.2, "closed"), ("lifted", None, 0.2, "search"),
        ("placed", 3, None, "open"), ("placed", None, None, "open")]
    assert pick[-1]["planner"] == {"samples": 60, "horizon": 2} and pick[0]["planner"] == {"samples": 60}
    assert new["tasks"]["grasp"] == {"max_steps": 9, "phases": [{"goal": "final", "steps": None,
                                                                  "gripper": "search"}]}  # use_subgoals false
    assert new["planner"] == {"type": "cem", "preset": "paper", "samples": 50}
    PlanningConfig.from_dict(new)  # loads
    with pytest.raises(ValueError, match="no phase form"):
        upgrade_planning_dict({"tasks": {"reach": {"planner_config": {"close_gripper": 1}}}})


def test_upgrade_planning_command(tmp_path, capsys):
    from vjepa2_ac.cli import main

    (tmp_path / "old.json").write_text(json.dumps(OLD_BUNDLED))
    assert main(["upgrade-planning", str(tmp_path / "old.json"), "--out", str(tmp_path / "new.json")]) == 0
    assert PlanningConfig.load(tmp_path / "new.json") == PlanningConfig.load(BUNDLED_PLANNING)
    assert main(["upgrade-planning", str(tmp_path / "old.json")]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["tasks"]["reach"]["max_steps"] == 40
    (tmp_path / "bad.json").write_text("[1]")
    assert main(["upgrade-planning", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: a planning config must be a JSON object" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- the builder
def test_the_builder_makes_one_phase_per_planning_phase_with_its_goal_and_planner(tiny_model_dir):
    wm, planning, _ = load_world_model(tiny_model_dir)
    phased = with_task(planning, "pick-place", 4,
                       {"goal": "grasped", "steps": 1, "gripper": "open"},
                       {"goal": "grasped", "steps": 1, "gripper": "closed"},
                       {"goal": "lifted", "steps": 1, "gripper": "closed", "planner": {"samples": 8}},
                       {"goal": "placed", "gripper": "open"})
    env = make_env(phased, "pick-place")
    try:
        _, info = env.reset(seed=4)
        assert set(info["goals"]) == {"grasped", "lifted", "placed", "final"}
        assert info["goals"]["final"] is info["goals"]["placed"]
        agent = build_agent(wm, phased, "pick-place", info["goals"], seed=4)
        assert [(p.name, p.steps) for p in agent.phases] == [("grasped", 1), ("grasped", 1), ("lifted", 1),
                                                              ("placed", None)]
        assert agent.goals[0] is agent.goals[1]  # one goal image, encoded once, for both phases
        placed = wm.encode(np.asarray(info["goals"]["placed"])[None, None])
        torch.testing.assert_close(agent.goals[3], placed)
        cfgs = [p.planner.config for p in agent.phases]
        assert [c.open_gripper for c in cfgs] == [0, None, None, 0] and [c.close_gripper for c in cfgs] == [
            None, 0, 0, None]
        assert [c.samples for c in cfgs] == [16, 16, 8, 16]
        with pytest.raises(ValueError, match=r"phase 0 plans to the goal image 'grasped'.*\['final'\]"):
            build_agent(wm, phased, "pick-place", {"final": info["goals"]["final"]})
        with pytest.raises(ValueError, match="goals must map goal names"):
            build_agent(wm, phased, "pick-place", [info["goals"]["final"]])
    finally:
        env.close()


def test_phases_drive_the_gripper_in_an_episode(tiny_model_dir):
    from vjepa2_ac.eval import run_episode

    wm, planning, _ = load_world_model(tiny_model_dir)
    phased = with_task(planning, "pick-place", 4,
                       {"goal": "grasped", "steps": 1, "gripper": "open"},
                       {"goal": "grasped", "steps": 1, "gripper": "closed"},
                       {"goal": "lifted", "steps": 1, "gripper": "closed"},
                       {"goal": "placed", "gripper": "open"})
    env = make_env(phased, "pick-place")
    try:
        result = run_episode(env, wm, phased, "pick-place", seed=4)
    finally:
        env.close()
    assert result.phases == [0, 1, 2, 3] and [name for name, _ in result.goals] == [
        "grasped", "grasped", "lifted", "placed"]
    assert result.actions[0, 6] < 0 < result.actions[1, 6] and result.actions[2, 6] > 0 > result.actions[3, 6]
    assert result.summary()["phase_goals"] == ["grasped", "grasped", "lifted", "placed"]


def test_a_second_phase_on_the_same_goal_changes_only_the_later_plans(tiny_model_dir):
    """Reach's look-ahead: the same actions until the hand-over, then the second phase's planner."""
    from vjepa2_ac.eval import run_episode

    wm, planning, _ = load_world_model(tiny_model_dir)
    late = with_task(planning, "reach", 3, {"goal": "final", "steps": 2},
                     {"goal": "final", "planner": {"horizon": 2}})
    plain = with_task(planning, "reach", 3, {"goal": "final"})
    env = make_env(late, "reach")
    try:
        a = run_episode(env, wm, late, "reach", seed=3)
        b = run_episode(env, wm, plain, "reach", seed=3)
    finally:
        env.close()
    assert a.steps == b.steps == 3 and a.phases == [0, 0, 1] and b.phases == [0, 0, 0]
    np.testing.assert_array_equal(a.actions[:2], b.actions[:2])
    assert not np.allclose(a.actions[2], b.actions[2])


def test_grasp_plans_to_one_image_or_through_its_goal_images(tiny_model_dir):
    from vjepa2_ac.eval import run_episode

    wm, planning, _ = load_world_model(tiny_model_dir)
    env = make_env(planning, "grasp")
    try:
        _, info = env.reset(seed=2)
        assert list(info["goals"]) == ["grasped", "lifted", "final"]
        assert len(build_agent(wm, planning, "grasp", info["goals"]).phases) == 1  # the paper's one-image protocol
        two = with_task(planning, "grasp", 3, {"goal": "grasped", "steps": 1}, {"goal": "lifted", "gripper": "closed"})
        result = run_episode(env, wm, two, "grasp", seed=2)
    finally:
        env.close()
    assert result.phases == [0, 1, 1] and np.all(result.actions[1:, 6] > 0.95)


def test_the_random_baseline_samples_what_every_phase_shares():
    """The bundled tasks: reach, grasp and pick-place search the gripper (their phases differ or search it),
    reach-with-object holds it closed in its only phase."""
    from vjepa2_ac.eval.episode import shared_phase

    cfg = PlanningConfig.load(BUNDLED_PLANNING)
    forced = {task: build_planner(cfg, shared_phase(cfg.task(task).phases)).config.action_space().forced_gripper
              for task in cfg.tasks}
    assert forced == {"reach": None, "grasp": None, "reach-with-object": (0, 1.0), "pick-place": None}
    shared = shared_phase([PhaseSpec("a", 1, gripper="open", constraint="box", planner={"samples": 8, "horizon": 2}),
                            PhaseSpec("b", gripper="open", constraint="box", planner={"samples": 8})])
    assert (shared.gripper, shared.constraint, shared.planner) == ("open", "box", {"samples": 8})
