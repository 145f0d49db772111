"""Safety layer: limits, refusals, clipping, watchdog, fault injection, signals, dry-run and the command log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from envs.robot.driver import RobotFault, StateError, UnsafeCommandError, WatchdogTimeout, now
from envs.robot.poses import apply_delta, state_from_pose, state_to_pose
from envs.robot.safety import (
    DEFAULT_LIMITS_PATH,
    FRAME_CLOCK_TOLERANCE_S,
    SafeDriver,
    SafetyLimits,
    check_command,
)
from envs.robot.testing import HOME_STATE, FakeCamera, FakeDriver

LIMITS = SafetyLimits()
FAST = SafetyLimits(move_timeout_s=0.3, state_timeout_s=0.2, camera_timeout_s=0.2, max_frame_age_s=0.2)


def assert_one_error(error: BaseException) -> None:
    """A traceback shows ``error`` alone: nothing chained as its cause or (unsuppressed) context."""
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__), repr(error)


def safe(driver: FakeDriver | None = None, limits: SafetyLimits = FAST, **kw) -> SafeDriver:
    return SafeDriver(driver or FakeDriver(), limits, handle_signals=False, **kw)


# ---------------------------------------------------------------------------------------------- limits
def test_default_limits_equal_yaml_file():
    assert SafetyLimits.default() == SafetyLimits()
    assert set(yaml.safe_load(DEFAULT_LIMITS_PATH.read_text())) == set(SafetyLimits().to_dict())


def test_limits_yaml_round_trip_and_partial(tmp_path: Path):
    path = tmp_path / "limits.yaml"
    path.write_text("max_translation_l1: 0.05\non_oversize: refuse\n")
    limits = SafetyLimits.from_yaml(path)
    assert limits.max_translation_l1 == 0.05 and limits.on_oversize == "refuse"
    assert limits.workspace_low == SafetyLimits().workspace_low
    path.write_text(yaml.safe_dump(limits.to_dict()))
    assert SafetyLimits.from_yaml(path) == limits


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("max_speed: 1.0\n", "unknown safety limit.*max_speed"),
        ("max_rotation: -0.1\n", "max_rotation"),
        ("max_rotation: .nan\n", "max_rotation"),
        ("on_oversize: ignore\n", "on_oversize"),
        ("workspace_low: [0, 0]\n", "workspace_low"),
        ("workspace_low: [0.9, -0.5, 0.0]\n", "workspace_low.*must be <"),
        ("- 1\n- 2\n", "mapping"),
        ("max_rotaton: 0.2\n", r"'max_rotaton'.*did you mean 'max_rotaton' -> 'max_rotation'.*valid keys: \[.*"
                                r"'workspace_low'"),
        ("1: 2\nmax_speed: 1\n", r"unknown safety limit\(s\) \['1', 'max_speed'\]"),
        ("min_height: low\n", "min_height: expected a number"),
        ("max_rotation: [0.1\n", "not valid YAML"),
    ],
)
def test_bad_limits_file_names_the_field(tmp_path: Path, text: str, match: str):
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        SafetyLimits.from_yaml(path)
    message = str(info.value)
    assert message.startswith(f"safety limits file {path}: ") and "\n" not in message
    assert_one_error(info.value)


def test_missing_limits_file_is_one_error_naming_the_file(tmp_path: Path):
    path = tmp_path / "nope" / "limits.yaml"
    with pytest.raises(FileNotFoundError, match="safety limits file .*limits.yaml: no such file") as info:
        SafetyLimits.from_yaml(path)
    assert str(DEFAULT_LIMITS_PATH) in str(info.value)
    assert_one_error(info.value)


# ---------------------------------------------------------------------------------------------- check_command
@pytest.mark.parametrize(
    ("delta", "match"),
    [
        ([0.0] * 6, r"shape \[7\].*got shape \[6\]"),
        ([[0.0] * 7], r"got shape \[1, 7\]"),
        ("forward", "expected"),
        ([0, 0, 0, 0, 0, 0, None], "non-finite"),
        ([np.nan, 0, 0, 0, 0, 0, 0], r"non-finite.*index \[0\]"),
        ([0, 0, 0, np.inf, 0, 0, 0], r"non-finite.*index \[3\]"),
        (None, "delta"),
        # Only real numbers: nothing below may become a motion (np.array(x, float) would convert each of them).
        ([True] * 7, r"real numbers .*got bool at index 0, bool at index 1"),
        ([0.01, 0, 0, 0, 0, 0, True], "bool at index 6"),
        (np.ones(7, dtype=bool), r"an array of booleans \(dtype bool\)"),
        (np.full(7, 0.01 + 0.5j), r"an array of complex numbers \(dtype complex128\)"),
        (np.zeros(7, dtype=complex), "complex numbers"),  # even with no imaginary part
        ([0.01 + 0.5j, 0, 0, 0, 0, 0, 0], "complex at index 0"),
        (["0.01"] * 7, "str at index 0"),
        (np.array(["0.01"] * 7), "an array of strings"),
        (np.array([Decimal("0.01")] * 7, dtype=object), "Decimal at index 0"),
        ([0, 0, 0, 0, 0, 0, [0.1]], "list at index 6"),
        (np.float64(0.01), r"expected 7 real numbers .*got float64"),
    ],
)
def test_malformed_commands_are_refused(delta, match):
    with pytest.raises(UnsafeCommandError, match=match):
        check_command(delta, HOME_STATE, LIMITS)


def test_real_number_types_are_accepted():
    expected = np.array([0.01, 0.0, 0.02, 0.0, 0.0, 0.1, 0.5])
    for delta in (expected.astype(np.float32), expected.tolist(), [np.float32(v) for v in expected],
                  [np.array(v) for v in expected], [Fraction(1, 100), 0, np.int64(0), 0, 0, 0.1, 0.5]):
        np.testing.assert_allclose(check_command(delta, HOME_STATE, LIMITS).delta[[0, 5, 6]], [0.01, 0.1, 0.5],
                                   rtol=1e-6)
    assert check_command(np.arange(7, dtype=np.int8) * 0, HOME_STATE, LIMITS).delta.dtype == np.float64


def test_small_command_passes_unchanged():
    d = np.array([0.01, -0.02, 0.03, 0.05, -0.05, 0.1, 0.2])
    out = check_command(d, HOME_STATE, LIMITS)
    np.testing.assert_array_equal(out.delta, d)
    assert out.clipped == ()


def test_translation_clipped_by_uniform_scaling():
    out = check_command([0.2, 0, 0, 0, 0, 0, 0], HOME_STATE, LIMITS)  # per-axis limit
    np.testing.assert_allclose(out.delta[:3], [0.075, 0, 0])
    out = check_command([0.06, -0.06, 0.06, 0, 0, 0, 0], HOME_STATE, LIMITS)  # L1 0.18 > 0.15
    np.testing.assert_allclose(out.delta[:3], np.array([0.06, -0.06, 0.06]) * 0.15 / 0.18)
    assert "translation" in out.clipped[0]


def test_rotation_and_gripper_clipped():
    limits = SafetyLimits(max_gripper_step=0.5)
    out = check_command([0, 0, 0, 0.0, 0.0, 1.0, -0.9], HOME_STATE, limits)
    np.testing.assert_allclose(out.delta[3:6], [0, 0, LIMITS.max_rotation], atol=1e-12)
    assert out.delta[6] == -0.5
    # A compound rotation keeps its axis and is scaled to the limit angle.
    big = np.array([0.5, -0.4, 0.3])
    out = check_command([0, 0, 0, *big, 0], HOME_STATE, limits)
    rv_in, rv_out = Rotation.from_euler("xyz", big).as_rotvec(), Rotation.from_euler("xyz", out.delta[3:6]).as_rotvec()
    np.testing.assert_allclose(np.linalg.norm(rv_out), limits.max_rotation)
    np.testing.assert_allclose(rv_out / np.linalg.norm(rv_out), rv_in / np.linalg.norm(rv_in), atol=1e-9)


def test_workspace_clip_and_min_height():
    state = HOME_STATE.copy()
    state[2] = 0.03
    out = check_command([0, 0, -0.05, 0, 0, 0, 0], state, LIMITS)  # would end at z = -0.02
    np.testing.assert_allclose(state[2] + out.delta[2], LIMITS.min_height)
    state[:3] = [0.84, 0.0, 0.3]
    out = check_command([0.05, 0.01, 0, 0, 0, 0, 0], state, LIMITS)
    np.testing.assert_allclose(state[:3] + out.delta[:3], [0.85, 0.01, 0.3])
    assert "outside workspace" in out.clipped[0]


def test_refuse_modes():
    limits = SafetyLimits(on_oversize="refuse", on_out_of_workspace="refuse")
    with pytest.raises(UnsafeCommandError, match="translation"):
        check_command([0.1, 0, 0, 0, 0, 0, 0], HOME_STATE, limits)
    with pytest.raises(UnsafeCommandError, match="rotation"):
        check_command([0, 0, 0, 0.5, 0, 0, 0], HOME_STATE, limits)
    with pytest.raises(UnsafeCommandError, match="gripper"):
        check_command([0, 0, 0, 0, 0, 0, 1.5], HOME_STATE, limits)
    state = HOME_STATE.copy()
    state[2] = 0.02
    with pytest.raises(UnsafeCommandError, match="outside workspace"):
        check_command([0, 0, -0.05, 0, 0, 0, 0], state, limits)


def test_arm_far_outside_workspace_is_refused_even_in_clip_mode():
    state = HOME_STATE.copy()
    state[:3] = [1.2, 0.0, 0.3]
    with pytest.raises(UnsafeCommandError, match=r"outside the workspace .* by more than one step"):
        check_command([0, 0, 0, 0, 0, 0, 0], state, LIMITS)


finite = st.floats(-1.0, 1.0, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(st.lists(finite, min_size=7, max_size=7), st.lists(st.floats(0, 1), min_size=3, max_size=3))
def test_checked_command_always_within_limits(delta, where):
    low, high = LIMITS.effective_low, np.array(LIMITS.workspace_high)
    state = HOME_STATE.copy()
    state[:3] = low + np.array(where) * (high - low)
    d = check_command(delta, state, LIMITS).delta
    assert np.abs(d[:3]).max() <= LIMITS.max_translation_per_axis + 1e-9
    assert np.abs(d[:3]).sum() <= LIMITS.max_translation_l1 + 1e-9
    assert Rotation.from_euler("xyz", d[3:6]).magnitude() <= LIMITS.max_rotation + 1e-9
    assert abs(d[6]) <= LIMITS.max_gripper_step
    target = state[:3] + d[:3]
    assert np.all(target >= low - 1e-12) and np.all(target <= high + 1e-12)


# ---------------------------------------------------------------------------------------------- pose helpers
def test_numpy_pose_algebra_matches_torch_reference():
    torch = pytest.importorskip("torch")
    from vjepa2_ac.model.pose import compute_new_pose

    rng = np.random.default_rng(0)
    states = np.concatenate([rng.uniform(-1, 1, (20, 3)), rng.uniform(-3, 3, (20, 3)), rng.uniform(0, 1, (20, 1))], 1)
    deltas = rng.uniform(-0.3, 0.3, (20, 7))
    ours = np.stack([apply_delta(s, d) for s, d in zip(states, deltas)])
    ref = compute_new_pose(torch.from_numpy(states), torch.from_numpy(deltas)).numpy()
    np.testing.assert_allclose(ours[:, :3], ref[:, :3], atol=1e-12)
    np.testing.assert_allclose(ours[:, 6], ref[:, 6], atol=1e-12)
    rot_ours, rot_ref = Rotation.from_euler("xyz", ours[:, 3:6]), Rotation.from_euler("xyz", ref[:, 3:6])
    assert np.all((rot_ours.inv() * rot_ref).magnitude() < 1e-9)
    pos, quat = state_to_pose(ours[0])  # canonical Euler angles round-trip exactly
    np.testing.assert_allclose(state_from_pose(pos, quat, ours[0, 6]), ours[0], atol=1e-12)


# ---------------------------------------------------------------------------------------------- SafeDriver
def test_move_integrates_and_logs(tmp_path: Path):
    driver = FakeDriver()
    with safe(driver, log_path=tmp_path / "log.jsonl") as robot:
        sent = robot.move([0.01, 0, 0, 0, 0, 0, 0.1])
        robot.move([0.5, 0, 0, 0, 0, 0, 0])  # clipped to 0.075
    np.testing.assert_allclose(sent, [0.01, 0, 0, 0, 0, 0, 0.1])
    np.testing.assert_allclose(driver.state[0], HOME_STATE[0] + 0.085)
    events = [json.loads(line)["event"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert events.count("move") == 2 and events.count("clipped") == 1
    assert events[0] == "connect" and events[-1] == "close"


def assert_stopped_after(driver: FakeDriver, call: str) -> None:
    names = driver.call_names()
    i = len(names) - 1 - names[::-1].index(call)
    assert "stop" in names[i + 1:], f"stop() not called after the failing {call}: {names}"


def test_refused_command_stops_and_moves_nothing():
    driver = FakeDriver()
    with safe(driver) as robot:
        with pytest.raises(UnsafeCommandError, match="non-finite"):
            robot.move([np.nan] * 7)
        assert "move" not in driver.call_names() and "stop" in driver.call_names()
        assert robot.log[-2]["event"] == "refused"


@pytest.mark.parametrize("delta", [[True] * 7, np.full(7, 0.01 + 0.01j), ["0.01"] * 7], ids=["bool", "complex", "str"])
def test_non_real_command_moves_nothing(tmp_path: Path, delta):
    driver = FakeDriver()
    with safe(driver, log_path=tmp_path / "log.jsonl") as robot:
        with pytest.raises(UnsafeCommandError, match="expected 7 real numbers"):
            robot.move(delta)
        assert "move" not in driver.call_names() and "stop" in driver.call_names()
    np.testing.assert_array_equal(driver.state, HOME_STATE)
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("refused") == 1  # the log can hold what was refused


class OddStateDriver(FakeDriver):
    def __init__(self, odd) -> None:
        super().__init__()
        self.odd = odd

    def get_state(self):
        super().get_state()
        return self.odd


@pytest.mark.parametrize(("odd", "match"), [
    (HOME_STATE.astype(complex), "an array of complex numbers"),
    ([True] * 7, "bool at index 0"),
    (HOME_STATE[:6], r"expected shape \[7\] \[x, y, z, roll, pitch, yaw, g\], got shape \[6\]"),
])
def test_non_real_state_is_a_fault(odd, match):
    driver = OddStateDriver(odd)
    with safe(driver) as robot:
        with pytest.raises(StateError, match=f"driver.get_state\\(\\): .*{match}"):
            robot.move([0.01, 0, 0, 0, 0, 0, 0])
        assert "move" not in driver.call_names() and robot.faulted
        assert_stopped_after(driver, "get_state")


def test_driver_exception_mid_move_stops_and_latches():
    driver = FakeDriver()
    with safe(driver) as robot:
        robot.move([0.01, 0, 0, 0, 0, 0, 0])
        driver.raise_on_move = ConnectionError("reflex: cartesian_reflex")
        with pytest.raises(RobotFault, match="driver.move\\(\\) raised ConnectionError: reflex"):
            robot.move([0.01, 0, 0, 0, 0, 0, 0])
        assert_stopped_after(driver, "move")
        n_moves = driver.call_names().count("move")
        with pytest.raises(RobotFault, match="clear_fault"):
            robot.move([0.01, 0, 0, 0, 0, 0, 0])
        with pytest.raises(RobotFault, match="clear_fault"):
            robot.home()
        assert driver.call_names().count("move") == n_moves and "home" not in driver.call_names()
        robot.clear_fault()
        robot.move([0.01, 0, 0, 0, 0, 0, 0])
    assert len(driver.moves) == 2


def test_stall_past_timeout_stops_within_deadline():
    driver = FakeDriver()
    driver.stall_s = 5.0
    with safe(driver) as robot:
        t0 = time.perf_counter()
        with pytest.raises(WatchdogTimeout, match="did not return within 0.3 s"):
            robot.move([0.01, 0, 0, 0, 0, 0, 0])
        assert time.perf_counter() - t0 < 1.0
        assert driver.time_of("stop", 0) - driver.time_of("move") < 0.3 + 0.1
        assert driver.moves == []  # the stalled motion was interrupted, not completed
        assert robot.faulted


@pytest.mark.parametrize("fault", ["nan", "jump", "slow"])
def test_bad_state_is_a_fault(fault: str):
    driver = FakeDriver()
    with safe(driver) as robot:
        robot.get_state()
        if fault == "nan":
            driver.nan_state, err, match = True, StateError, "non-finite"
        elif fault == "jump":
            driver.jump, err, match = np.array([0.0, 0.08, 0.0]), StateError, "state jumped 0.08"
        else:
            driver.state_delay_s, err, match = 0.5, WatchdogTimeout, "get_state\\(\\) did not return"
        with pytest.raises(err, match=match):
            robot.move([0.01, 0, 0, 0, 0, 0, 0])
        assert "move" not in driver.call_names()
        assert_stopped_after(driver, "get_state")


def test_commanded_motion_is_not_a_jump():
    with safe() as robot:
        for _ in range(3):
            robot.move([0.07, 0, 0, 0, 0, 0.3, 0])
            robot.get_state()


@pytest.mark.parametrize(
    ("fault", "err", "match"),
    [
        ("freeze", WatchdogTimeout, "not newer than the previous one"),
        ("lag", WatchdogTimeout, r"stale camera frame: 3\d\d ms old \(max 200 ms\)"),  # 300 ms + the read's own time
        ("hang", WatchdogTimeout, "camera.read\\(\\) did not return within 0.2 s"),
        ("raise", RobotFault, "camera.read\\(\\) raised RuntimeError: usb gone"),
        ("future", WatchdogTimeout, r"camera frame from the future: .* is \d+ ms after now .*not time.monotonic"),
        ("wall_clock", WatchdogTimeout, "camera frame from the future"),  # a time.time() stamp
        ("nan_stamp", RobotFault, "malformed frame: timestamp: expected finite"),
        ("inf_stamp", RobotFault, "malformed frame: timestamp: expected finite"),
    ],
)
def test_camera_faults_stop_the_robot(fault, err, match):
    driver, camera = FakeDriver(), FakeCamera()
    with safe(driver, camera=camera) as robot:
        frame = robot.read_frame()
        assert frame.image.shape == (64, 64, 3)
        if fault == "freeze":
            camera.freeze = True
        elif fault == "lag":
            camera.lag_s = 0.3
        elif fault == "hang":
            camera.hang_s = 1.0
        elif fault in ("future", "wall_clock", "nan_stamp", "inf_stamp"):  # FakeCamera stamps now() - lag_s
            camera.lag_s = {"future": -0.5, "wall_clock": now() - time.time(), "nan_stamp": np.nan,
                            "inf_stamp": -np.inf}[fault]
        else:
            camera.raise_error = RuntimeError("usb gone")
        t0 = time.perf_counter()
        with pytest.raises(err, match=match):
            robot.read_frame()
        assert driver.time_of("stop", 0) - t0 < 0.2 + 0.1
        with pytest.raises(RobotFault):
            robot.move([0.01, 0, 0, 0, 0, 0, 0])
        assert "move" not in driver.call_names()


def test_frame_within_clock_tolerance_is_accepted():
    camera = FakeCamera()
    camera.lag_s = -FRAME_CLOCK_TOLERANCE_S / 2  # stamped a little after now(): clock granularity, not a fault
    with safe(camera=camera) as robot:
        robot.read_frame()
        robot.read_frame()
        assert not robot.faulted


def test_dry_run_moves_nothing_but_logs():
    driver = FakeDriver()
    with safe(driver, dry_run=True) as robot:
        sent = robot.move([0.2, 0, 0, 0, 0, 0, 0])
        robot.home()
    np.testing.assert_allclose(sent[:3], [0.075, 0, 0])
    assert "move" not in driver.call_names() and "home" not in driver.call_names()
    assert [e["event"] for e in robot.log].count("move") == 1
    assert all(e.get("dry_run", True) for e in robot.log if e["event"] == "move")


def test_exception_in_with_block_stops_and_closes():
    driver = FakeDriver()
    with pytest.raises(ZeroDivisionError), safe(driver):
        _ = 1 / 0
    names = driver.call_names()
    assert names[-2:] == ["stop", "close"]
    assert not driver.connected


@pytest.mark.parametrize(("signum", "exc"), [(signal.SIGTERM, SystemExit), (signal.SIGINT, KeyboardInterrupt)])
def test_signal_stops_the_robot_and_handlers_are_restored(signum, exc):
    before = signal.getsignal(signum)
    driver = FakeDriver()
    robot = SafeDriver(driver, FAST)
    with pytest.raises(exc), robot:
        robot.move([0.01, 0, 0, 0, 0, 0, 0])
        os.kill(os.getpid(), signum)
        time.sleep(1.0)  # the handler interrupts this
    assert robot.log[[e["event"] for e in robot.log].index("fault")]["reason"] == f"stopped by {signum.name}"
    assert "stop" in driver.call_names()
    assert signal.getsignal(signum) is before


def test_sigterm_during_blocking_move_stops_immediately():
    driver = FakeDriver()
    driver.stall_s = 5.0
    robot = SafeDriver(driver, SafetyLimits(move_timeout_s=10.0))
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM))
    t0 = time.perf_counter()
    with pytest.raises(SystemExit), robot:
        timer.start()
        robot.move([0.01, 0, 0, 0, 0, 0, 0])
    assert time.perf_counter() - t0 < 1.0
    assert driver.moves == []


def test_envs_robot_imports_without_optional_backends_or_torch():
    code = (
        "import sys\n"
        "for m in ('franky', 'panda_py', 'pyrealsense2', 'cv2', 'torch'): sys.modules[m] = None\n"
        "import envs.robot as r\n"
        "from envs.robot import FrankyDriver, RealSenseCamera, SafeDriver, SafetyLimits\n"
        "for make in (lambda: FrankyDriver('10.0.0.2').connect(), lambda: RealSenseCamera().connect()):\n"
        "    try:\n"
        "        make()\n"
        "    except ImportError as e:\n"
        "        print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert "pip install 'vjepa2-ac[franky]'" in out.stdout
    assert "pip install 'vjepa2-ac[realsense]'" in out.stdout
