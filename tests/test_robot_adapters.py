"""Adapters against recorded fakes of franky / panda-py / pyrealsense2 / cv2, and FrankyDriver against franky-sim.

The fakes mirror the real call signatures (franky-control 2.0.0, panda-python 1.1.1, pyrealsense2 2.59,
opencv 4/5) and record every call so the exact sequence each adapter sends can be checked.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from envs.robot import RobotFault, SafeDriver, SafetyLimits, WatchdogTimeout
from envs.robot.poses import apply_delta, state_from_pose

POS = np.array([0.5, 0.1, 0.3])
QUAT = Rotation.from_euler("xyz", [np.pi, 0.0, 0.3]).as_quat()  # gripper down, yawed: EE frame != base frame
DELTA = np.array([0.02, -0.01, 0.03, 0.0, 0.0, 0.2, 0.5])


# ---------------------------------------------------------------------------------------------- fake franky
def fake_franky(log: list, join_ok: bool = True) -> types.ModuleType:
    m = types.ModuleType("franky")

    class Affine:
        def __init__(self, translation=(0, 0, 0), quaternion=(0, 0, 0, 1)):
            self.translation, self.quaternion = np.asarray(translation, float), np.asarray(quaternion, float)

    class Future:
        def __init__(self, name):
            self.name = name

        def wait(self, timeout=None):
            log.append(("future.wait", self.name, timeout))
            return True

    class Robot:
        def __init__(self, host, **kwargs):
            log.append(("Robot", host, kwargs))
            self.current_cartesian_state = types.SimpleNamespace(pose=types.SimpleNamespace(
                end_effector_pose=Affine(POS, QUAT)))
            self.relative_dynamics_factor = 1.0

        def recover_from_errors(self):
            log.append(("recover_from_errors",))

        def move(self, motion, asynchronous=False):
            log.append(("move", motion, asynchronous, self.relative_dynamics_factor))

        def join_motion(self, timeout=None):
            log.append(("join_motion", timeout))
            return join_ok

        def stop(self):
            log.append(("robot.stop",))

    class Gripper:
        max_width = 0.08

        def __init__(self, host):
            log.append(("Gripper", host))
            self.width = 0.08

        def grasp_async(self, width, speed, force, epsilon_inner=0.005, epsilon_outer=0.005):
            log.append(("grasp_async", width, speed, force, epsilon_inner, epsilon_outer))
            self.width = width
            return Future("grasp")

        def move_async(self, width, speed):
            log.append(("move_async", width, speed))
            self.width = width
            return Future("move")

        def open(self, speed):
            log.append(("gripper.open", speed))

        def stop_async(self):
            log.append(("gripper.stop_async",))
            return Future("stop")

    m.Affine, m.Robot, m.Gripper = Affine, Robot, Gripper
    m.ReferenceType = types.SimpleNamespace(Absolute="Absolute", Relative="Relative")
    m.RealtimeConfig = types.SimpleNamespace(Ignore="Ignore", Enforce="Enforce")
    m.CartesianMotion = lambda target, reference_type="Absolute": ("CartesianMotion", target, reference_type)
    m.JointState = lambda position: ("JointState", list(position))
    m.JointMotion = lambda target: ("JointMotion", target)
    return m


def test_franky_driver_sends_absolute_base_frame_targets(monkeypatch):
    from envs.robot import FrankyDriver

    log: list = []
    monkeypatch.setitem(sys.modules, "franky", fake_franky(log))
    with FrankyDriver("172.16.0.2", dynamics_factor=0.2, realtime=False) as d:
        state = d.get_state()
        np.testing.assert_allclose(state, state_from_pose(POS, QUAT, 0.0))
        d.move(DELTA, timeout=3.0)
        d.move(-DELTA)  # opening
        d.stop()
    names = [c[0] for c in log]
    assert names == ["Robot", "recover_from_errors", "Gripper",
                     "move", "grasp_async", "join_motion", "future.wait",
                     "move", "move_async", "join_motion", "future.wait",
                     "robot.stop", "gripper.stop_async"]
    assert log[0] == ("Robot", "172.16.0.2", {"realtime_config": "Ignore"})
    _, motion, asynchronous, factor = log[3]
    assert asynchronous is True and factor == 0.2
    kind, target, reference = motion
    assert kind == "CartesianMotion" and reference == "Absolute"
    expected = apply_delta(state, DELTA)
    np.testing.assert_allclose(target.translation, expected[:3])
    # base-frame composition R(d)·R, which differs from franky's EE-frame Relative motion R·R(d)
    got = Rotation.from_quat(target.quaternion)
    assert (got.inv() * Rotation.from_euler("xyz", expected[3:6])).magnitude() < 1e-9
    ee_frame = Rotation.from_quat(QUAT) * Rotation.from_euler("xyz", DELTA[3:6])
    assert (got.inv() * ee_frame).magnitude() > 0.1
    assert log[4] == ("grasp_async", pytest.approx(0.04), 0.05, 20.0, 1.0, 1.0)  # g 0 -> 0.5: width 4 cm
    assert log[5][1] == pytest.approx(3.0, abs=0.05)  # the timeout reaches join_motion


def test_franky_driver_timeout_and_home(monkeypatch):
    from envs.robot import FrankyDriver

    log: list = []
    monkeypatch.setitem(sys.modules, "franky", fake_franky(log, join_ok=False))
    with FrankyDriver("robot") as d:
        assert log[0] == ("Robot", "robot", {})  # real-time enforced by default
        with pytest.raises(TimeoutError, match="did not finish within 1.0 s"):
            d.move(np.zeros(7), timeout=1.0)
        d.home()
    assert ("JointMotion", ("JointState", list(d.home_joints))) in [c[1] for c in log if c[0] == "move"]
    assert ("gripper.open", 0.05) in log


def test_franky_driver_validates_arguments():
    from envs.robot import FrankyDriver

    with pytest.raises(ValueError, match="host"):
        FrankyDriver("")
    with pytest.raises(ValueError, match="dynamics_factor"):
        FrankyDriver("x", dynamics_factor=1.5)
    with pytest.raises(RuntimeError, match="not connected"):
        FrankyDriver("x").get_state()


# ---------------------------------------------------------------------------------------------- fake panda-py
def fake_panda_py(log: list) -> tuple[types.ModuleType, types.ModuleType]:
    m, lf = types.ModuleType("panda_py"), types.ModuleType("panda_py.libfranka")

    class Panda:
        def __init__(self, host):
            log.append(("Panda", host))

        def get_position(self):
            return POS.copy()

        def get_orientation(self):
            return QUAT.copy()

        def move_to_pose(self, position, orientation, speed_factor=0.2):
            log.append(("move_to_pose", np.asarray(position), np.asarray(orientation), speed_factor))
            return True

        def move_to_start(self, speed_factor=0.2):
            log.append(("move_to_start", speed_factor))

        def stop_controller(self):
            log.append(("stop_controller",))

    class Gripper:
        def __init__(self, host):
            log.append(("Gripper", host))

        def read_once(self):
            return types.SimpleNamespace(width=0.06, max_width=0.08, is_grasped=False)

        def grasp(self, width, speed, force, epsilon_inner=0.005, epsilon_outer=0.005):
            log.append(("grasp", width, speed, force, epsilon_inner, epsilon_outer))
            return True

        def move(self, width, speed):
            log.append(("gripper.move", width, speed))
            return True

        def stop(self):
            log.append(("gripper.stop",))

    m.Panda, lf.Gripper, m.libfranka = Panda, Gripper, lf
    return m, lf


def test_panda_py_driver_call_sequence(monkeypatch):
    from envs.robot import PandaPyDriver

    log: list = []
    m, lf = fake_panda_py(log)
    monkeypatch.setitem(sys.modules, "panda_py", m)
    monkeypatch.setitem(sys.modules, "panda_py.libfranka", lf)
    with PandaPyDriver("10.0.0.2", speed_factor=0.1) as d:
        state = d.get_state()
        assert state[6] == pytest.approx(0.25)  # 1 - 0.06 / 0.08
        d.move(DELTA)
        with pytest.raises(ValueError, match="blocking"):
            d.move(DELTA, blocking=False)
        d.home()
        d.stop()
    names = [c[0] for c in log]
    assert names == ["Panda", "Gripper", "move_to_pose", "grasp", "move_to_start", "gripper.move",
                     "stop_controller", "gripper.stop"]
    _, position, orientation, speed = log[2]
    expected = apply_delta(state, DELTA)
    np.testing.assert_allclose(position, expected[:3])
    assert (Rotation.from_quat(orientation).inv() * Rotation.from_euler("xyz", expected[3:6])).magnitude() < 1e-9
    assert speed == 0.1
    assert log[3][1] == pytest.approx(0.08 * (1 - 0.75))


# ---------------------------------------------------------------------------------------------- missing backends
BACKENDS = [("FrankyDriver", "franky", "franky", "franky-control"),
            ("PandaPyDriver", "panda_py", "panda-py", "panda-python")]


def assert_one_error(error: BaseException) -> None:
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__), repr(error)


@pytest.mark.parametrize(("cls", "module", "extra", "package"), BACKENDS)
def test_missing_backend_is_one_error_naming_the_extra(monkeypatch, cls, module, extra, package):
    import envs.robot

    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like to import
    message = f"{module} is not installed: pip install 'vjepa2-ac[{extra}]' (or pip install {package})"
    with pytest.raises(ImportError) as info:
        getattr(envs.robot, cls)("10.0.0.2").connect()
    assert str(info.value) == message
    assert_one_error(info.value)
    # Through the safety layer too: the same single ImportError, not a RobotFault chained to it.
    robot = SafeDriver(getattr(envs.robot, cls)("10.0.0.2"), SafetyLimits(), handle_signals=False)
    with pytest.raises(ImportError) as info, robot:
        pass
    assert type(info.value) is ImportError and str(info.value) == message
    assert_one_error(info.value)
    assert robot.faulted and robot.log[-1]["event"] == "close"


def test_broken_backend_install_is_not_called_missing(monkeypatch):
    from envs.robot import FrankyDriver, driver

    real_import = driver.importlib.import_module

    def import_module(name, *args):
        if name == "franky":
            raise ModuleNotFoundError("No module named 'pinocchio'", name="pinocchio")
        return real_import(name, *args)

    monkeypatch.setattr(driver.importlib, "import_module", import_module)
    with pytest.raises(ImportError, match=r"^franky is installed but does not import \(ModuleNotFoundError: No "
                                          r"module named 'pinocchio'\); reinstall it: pip install "
                                          r"'vjepa2-ac\[franky\]'"):
        FrankyDriver("10.0.0.2").connect()


# ---------------------------------------------------------------------------------------------- cameras
def fake_realsense(log: list, numbers: list[int]) -> types.ModuleType:
    rs = types.ModuleType("pyrealsense2")
    rs.stream = types.SimpleNamespace(color="color")
    rs.format = types.SimpleNamespace(rgb8="rgb8")
    intr = types.SimpleNamespace(width=64, height=48, fx=60.0, fy=61.0, ppx=31.5, ppy=23.5)

    class Config:
        def enable_device(self, serial):
            log.append(("enable_device", serial))

        def enable_stream(self, *args):
            log.append(("enable_stream", *args))

    class Pipeline:
        def start(self, config):
            log.append(("start",))
            profile = types.SimpleNamespace(as_video_stream_profile=lambda: types.SimpleNamespace(
                get_intrinsics=lambda: intr))
            return types.SimpleNamespace(get_stream=lambda s: profile)

        def wait_for_frames(self, timeout_ms):
            n = numbers.pop(0) if len(numbers) > 1 else numbers[0]
            color = types.SimpleNamespace(get_data=lambda: np.full((48, 64, 3), n, np.uint8),
                                          get_frame_number=lambda: n)
            return types.SimpleNamespace(get_color_frame=lambda: color)

        def stop(self):
            log.append(("stop",))

    rs.pipeline, rs.config = Pipeline, Config
    return rs


def test_realsense_camera_and_frozen_stream_detection(monkeypatch):
    from envs.robot import FakeDriver, RealSenseCamera

    log: list = []
    monkeypatch.setitem(sys.modules, "pyrealsense2", fake_realsense(log, [1, 2, 2]))
    camera = RealSenseCamera("123", width=64, height=48, fps=15)
    driver = FakeDriver()
    with SafeDriver(driver, SafetyLimits(), camera=camera, handle_signals=False) as robot:
        assert camera.intrinsics.fx == 60.0 and camera.intrinsics.cy == 23.5
        assert robot.read_frame().image[0, 0, 0] == 1
        assert robot.read_frame().image.shape == (48, 64, 3)
        with pytest.raises(WatchdogTimeout, match="not newer"):  # the device keeps returning frame 2
            robot.read_frame()
        assert "stop" in driver.call_names()
    assert log[:3] == [("enable_device", "123"), ("enable_stream", "color", 64, 48, "rgb8", 15), ("start",)]
    assert log[-1] == ("stop",)


def test_opencv_camera_converts_bgr_and_reports_loss(monkeypatch):
    from envs.robot import OpenCVCamera

    frames = [np.dstack([np.full((8, 8), c, np.uint8) for c in (10, 20, 30)])]
    cv2 = types.ModuleType("cv2")
    cv2.CAP_PROP_BUFFERSIZE, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS = 38, 3, 4, 5
    props: dict = {}

    class VideoCapture:
        def __init__(self, source):
            self.source = source

        def isOpened(self):  # noqa: N802 - OpenCV's name
            return True

        def set(self, prop, value):
            props[prop] = value

        def get(self, prop):
            return {3: 8, 4: 8}.get(prop, 0)

        def read(self):
            return (True, frames.pop()) if frames else (False, None)

        def release(self):
            props["released"] = True

    cv2.VideoCapture = VideoCapture
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    with OpenCVCamera(0) as camera:
        frame = camera.read()
        assert frame.image[0, 0].tolist() == [30, 20, 10]  # BGR -> RGB
        assert camera.intrinsics.width == 8
        with pytest.raises(RuntimeError, match="no frame from source 0"):
            camera.read()
    assert props[38] == 1 and props["released"]


# ---------------------------------------------------------------------------------------------- franky-sim
@pytest.fixture(scope="module")
def franky_sim_host():
    """A franky-sim server (MuJoCo, libfranka protocol) in its own process on loopback.

    In-process it deadlocks: franky's Robot destructor holds the GIL while waiting for the server thread."""
    pytest.importorskip("franky")
    pytest.importorskip("franky_sim")
    proc = subprocess.Popen([sys.executable, "-u", "-m", "franky_sim.run_server", "--simulator", "mujoco"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "MUJOCO_GL": "egl"})
    try:
        host, deadline, seen = None, time.monotonic() + 60, []
        while host is None and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            seen.append(line)
            match = re.search(r"using '([^']+)' as the robot IP", line)
            host = match.group(1) if match else None
        if host is None:
            pytest.fail(f"franky-sim did not start: {''.join(seen)[-2000:]}")
        yield host
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_franky_driver_against_franky_sim(franky_sim_host):
    from envs.robot import FrankyDriver

    assert franky_sim_host.startswith("127.")  # loopback only
    limits = SafetyLimits(move_timeout_s=5.0, state_timeout_s=1.0)
    with SafeDriver(FrankyDriver(franky_sim_host, dynamics_factor=0.3, realtime=False), limits,
                    handle_signals=False) as robot:
        robot.home()
        start = robot.get_state()
        delta = np.array([0.03, -0.02, 0.02, 0.0, 0.0, 0.25, 0.0])
        robot.move(delta)
        reached = robot.get_state()
        expected = apply_delta(start, delta)
        np.testing.assert_allclose(reached[:3], expected[:3], atol=0.002)
        err = Rotation.from_euler("xyz", reached[3:6]).inv() * Rotation.from_euler("xyz", expected[3:6])
        assert err.magnitude() < 0.01
        # Gripper: closing by 0.5 halves the opening width.
        robot.move([0, 0, 0, 0, 0, 0, 0.5])
        assert robot.get_state()[6] == pytest.approx(min(1.0, start[6] + 0.5), abs=0.05)
        # A move that cannot finish in time is stopped short of its target: by the watchdog or, on a loaded
        # machine, by the driver's own deadline first (both end in stop()).
        before = robot.get_state()
        t0 = time.perf_counter()
        with pytest.raises(RobotFault, match="within 0.05 s"):
            robot.move([0.0, 0.0, 0.07, 0, 0, 0, 0], timeout=0.05)
        assert time.perf_counter() - t0 < 0.5
        robot.driver.robot.recover_from_errors()
        robot.clear_fault()
        time.sleep(0.3)
        after = robot.get_state()
        assert after[2] - before[2] < 0.06  # stopped, not completed


def test_cli_capture_goal_from_a_realsense_needs_no_robot(monkeypatch, tmp_path):
    import argparse

    from PIL import Image

    from vjepa2_ac.commands import robot as command

    log: list = []
    monkeypatch.setitem(sys.modules, "pyrealsense2", fake_realsense(log, [1, 2, 3, 4, 5]))
    parser = argparse.ArgumentParser()
    command.configure(parser)
    out = tmp_path / "goal.png"
    args = parser.parse_args(["capture-goal", "--driver", "franky", "--camera", "realsense", "--warmup", "3",
                              "--camera-size", "64", "48", "--out", str(out)])
    assert command.run(args) == 0
    image = np.array(Image.open(out))
    assert image.shape == (48, 64, 3) and image[0, 0, 0] == 4  # the frame after 3 warm-up frames
    assert log[-1] == ("stop",) and not list(tmp_path.glob(".*partial"))
