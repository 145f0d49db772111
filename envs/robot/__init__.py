"""Real-robot control: driver and camera interfaces, Franka adapters, cameras and the safety layer.

    from envs.robot import SafeDriver, SafetyLimits, SimDriver
    with SafeDriver(SimDriver(), SafetyLimits()) as robot:
        robot.move([0.02, 0, 0, 0, 0, 0, 0])

Nothing here imports torch, and the optional backends (franky, panda-py, pyrealsense2, cv2) are imported only
when a driver or camera that needs them is connected.
"""

from __future__ import annotations

import importlib
from typing import Any

from envs.robot.cameras import OpenCVCamera, RealSenseCamera, SimCamera
from envs.robot.driver import (
    Camera,
    CameraIntrinsics,
    Frame,
    RobotDriver,
    RobotFault,
    StateError,
    UnsafeCommandError,
    WatchdogTimeout,
)
from envs.robot.franky_driver import FrankyDriver
from envs.robot.panda_py_driver import PandaPyDriver
from envs.robot.safety import CheckedCommand, SafeDriver, SafetyLimits, check_command

_LAZY = {"SimDriver": "envs.robot.sim_driver", "FakeDriver": "envs.robot.testing", "FakeCamera": "envs.robot.testing"}

__all__ = [
    "Camera", "CameraIntrinsics", "CheckedCommand", "FakeCamera", "FakeDriver", "Frame", "FrankyDriver",
    "OpenCVCamera", "PandaPyDriver", "RealSenseCamera", "RobotDriver", "RobotFault", "SafeDriver", "SafetyLimits",
    "SimCamera", "SimDriver", "StateError", "UnsafeCommandError", "WatchdogTimeout", "check_command",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'envs.robot' has no attribute {name!r}")
