"""The control loop: fault handling with fakes, SimDriver, the V-JEPA 2-AC loop end to end, and the CLI."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from envs.robot import SafeDriver, SafetyLimits
from envs.robot.loop import run_loop
from envs.robot.testing import FakeCamera, FakeDriver

FAST = SafetyLimits(move_timeout_s=0.3, state_timeout_s=0.2, camera_timeout_s=0.2, max_frame_age_s=0.2)
STEP = np.array([0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])


class ListRecorder:
    def __init__(self) -> None:
        self.steps: list[tuple] = []

    def add_step(self, frame, state, action=None, **extras):
        self.steps.append((frame, state, action, extras))


def constant_policy(frame, state):
    return STEP, {"energy": 1.0}


def make(driver=None, camera=None, **kw) -> SafeDriver:
    return SafeDriver(driver or FakeDriver(), FAST, camera=camera or FakeCamera(), handle_signals=False, **kw)


# ---------------------------------------------------------------------------------------------- loop with fakes
def test_loop_runs_records_and_times_steps():
    rec = ListRecorder()
    driver = FakeDriver()
    with make(driver) as robot:
        result = run_loop(robot, constant_policy, 4, recorder=rec)
    assert result.ok and result.steps == 4 and result.stopped_by is None
    assert len(driver.moves) == 4
    assert len(rec.steps) == 5 and rec.steps[-1][2] is None  # final observation without an action
    np.testing.assert_allclose(rec.steps[0][2], STEP)
    assert set(rec.steps[0][3]) == {"energy", "requested_action", "loop_overhead_s"}
    assert all(len(v) == 4 for v in result.timings.values())
    assert result.summary()["overhead_median_ms"] >= 0


def test_done_ends_the_loop_early():
    with make() as robot:
        result = run_loop(robot, constant_policy, 10, done=lambda step, state: step == 2)
    assert result.done and result.steps == 3 and result.ok


@pytest.mark.parametrize(
    ("fault", "expect"),
    [
        ("driver_raises", "driver.move() raised OSError: libfranka: communication_constraints_violation"),
        ("driver_stalls", "driver.move() did not return within 0.3 s"),
        ("nan_state", "non-finite"),
        ("state_jump", "state jumped"),
        ("camera_freezes", "not newer than the previous one"),
        ("camera_hangs", "camera.read() did not return"),
        ("policy_nan", "non-finite"),
        ("policy_crashes", "RuntimeError: CUDA out of memory"),
    ],
)
def test_every_fault_stops_the_arm_and_ends_the_loop(fault, expect):
    driver, camera = FakeDriver(), FakeCamera()
    calls = {"n": 0}

    def policy(frame, state):
        calls["n"] += 1
        if calls["n"] == 3:  # inject the fault at step 3
            if fault == "driver_raises":
                driver.raise_on_move = OSError("libfranka: communication_constraints_violation")
            elif fault == "driver_stalls":
                driver.stall_s = 5.0
            elif fault == "nan_state":
                driver.nan_state = True
            elif fault == "state_jump":
                driver.jump = np.array([0.0, 0.0, 0.2])
            elif fault == "camera_freezes":
                camera.freeze = True
            elif fault == "camera_hangs":
                camera.hang_s = 1.0
            elif fault == "policy_nan":
                return np.full(7, np.nan)
            else:
                raise RuntimeError("CUDA out of memory")
        return STEP

    rec = ListRecorder()
    with make(driver, camera) as robot:
        result = run_loop(robot, policy, 10, recorder=rec)
        assert not result.ok and expect in result.stopped_by
        names = driver.call_names()
        last_move = len(names) - 1 - names[::-1].index("move")
        assert "stop" in names[last_move:] or "move" not in names[last_move + 1:]
        assert driver.call_names().count("stop") >= 1
        n_moves = len(driver.moves)
    assert n_moves <= 3  # nothing executed after the fault
    assert result.steps < 10 and len(rec.steps) <= 3
    assert all(step[2] is not None for step in rec.steps)  # no fake final observation after a fault


def test_sigint_during_planning_stops_the_arm():
    driver = FakeDriver()
    robot = SafeDriver(driver, FAST, camera=FakeCamera())

    def slow_policy(frame, state):
        threading.Event().wait(2.0)  # "planning"; the signal interrupts it
        return STEP

    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    with robot:
        result = run_loop(robot, slow_policy, 5)
    assert isinstance(result.error, KeyboardInterrupt) and "SIGINT" in result.stopped_by
    assert driver.moves == [] and "stop" in driver.call_names()


def test_dry_run_loop_moves_nothing():
    driver = FakeDriver()
    with make(driver, dry_run=True) as robot:
        result = run_loop(robot, constant_policy, 3)
    assert result.ok and result.steps == 3 and driver.moves == []


# ---------------------------------------------------------------------------------------------- SimDriver
@pytest.fixture(scope="module")
def sim():
    from envs.robot import SimDriver

    driver = SimDriver(image_size=64, msaa=0)
    yield driver
    driver.close()


def test_sim_driver_is_a_driver_and_a_camera(sim):
    from envs.robot import Camera, RobotDriver

    assert isinstance(sim, RobotDriver) and isinstance(sim, Camera)
    sim.reset(0)
    s0 = sim.get_state()
    assert s0.shape == (7,) and s0.dtype == np.float64
    frame = sim.read()
    assert frame.image.shape == (64, 64, 3) and frame.image.dtype == np.uint8
    assert sim.intrinsics.width == 64 and sim.goal_image.shape == (64, 64, 3)
    with SafeDriver(sim, SafetyLimits(), camera=sim, handle_signals=False) as robot:
        for _ in range(4):
            robot.move([0.02, 0.0, -0.01, 0.0, 0.0, 0.0, 0.0])
        s1 = robot.get_state()
        assert s1[0] - s0[0] > 0.05 and s1[2] < s0[2]  # moved +x, -z (servo lag allowed)
        robot.home()
        np.testing.assert_allclose(robot.get_state()[:3], sim.home_state[:3], atol=0.006)


# ---------------------------------------------------------------------------------------------- V-JEPA 2-AC loop
@pytest.fixture(scope="module")
def tiny_world_model_dir(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    from transformers import VJEPA2Config

    from vjepa2_ac import ACPredictor, ACPredictorConfig, Encoder, WorldModel

    torch.manual_seed(0)
    enc = Encoder(VJEPA2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=1, crop_size=32,
                               patch_size=16))
    pred = ACPredictor(ACPredictorConfig(img_size=32, patch_size=16, embed_dim=64, predictor_embed_dim=32,
                                         depth=1, num_heads=2)).eval()
    path = tmp_path_factory.mktemp("tiny_wm")
    WorldModel(enc, pred).save_pretrained(path)
    return path


def test_vjepa_loop_end_to_end_on_sim_records_an_episode(sim, tiny_world_model_dir, tmp_path):
    import torch

    from vjepa2_ac import WorldModel
    from vjepa2_ac.agent import PlanningConfig, build_agent, run_robot_episode
    from vjepa2_ac.data import EpisodeFile

    torch.set_num_threads(1)
    sim.reset(1)
    wm = WorldModel.from_pretrained(tiny_world_model_dir)
    agent = build_agent(wm, PlanningConfig(), "reach", {"final": sim.goal_image}, samples=16, iterations=2)
    with SafeDriver(sim, SafetyLimits(), camera=sim, handle_signals=False, log_path=tmp_path / "cmd.jsonl") as robot:
        run = run_robot_episode(robot, agent, steps=4, episode_path=tmp_path / "ep.h5",
                                success=lambda: bool(sim.last_info["is_success"]))
    assert run.loop.ok and run.loop.steps == 4
    with EpisodeFile(run.path) as ep:
        assert ep.num_steps == 5 and ep.frames().shape == (5, 64, 64, 3)
        assert ep.actions().shape == (4, 7)
        extras = ep.extras()
        assert {"energy", "frame_energy", "planning_latency_s", "phase", "requested_action",
                "loop_overhead_s"} <= set(extras)
        assert not extras["phase"][:4].any()  # the default reach plan: one phase
        assert np.all(np.isfinite(extras["energy"][:4]))
        np.testing.assert_allclose(ep.actions(), np.array(agent.actions), atol=1e-6)  # small: nothing clipped
        meta = ep.metadata
        assert meta["driver"] == "SimDriver" and meta["stopped_by"] == ""
    moves = [json.loads(line) for line in (tmp_path / "cmd.jsonl").read_text().splitlines()]
    assert sum(m["event"] == "move" for m in moves) == 4


def test_vjepa_loop_fault_keeps_the_partial_episode(tiny_world_model_dir, tmp_path):
    from vjepa2_ac import WorldModel
    from vjepa2_ac.agent import PlanningConfig, build_agent, run_robot_episode
    from vjepa2_ac.data import EpisodeFile

    wm = WorldModel.from_pretrained(tiny_world_model_dir)
    driver, camera = FakeDriver(), FakeCamera(height=32, width=32)
    agent = build_agent(wm, PlanningConfig(), "reach", {"final": np.zeros((32, 32, 3), np.uint8)}, samples=8,
                        iterations=1)
    original_act = agent.act

    def act(frame, state):
        if len(agent.records) == 2:
            driver.raise_on_move = ConnectionResetError("network")
        return original_act(frame, state)

    agent.act = act
    with make(driver, camera) as robot:
        run = run_robot_episode(robot, agent, steps=6, episode_path=tmp_path / "ep.h5")
    assert "ConnectionResetError: network" in run.loop.stopped_by
    with EpisodeFile(run.path) as ep:
        assert ep.num_steps == 2 and not ep.is_success
        assert "network" in ep.metadata["stopped_by"]


# ---------------------------------------------------------------------------------------------- CLI
def cli(argv: list[str]) -> int:
    from vjepa2_ac.commands import robot as command

    parser = argparse.ArgumentParser(prog="vjepa2-ac robot")
    command.configure(parser)
    return command.run(parser.parse_args(argv))


def test_cli_capture_goal_and_run_against_sim(tiny_world_model_dir, tmp_path, capsys):
    goal = tmp_path / "goal.png"
    assert cli(["capture-goal", "--driver", "sim", "--sim-goal", "--image-size", "64", "--out", str(goal)]) == 0
    assert goal.is_file()
    out = tmp_path / "runs"
    code = cli(["run", "--driver", "sim", "--image-size", "64", "--model", str(tiny_world_model_dir),
                "--goal", str(goal), "--steps", "3", "--samples", "8", "--iterations", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "step   3/3" in printed and "episode:" in printed
    assert len(list(out.glob("*.h5"))) == 1 and len(list(out.glob("*.commands.jsonl"))) == 1


def test_cli_needs_a_goal_for_a_real_robot(tiny_world_model_dir):
    with pytest.raises(SystemExit, match="--host is required"):
        cli(["run", "--driver", "franky", "--model", str(tiny_world_model_dir)])
    with pytest.raises(SystemExit, match="--goal is required with a real robot"):  # before any connection
        cli(["run", "--driver", "franky", "--host", "192.0.2.1", "--model", str(tiny_world_model_dir)])


# ---------------------------------------------------------------------------------------------- planning.json
@pytest.fixture(scope="module")
def tiny_model_with_planning(tiny_world_model_dir, tmp_path_factory) -> Path:
    """The tiny model with a planning.json: dual view at 32 px, pick-and-place in 3 phases with the shipped model's
    per-phase gripper settings, 3 steps."""
    import shutil

    path = tmp_path_factory.mktemp("tiny_wm_planning") / "model"
    shutil.copytree(tiny_world_model_dir, path)
    (path / "planning.json").write_text(json.dumps({
        "camera": "dual", "image_size": 32,
        "planner": {"samples": 8, "topk": 2, "iterations": 1},
        "tasks": {"pick-place": {"max_steps": 3, "phases": [
            {"goal": "grasped", "steps": 1, "gripper": "open", "constraint": "box"},
            {"goal": "lifted", "steps": 1, "gripper": "closed"}, {"goal": "placed", "steps": None, "gripper": "open"}]}}}))
    return path


def test_cli_run_uses_the_models_planning_json(tiny_model_with_planning, tmp_path, capsys):
    """`robot run` plans as `eval` does: the model's view and size for the sim, the task's phases with their
    gripper settings and the task's episode length."""
    from vjepa2_ac.data import EpisodeFile

    out = tmp_path / "runs"
    code = cli(["run", "--driver", "sim", "--task", "pick-place", "--model", str(tiny_model_with_planning),
                "--dry-run", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "planning.json (task pick-place, 3 steps; phases grasped (1), lifted (1), placed (rest))" in printed
    assert "step   3/3" in printed
    (episode,) = out.glob("*dryrun.h5")
    with EpisodeFile(episode) as ep:
        assert ep.frames().shape[1:] == (32, 32, 3)  # the planning config's image size, not the env's 256
        extras = ep.extras()
        np.testing.assert_array_equal(extras["phase"][:3], [0, 1, 2])
        dg = extras["requested_action"][:3, 6]  # forced open, close, open (one CEM iteration: the mean reaches 0.85)
        np.testing.assert_allclose(dg, [-0.85, 0.85, -0.85], atol=1e-3)


def test_cli_run_with_named_goal_images(tiny_model_with_planning, tmp_path):
    """Goal images captured by name (as on a real robot) feed the task's phases."""
    from vjepa2_ac.data import EpisodeFile

    goals = []
    for i, name in enumerate(("grasped", "lifted", "placed")):
        path = tmp_path / f"{name}.png"
        cli(["capture-goal", "--driver", "sim", "--image-size", "32", "--seed", str(i), "--out", str(path)])
        goals.append(f"{name}={path}")
    out = tmp_path / "runs"
    code = cli(["run", "--driver", "sim", "--task", "pick-place", "--model", str(tiny_model_with_planning), "--goal",
                *goals, "--steps", "2", "--dry-run", "--out", str(out)])
    assert code == 0
    (episode,) = out.glob("*dryrun.h5")
    with EpisodeFile(episode) as ep:
        assert ep.metadata["dry_run"] in (True, 1)
        states = ep.states()
        np.testing.assert_allclose(states[:, :3] - states[0, :3], 0.0, atol=1e-6)  # nothing moved
        np.testing.assert_array_equal(ep.extras()["phase"][:2], [0, 1])


def test_cli_run_flags_override_the_planning_json(tiny_model_with_planning, tmp_path, capsys):
    out = tmp_path / "runs"
    code = cli(["run", "--driver", "sim", "--task", "pick-place", "--model", str(tiny_model_with_planning),
                "--steps", "2", "--image-size", "48", "--dry-run", "--out", str(out)])
    assert code == 0
    assert "step   2/2" in capsys.readouterr().out
    from vjepa2_ac.data import EpisodeFile

    (episode,) = out.glob("*dryrun.h5")
    with EpisodeFile(episode) as ep:
        assert ep.frames().shape[1:] == (48, 48, 3)
        np.testing.assert_array_equal(ep.extras()["phase"][:2], [0, 1])
    # --planning none: built-in defaults (reach: one goal image, 20 steps)
    code = cli(["run", "--driver", "sim", "--image-size", "32", "--model", str(tiny_model_with_planning),
                "--planning", "none", "--steps", "1", "--samples", "4", "--iterations", "1", "--dry-run",
                "--no-record", "--out", str(out)])
    assert code == 0
    assert "planning: built-in defaults (task reach, 1 steps; phases final (rest))" in capsys.readouterr().out


def test_cli_run_rejects_unusable_planning_input(tiny_model_with_planning, tmp_path):
    goal = tmp_path / "g.png"
    assert cli(["capture-goal", "--driver", "sim", "--sim-goal", "--image-size", "32", "--out", str(goal)]) == 0
    base = ["run", "--driver", "sim", "--image-size", "32", "--model", str(tiny_model_with_planning), "--dry-run",
            "--no-record", "--out", str(tmp_path / "runs")]
    with pytest.raises(SystemExit, match="phase 0 plans to the goal image 'grasped'.*\\['final'\\]"):
        cli([*base, "--task", "pick-place", "--goal", str(goal)])  # a bare image is the final goal only
    with pytest.raises(SystemExit, match="goal 'final' given twice"):
        cli([*base, "--goal", str(goal), f"final={goal}"])
    with pytest.raises(SystemExit, match="--goal: image not found"):
        cli([*base, "--goal", f"final={tmp_path / 'nope.png'}"])
    with pytest.raises(SystemExit, match="--planning: planning config not found"):
        cli([*base, "--goal", str(goal), "--planning", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit):  # argparse: invalid choice (the registry's task names)
        cli([*base, "--goal", str(goal), "--task", "stack"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tasks": {"reach": {"max_steps": 0}}}))
    with pytest.raises(SystemExit, match="--planning: .*max_steps"):
        cli([*base, "--goal", str(goal), "--planning", str(bad)])


def test_sim_driver_composite_view_has_no_pinhole_intrinsics():
    from envs.robot import SimDriver

    for camera, parts in (("dual", "side, top"), ("dual_wrist_tiled", "side, top, wrist")):
        driver = SimDriver("reach", image_size=(32, 32), camera=camera)
        try:
            with pytest.raises(RuntimeError, match=f"composite view '{camera}' \\({parts}\\)"):
                driver.intrinsics  # noqa: B018
            assert driver.read().image.shape == (32, 32, 3)
        finally:
            driver.close()


def test_cli_refuses_a_goal_that_is_not_an_image_and_a_negative_warmup(tiny_model_with_planning, tmp_path):
    not_image = tmp_path / "goal.png"
    not_image.write_text("hello")
    with pytest.raises(SystemExit, match="--goal: cannot read .*goal.png as an image"):
        cli(["run", "--driver", "sim", "--image-size", "32", "--model", str(tiny_model_with_planning), "--goal",
             str(not_image), "--dry-run", "--no-record", "--out", str(tmp_path / "runs")])
    with pytest.raises(SystemExit, match="--warmup must be >= 0"):
        cli(["capture-goal", "--driver", "sim", "--warmup", "-3", "--out", str(tmp_path / "g.png")])


def test_cli_names_a_missing_backend_package_and_a_bad_limits_file_before_loading(tiny_model_with_planning, tmp_path,
                                                                                   monkeypatch):
    import importlib

    real = importlib.import_module

    def no_realsense(name, *a, **k):  # franky present (it is only in the robot-sim extra), pyrealsense2 missing
        if name == "pyrealsense2":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        if name == "franky":
            import types

            return types.ModuleType("franky")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", no_realsense)
    loaded = []
    monkeypatch.setattr("vjepa2_ac.WorldModel.from_pretrained", lambda *a, **k: loaded.append(1))
    goal = tmp_path / "g.png"
    assert cli(["capture-goal", "--driver", "sim", "--sim-goal", "--image-size", "32", "--out", str(goal)]) == 0
    base = ["run", "--driver", "franky", "--host", "192.0.2.1", "--model", str(tiny_model_with_planning), "--goal",
            str(goal), "--out", str(tmp_path / "runs")]
    with pytest.raises(SystemExit, match=r"--camera realsense: pyrealsense2 is not installed: pip install "
                                         r"'vjepa2-ac\[realsense\]'"):
        cli(base)
    with pytest.raises(SystemExit, match="--limits: .*nope.yaml"):
        cli([*base, "--limits", str(tmp_path / "nope.yaml")])
    assert loaded == []  # refused before the model loaded
