"""The benchmark and investigation scripts that diagnose the bundled model run end to end on tiny settings."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(path: str):
    """The script ``ROOT / path`` as a module (``"benchmarks/bench_encoder_probe.py"``)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reach_oracle_candidates_cover_the_cube_of_moves():
    moves = load("investigations/reach_oracle.py").candidate_moves(0.04)
    assert moves.shape == (27, 7) and moves.dtype == np.float32
    assert len({tuple(m) for m in moves[:, :3].tolist()}) == 27 and (moves[:, 3:] == 0).all()
    np.testing.assert_allclose(np.unique(moves[:, :3]), [-0.04, 0.0, 0.04])


def test_reach_oracle_runs_every_scorer(monkeypatch, capsys):
    bench = load("investigations/reach_oracle.py")
    monkeypatch.setattr(sys, "argv", ["reach_oracle.py", "--episodes", "1", "--steps", "2"])
    bench.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "/1 |" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["distance", "encoder", "predictor"]
    start, final, best = (float(x) for x in rows[0].split("|")[4].split("/"))
    assert best <= final < start  # two greedy steps on the true distance move towards the goal


def test_reach_oracle_ranking_compares_predicted_and_real_energies(monkeypatch, capsys):
    bench = load("investigations/reach_oracle.py")
    monkeypatch.setattr(sys, "argv", ["reach_oracle.py", "--ranking", "--episodes", "2"])
    bench.main()
    rows = {r.split("|")[1].strip(): float(r.split("|")[2]) for r in capsys.readouterr().out.splitlines()
            if r.startswith("| ") and r.split("|")[2].strip()[:1] in "+-"}
    assert set(rows) == {"rho pred-real", "rho real-distance", "rho pred-distance", "bias moves", "bias stay",
                         "regret real (cm)", "regret pred (cm)"}
    assert all(-1 <= rows[k] <= 1 for k in rows if k.startswith("rho"))
    assert rows["regret real (cm)"] >= 0 and rows["regret pred (cm)"] >= 0
    assert abs(rows["bias stay"]) < abs(rows["bias moves"])  # residual predictor: staying put is predicted exactly


def test_encoder_probe_reports_arm_object_and_grasp_figures(monkeypatch, capsys):
    bench = load("benchmarks/bench_encoder_probe.py")
    monkeypatch.setattr(sys, "argv", ["bench_encoder_probe.py", "--episodes", "1", "--samples", "12"])
    bench.main()
    rows = {r.split("|")[1].strip(): float(r.split("|")[2]) for r in capsys.readouterr().out.splitlines()
            if r.startswith("| ") and r.split("|")[2].strip() not in ("mean", "---")}
    assert set(rows) == {"arm rho", "object rho", "object 15 cm / arm 2 cm", "grasp: object left behind / arm 2 cm",
                         "grasp: closed at object / arm 2 cm", "grasp path: largest rise / start energy"}
    assert rows["arm rho"] > 0.3  # the bundled encoder's energy grows with the gripper's distance to the goal
    assert rows["grasp: closed at object / arm 2 cm"] > 1  # 12 cm below the goal pose costs more than 2 cm off it
    assert rows["object 15 cm / arm 2 cm"] > 0 and rows["grasp: object left behind / arm 2 cm"] > 0
    assert rows["grasp path: largest rise / start energy"] > 0  # the bundled model's energy: the grasp climbs a ridge


def test_pick_place_stages_replays_recorded_episodes(tmp_path, capsys):
    import dataclasses
    import json

    import envs
    from vjepa2_ac.agent import BUNDLED_MODEL, PhaseSpec, PlanningConfig, make_env

    planning = PlanningConfig.load(None)  # built-in defaults: phases "grasped", "lifted", "placed"
    env = make_env(planning, "pick-place", max_steps=80)
    obs, _ = env.reset(seed=0)
    expert, actions, grasped, info = envs.scripted_expert(env), [], [], {}
    for _ in range(80):  # the scripted expert picks and places the cube
        actions.append(expert(obs).tolist())
        obs, _, terminated, _, info = env.step(np.asarray(actions[-1], np.float32))
        grasped.append(env.unwrapped.sim.object_grasped())
        if terminated:
            break
    env.close()
    assert info["is_success"] and any(grasped)
    switch = grasped.index(True) + 3  # switch to the "lifted" goal while the expert holds the cube
    rng = np.random.default_rng(0)
    dropped = [[0, 0, 0, 0, 0, 0, -1.0]] * 4  # opens the gripper on the table: nothing grasped
    goals = ["grasped", "lifted", "placed"]
    episodes = [
        {"seed": 0, "success": True, "actions": actions,
         "phases": [0] * switch + [1] * (len(actions) - switch), "phase_goals": goals},
        {"seed": 1, "success": True, "actions": dropped + rng.uniform(-0.02, 0.02, (4, 7)).tolist(),  # wrong record
         "phases": [0] * 4 + [1] * 4, "phase_goals": goals},
    ]
    cell = {"task": "pick-place", "object": "cube", "backend": "mujoco", "policy": "model", "episode_results": episodes}
    path = tmp_path / "pp.json"
    path.write_text(json.dumps({"planning": planning.to_dict(), "cells": [cell]}))
    load("investigations/pick_place_stages.py").main([str(path), "--model", str(BUNDLED_MODEL)])
    out = capsys.readouterr()
    header, _, row, _, _, *choices = [line for line in out.out.splitlines() if line.startswith("|")]
    counts = {k.strip(): int(v) for k, v in zip(header.strip("|").split("|")[4:], row.strip("|").split("|")[4:])}
    assert counts == {"episodes": 2, "open at object": 1, "grasped": 1, "held at switch": 1, "kept 3 steps": 1,
                      "opens at switch": 0, "lifted 5 cm": 1, "success": 1}
    assert "seeds [1]" in out.err  # the replay disagrees with the (wrong) recorded success of seed 1
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in choices]
    assert [c[:2] for c in cells] == [["open at object", "predictor"], ["open at object", "real next frame"],
                                      ["held at switch", "predictor"], ["held at switch", "real next frame"]]
    for _, _, first, second, prefers in cells:  # the expert's episode has one state of each kind
        assert float(first.split(": ")[1]) > 0 and float(second.split(": ")[1]) > 0
        assert prefers.split(": ")[1] in ("0/1", "1/1")
    bench = load("investigations/pick_place_stages.py")
    env = make_env(planning, "pick-place", max_steps=80)
    try:
        expected = bench.replay_episode(env, episodes[0])[0]
        # two phases on the "grasped" image (the second closes the gripper in place), then lift: same stages
        phased = {**episodes[0], "phases": [0] * (switch - 1) + [1] + [2] * (len(actions) - switch),
                  "phase_goals": ["grasped", "grasped", "lifted", "placed"]}
        flags, marks = bench.replay_episode(env, phased)
        assert flags == expected and marks["release"] == switch
        assert flags["held at switch"] and flags["success"]
        # a record without phase_goals takes them from the planning config's phases
        plan = planning.task("pick-place")
        closing = dataclasses.replace(plan, phases=[dataclasses.replace(plan.phases[0], steps=switch - 1),
                                                    PhaseSpec("grasped", 1, gripper="closed"), *plan.phases[1:]])
        bare = {k: v for k, v in phased.items() if k != "phase_goals"}
        assert bench.replay_episode(env, bare, [ph.goal for ph in closing.phases]) == (flags, marks)
        with pytest.raises(ValueError, match="phase_goals"):
            bench.replay_episode(env, bare)
    finally:
        env.close()
    # a pre-grasp goal first (env option pregrasp_height): phase 1 plans to "grasped", 2 to "lifted"; same stages
    pre = PlanningConfig.from_dict({**planning.to_dict(), "env_kwargs": {**planning.env_kwargs, "pregrasp_height": 0.1}})
    env = make_env(pre, "pick-place", max_steps=80)
    try:
        assert env.unwrapped.goal_names == ("pregrasp", "grasped", "lifted", "placed")
        shifted = {**episodes[0], "phases": [0] * 2 + [1] * (switch - 2) + [2] * (len(actions) - switch),
                   "phase_goals": ["pregrasp", "grasped", "lifted", "placed"]}
        flags, marks = bench.replay_episode(env, shifted)
        assert flags == expected == {"open at object": True, "grasped": True, "held at switch": True,
                                     "kept 3 steps": True, "opens at switch": False, "lifted 5 cm": True,
                                     "success": True}
        assert marks["release"] == switch
    finally:
        env.close()


def test_grasp_precision_plans_towards_the_grasp_pose_and_measures_the_tolerance(monkeypatch, capsys):
    bench = load("investigations/grasp_precision.py")
    assert bench.parse_config("it10:iterations=10,constraint=box") == ("it10", {"iterations": 10, "constraint": "box"})
    monkeypatch.setattr(sys, "argv", ["grasp_precision.py", "--scenes", "1", "--starts", "1", "--steps", "1",
                                      "--configs", "shipped", "--tolerance", "0"])
    bench.main()
    rows = {r.split("|")[1].strip(): r.split("|")[2:-1] for r in capsys.readouterr().out.splitlines()
            if r.startswith("| ") and "/1 |" in r}
    assert set(rows) == {"planner: shipped", "no planning, 0 cm off"}
    start, after = (float(x) for x in rows["planner: shipped"][0].split())
    assert start >= 1.5 and after < start  # one step of the shipped planner moves the open gripper onto the cube
    assert rows["no planning, 0 cm off"][1].strip().startswith("0.00 /")  # no xy error when put on the grasp pose


def test_goal_image_pose_finds_the_energy_minimum_and_grasps(monkeypatch, capsys):
    bench = load("investigations/goal_image_pose.py")
    half = np.radians(35.0)  # a cube turned 70 deg is 20 deg off a face
    assert bench.relative_yaw_deg(np.array([np.cos(half), 0, 0, np.sin(half)])) == pytest.approx(20.0)
    assert bench.grid_offsets(2.0, 2.0).shape == (27, 3)
    monkeypatch.setattr(sys, "argv", ["goal_image_pose.py", "--scenes", "1", "--grid", "2", "--reach", "2"])
    bench.main()
    out = capsys.readouterr().out
    rows = {r.split("|")[1].strip(): r.split("|")[2:-1] for r in out.splitlines() if r.startswith("| ") and "/1 |" in r}
    assert set(rows) == set(bench.VARIANTS)
    # the goal image that matches the rendered gripper (home yaw, open) has its minimum on the grasp pose
    assert float(rows["home yaw, open"][0]) == 0.0
    assert "static close at the grasp pose: home-oriented" in out


def test_reach_failures_replays_and_walks_to_the_goal(tmp_path, capsys):
    import json

    from vjepa2_ac.agent import PlanningConfig, make_env
    from vjepa2_ac.eval import task_distance

    planning = PlanningConfig.load(None)  # the bundled model's camera and image size
    env = make_env(planning, "reach", max_steps=10)
    env.reset(seed=3)
    away = -0.05 * (env.unwrapped.goal["position"] - env.unwrapped.get_ee_pose()[0])
    away /= np.linalg.norm(away) / 0.05  # 5 cm per action, straight away from the goal
    actions = [[*away, 0, 0, 0, 0]] * 3
    for a in actions:
        env.step(np.asarray(a, np.float32))
    final = task_distance(env, "reach")
    env.close()
    episodes = [{"seed": 3, "success": False, "final_distance": final, "actions": actions},
                {"seed": 3, "success": False, "final_distance": final + 0.05, "actions": actions},  # wrong record
                {"seed": 4, "success": True, "final_distance": 0.0, "actions": []}]  # skipped without --all
    cell = {"task": "reach", "object": "cube", "backend": "mujoco", "policy": "model", "episode_results": episodes}
    path = tmp_path / "reach.json"
    path.write_text(json.dumps({"planning": planning.to_dict(), "cells": [cell]}))
    bench = load("investigations/reach_failures.py")
    bench.main([str(path), "--step", "0.05"])
    out = capsys.readouterr()
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in out.out.splitlines() if r.startswith("| reach.json")]
    assert [r[1] for r in rows] == ["3", "3"]
    stop, stop_energy, top, rise, falls_at, goal, goal_energy = (float(x) for x in rows[0][3:10])
    assert abs(stop - 100 * final) < 0.05 and goal < 0.5  # replayed to the recorded stop, then walked to the goal
    assert goal_energy < stop_energy <= top and rise == pytest.approx(top - stop_energy, abs=2e-4)
    assert goal <= falls_at < stop
    assert rows[0][10] == ("local minimum" if rise > 0.001 else "falls to the goal")
    assert "failed: 2 episodes; a local minimum of the real energy at the stop" in out.out and "seeds [3]" in out.err
    assert "succeeded:" not in out.out  # the success is skipped without --all
    bench.main([str(path), "--step", "0.05", "--all", "--from-start"])  # every episode, from the home pose
    out = capsys.readouterr()
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in out.out.splitlines() if r.startswith("| reach.json")]
    assert [r[1] for r in rows] == ["3", "3", "4"] and rows[0][3:] == rows[1][3:]  # same start, whatever the record
    assert float(rows[0][3]) < 100 * final - 10  # the start is 15 cm nearer the goal than the stop
    assert "succeeded: 1 episodes" in out.out and "failed: 2 episodes" in out.out and "seeds" not in out.err
    with pytest.raises(SystemExit):
        bench.main([str(tmp_path / "missing.json")])


def test_bench_plan_profile_prints_its_tables(monkeypatch, capsys):
    bench = load("benchmarks/bench_plan_profile.py")
    monkeypatch.setattr(sys, "argv", ["bench_plan_profile.py", "--repeats", "1", "--grids", "2", "--embed-dim", "32"])
    bench.main()
    out = capsys.readouterr().out
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| fp32 ")]
    assert rows and float(rows[0][2]) > 1.0  # GFLOP per plan of the bundled model (32 with its 64 x 5 budget)
    assert "| matmul |" in out and "| Python and dispatch" in out
    released = [line for line in out.splitlines() if line.startswith("| 2x2 | fp32 |")]
    assert len(released) == 1 and released[0].split("|")[5].strip().endswith("x")


def test_latent_steps_finds_the_transitions_that_dominate_a_squared_loss(monkeypatch, capsys):
    """Two episodes of small steps and one large jump: the jump carries most of the squared change, less of the
    absolute change, and is listed first."""
    bench = load("investigations/latent_steps.py")

    class Cache:  # the LatentCache interface the script reads
        tokens_per_frame, embed_dim = 4, 3

        def __init__(self, path):
            steps = np.full((2, 50, 4, 3), 0.01)
            steps[1, 20] = 1.0  # episode 1, transition 20 -> 21
            self.latents = np.concatenate([np.zeros((2, 1, 4, 3)), np.cumsum(steps, axis=1)], axis=1)  # [E, 51, 4, 3]

        def __len__(self):
            return 2

        def episode_length(self, i):
            return 51

        def episode_name(self, i):
            return f"ep{i}"

        def read(self, i, indices):
            return self.latents[i][indices].astype(np.float32), np.zeros((len(indices), 7))

    monkeypatch.setattr(bench, "LatentCache", Cache)
    bench.main(["cache", "--top", "2"])
    out = capsys.readouterr().out
    assert "100 transitions of 2 episodes" in out
    squared = next(line for line in out.splitlines() if line.startswith("| mean squared"))
    cells = [c.strip() for c in squared.split("|")[1:-1]]
    assert float(cells[2]) == pytest.approx(1e-4, rel=1e-3)  # median: a 0.01 step
    assert float(cells[4]) == pytest.approx(1.0, rel=1e-3)  # max: the jump
    assert float(cells[5]) == pytest.approx(1.0 / (1.0 + 99e-4), abs=0.005)  # top 1% = the one jump
    absolute = next(line for line in out.splitlines() if line.startswith("| mean absolute"))
    assert float(absolute.split("|")[6]) == pytest.approx(1.0 / (1.0 + 99 * 0.01), abs=0.005)
    assert out.splitlines()[-2].split() == ["1.0000", "ep1", "20"]
    assert bench.top_share(np.array([1.0, 1.0, 2.0]), 0.34) == pytest.approx(0.5)
