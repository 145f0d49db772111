"""Evaluation suites (``eval --suite recipe|paper|shift``): the paper's protocol defined in code, factors of
variation as cells beside the nominal one, the paired comparison of two runs, and parallel workers with identical
results. Everything runs on the tiny random world model of ``conftest.py``."""

from __future__ import annotations

import argparse
import importlib
import json

import pytest

from vjepa2_ac.agent import PlanningConfig, TaskPlan, build_planner
from vjepa2_ac.agent.planning import PhaseSpec
from vjepa2_ac.eval import CellResult, EpisodeResult, evaluate
from vjepa2_ac.eval.stats import compare_cells, mcnemar_exact, relate_to_nominal, results_table
from vjepa2_ac.eval.suite import SHIFT_FACTORS, check_factors, factor_env, paper_planning, suite_planning

TINY = PlanningConfig(camera="workspace", image_size=64, planner={"samples": 16, "topk": 4, "iterations": 2},
                      tasks={"reach": TaskPlan(2, [PhaseSpec(steps=1), PhaseSpec(planner={"horizon": 2})])})
BUNDLED = "vjepa2_ac/models/vjepa2-ac-sim-small"


@pytest.fixture(scope="module")
def tiny_model_dir(save_tiny_model):
    return save_tiny_model(TINY)


def run_eval(argv: list[str]) -> int:
    module = importlib.import_module("vjepa2_ac.commands.eval")
    parser = argparse.ArgumentParser(prog="vjepa2-ac eval")
    module.configure(parser)
    args = parser.parse_args(argv)
    args.command = "eval"
    return module.run(args)


# ------------------------------------------------------------------------------------------------ the paper suite
def test_paper_suite_is_the_papers_protocol_with_only_the_models_budget():
    model = PlanningConfig.load(BUNDLED)
    paper = paper_planning(model)
    assert (paper.camera, paper.image_size) == (model.camera, model.image_size)  # the model's input
    assert paper.env_kwargs == {}  # the env's default goal rendering: no pre-grasp image, goals face the object
    assert paper.planner.type == "cem" and paper.planner.preset == "paper"
    assert paper.planner.fields == {k: model.planner.fields[k] for k in ("samples", "iterations", "dtype")}
    assert "rescore" in model.planner.fields and "rescore" not in paper.planner.fields
    assert paper.stop_on_success
    for task in ("reach", "grasp"):
        assert paper.task(task) == TaskPlan(20, [PhaseSpec("final", gripper="search")])
    assert paper.task("reach-with-object") == TaskPlan(20, [PhaseSpec("final", gripper="closed")])
    assert [(p.goal, p.steps, p.gripper) for p in paper.task("pick-place").phases] == [
        ("grasped", 4, "search"), ("lifted", 10, "search"), ("placed", None, "search")]
    assert paper.task("pick-place").max_steps == 18
    cem = build_planner(paper, paper.task("grasp").phases[0]).config
    assert (cem.horizon, cem.maxnorm, cem.constraint, cem.topk) == (1, 0.075, "l1_ball", 10)
    assert cem.close_gripper is None and 6 in cem.action_space().dims  # the gripper is searched
    assert (cem.samples, cem.iterations) == (model.planner.fields["samples"], model.planner.fields["iterations"])
    held = build_planner(paper, paper.task("reach-with-object").phases[0]).config
    assert held.close_gripper == 0


def test_paper_suite_is_the_same_for_every_model():
    tuned = PlanningConfig.from_dict({
        "camera": "dual", "image_size": 128, "env_kwargs": {"pregrasp_height": 0.1, "goal_gripper_yaw": "home"},
        "planner": {"type": "mppi", "preset": "official", "samples": 32, "horizon": 3, "maxnorm": 0.02},
        "stop_on_success": False,
        "tasks": {"grasp": {"max_steps": 9, "phases": [{"goal": "pregrasp", "steps": 2, "gripper": "open"},
                                                       {"goal": "lifted", "steps": None, "gripper": "closed"}]}}})
    plain = PlanningConfig(camera="dual", image_size=128, planner={"samples": 32})
    assert paper_planning(tuned) == paper_planning(plain)
    assert suite_planning("recipe", tuned) is tuned and suite_planning("shift", tuned) is tuned
    with pytest.raises(ValueError, match="suite must be one of"):
        suite_planning("papers", tuned)


# ------------------------------------------------------------------------------------------------ factors
def test_factors_map_to_env_options_and_bad_names_are_named():
    assert factor_env(None, "mujoco") == ("mujoco", {})
    assert factor_env("lighting", "pybullet") == ("pybullet", {"factors": ["lighting"]})
    assert factor_env("pybullet", "mujoco") == ("pybullet", {})
    from envs.factors import FACTORS

    assert factor_env("all", "mujoco") == ("mujoco", {"factors": list(FACTORS)})
    assert set(SHIFT_FACTORS) == {*FACTORS, "all", "pybullet"}
    with pytest.raises(ValueError, match=r"unknown factor\(s\) \['fog'\]; expected some of"):
        check_factors(["lighting", "fog"])
    with pytest.raises(ValueError, match="needs backend 'mujoco'"):
        factor_env("pybullet", "pybullet")


# ------------------------------------------------------------------------------------------------ statistics
def test_exact_mcnemar_on_known_tables():
    assert mcnemar_exact([1] * 5 + [0] * 5, [0] * 5 + [0] * 5) == {"pairs": 10, "a_only": 5, "b_only": 0,
                                                                     "p_value": pytest.approx(2 * 0.5**5)}
    same = mcnemar_exact([1, 0, 1], [1, 0, 1])
    assert same["p_value"] == 1.0 and same["a_only"] == same["b_only"] == 0
    # 7 vs 1 discordant pairs: two-sided exact binomial p = 2 * P(X <= 1 | n=8, 1/2) = 2 * 9 / 256
    test = mcnemar_exact([1] * 7 + [0] + [1] * 4, [0] * 7 + [1] + [1] * 4)
    assert (test["a_only"], test["b_only"]) == (7, 1) and test["p_value"] == pytest.approx(18 / 256)
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar_exact([1], [1, 0])


def _episode(seed: int, success: bool, factor=None, backend="mujoco") -> EpisodeResult:
    import numpy as np

    return EpisodeResult("reach", "cube", backend, "model", seed, success, 0.01, 1, 0.1, np.zeros((1, 7)),
                         latencies=[0.1], factor=factor)


def test_cells_relate_to_their_nominal_cell_and_compare_on_shared_seeds():
    nominal = CellResult.from_episodes([_episode(s, s % 2 == 0) for s in range(4)])
    light = CellResult.from_episodes([_episode(s, s == 0, "lighting") for s in range(4)])
    bullet = CellResult.from_episodes([_episode(s, False, "pybullet", "pybullet") for s in range(4)])
    relate_to_nominal([nominal, light, bullet])
    assert nominal.relative_to_nominal is None and light.relative_to_nominal == 0.5
    assert bullet.relative_to_nominal == 0.0
    table = results_table([nominal, light, bullet])
    assert "| factor |" in table and "| reach | cube | mujoco | lighting | model | 25% (1/4) |" in table
    other = {"suite": "shift", "cells": [CellResult.from_episodes([_episode(s, True) for s in range(4)]).to_dict()]}
    compare_cells([nominal, light], other)
    assert nominal.compare["a_only"] == 0 and nominal.compare["b_only"] == 2 and nominal.compare["pairs"] == 4
    assert light.compare is None  # no such cell in the other run
    assert "paired p (McNemar)" in results_table([nominal])
    shifted = {"cells": [CellResult.from_episodes([_episode(s, True) for s in range(1, 5)]).to_dict()]}
    with pytest.raises(ValueError, match="on other seeds"):
        compare_cells([nominal], shifted)
    bare = {"cells": [{**other["cells"][0], "episode_results": []}]}
    with pytest.raises(ValueError, match="no per-episode results"):
        compare_cells([nominal], bare)


# ------------------------------------------------------------------------------------------------ end to end
def test_shift_suite_writes_cells_beside_the_nominal_one(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "shift.json"
    assert run_eval(["--model", str(tiny_model_dir), "--task", "reach", "--suite", "shift", "--factors", "lighting",
                     "pybullet", "--episodes", "2", "--seed", "5", "--json", str(path), "--no-progress"]) == 0
    report = json.loads(path.read_text())
    assert report["suite"] == "shift" and report["factors"] == ["lighting", "pybullet"]
    cells = report["cells"]
    assert [(c["factor"], c["backend"]) for c in cells] == [(None, "mujoco"), ("lighting", "mujoco"),
                                                            ("pybullet", "pybullet")]
    for c in cells:
        assert {"task", "object", "backend", "factor", "episodes", "successes", "success_rate", "ci_low", "ci_high",
                "mean_final_distance", "seconds_per_action", "seeds", "episode_results"} <= set(c)
        assert c["seeds"] == [5, 6] and [e["factor"] for e in c["episode_results"]] == [c["factor"]] * 2
    # the same initial states: the nominal and the lighting cell differ only in what the camera sees
    assert cells[0]["episode_results"][0]["actions"] != cells[1]["episode_results"][0]["actions"]
    markdown = path.with_suffix(".md").read_text()
    assert "eval --suite shift" in markdown and "| reach | cube | mujoco | lighting | model |" in markdown
    # a paired comparison against the same run: no discordant pair
    again = tmp_path / "again.json"
    assert run_eval(["--model", str(tiny_model_dir), "--task", "reach", "--suite", "shift", "--factors", "lighting",
                     "pybullet", "--episodes", "2", "--seed", "5", "--json", str(again), "--no-progress",
                     "--compare", str(path)]) == 0
    compared = json.loads(again.read_text())["cells"]
    assert all(c["compare"]["p_value"] == 1.0 and c["compare"]["pairs"] == 2 for c in compared)
    assert "paired p (McNemar)" in capsys.readouterr().out


def test_paper_suite_end_to_end_records_its_planning(tiny_model_dir, tmp_path):
    path = tmp_path / "paper.json"
    assert run_eval(["--model", str(tiny_model_dir), "--task", "reach-with-object", "--suite", "paper",
                     "--episodes", "1", "--max-steps", "2", "--json", str(path), "--no-progress"]) == 0
    report = json.loads(path.read_text())
    assert report["suite"] == "paper" and report["factors"] is None
    assert report["planning"] == paper_planning(TINY).to_dict()
    assert report["cells"][0]["factor"] is None


@pytest.mark.parametrize("argv,match", [
    (["--suite", "papers"], "--suite: suite must be one of"),
    (["--suite", "shift", "--factors", "fog"], r"--factors: unknown factor\(s\) \['fog'\]"),
    (["--factors", "lighting"], "--factors applies to --suite shift only"),
    (["--suite", "shift", "--factors", "pybullet", "--backend", "pybullet"], "--factors pybullet moves"),
    (["--workers", "0"], "--workers must be >= 1"),
])
def test_eval_names_the_bad_suite_argument(tiny_model_dir, argv, match):
    with pytest.raises(SystemExit, match=match):
        run_eval(["--model", str(tiny_model_dir), "--task", "reach", *argv])


def test_compare_refuses_another_suite_or_other_seeds(tiny_model_dir, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"suite": "paper", "seed": 1000, "episodes": 2, "cells": []}))
    with pytest.raises(SystemExit, match="--compare: .* is of suite 'paper', this run is 'recipe'"):
        run_eval(["--model", str(tiny_model_dir), "--compare", str(other), "--episodes", "2"])
    with pytest.raises(SystemExit, match="a paired test needs the same seeds"):
        run_eval(["--model", str(tiny_model_dir), "--suite", "paper", "--compare", str(other), "--episodes", "3"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="is not an eval JSON"):
        run_eval(["--model", str(tiny_model_dir), "--compare", str(tmp_path / "bad.json")])


def test_workers_give_the_results_of_one_process(tiny_world_model):
    kwargs = dict(tasks=["reach"], objects=["cube"], factors=[None, "lighting"], episodes=3, seed=11,
                  baselines=["random"], progress=False)
    one = evaluate(tiny_world_model, TINY, **kwargs)
    two = evaluate(tiny_world_model, TINY, workers=2, **kwargs)
    assert [c.key for c in one] == [c.key for c in two]
    for a, b in zip(one, two):
        for x, y in zip(a.episode_results, b.episode_results):
            assert {k: v for k, v in x.items() if k not in ("latencies", "seconds_per_action")} == \
                   {k: v for k, v in y.items() if k not in ("latencies", "seconds_per_action")}
