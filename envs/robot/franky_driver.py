"""``FrankyDriver``: a Franka arm + Franka Hand through franky (``pip install 'vjepa2-ac[franky]'``).

franky's ``ReferenceType.Relative`` motions are expressed in the *end-effector* frame, whereas V-JEPA 2-AC
actions are base-frame deltas. So every ``move(delta)`` reads the current pose and sends the absolute target
``current ⊕ delta`` (``xyz + dxyz``, ``R(d) · R``) with ``ReferenceType.Absolute``. The gripper follows the
DROID closedness ``g`` (``width = max_width · (1 - g)``): closing uses ``grasp`` with wide tolerances (it holds
an object instead of failing on it), opening uses ``move``.
Always wrap it in ``SafeDriver``; franky itself enforces only the robot's own reflexes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from envs.robot.driver import DriverBase, import_optional
from envs.robot.poses import (
    apply_delta,
    closedness_to_width,
    state_from_pose,
    state_to_pose,
    width_to_closedness,
)

#: DROID-like home joint configuration (rad): gripper pointing down in front of the robot.
HOME_JOINTS = (0.0, -np.pi / 5, 0.0, -4 * np.pi / 5, 0.0, 3 * np.pi / 5, np.pi / 4)


class FrankyDriver(DriverBase):
    """``RobotDriver`` over ``franky.Robot`` / ``franky.Gripper`` (blocking or asynchronous moves).

    Args:
        host: FCI hostname or IP of the robot (``127.0.0.1`` for franky-sim).
        dynamics_factor: franky ``relative_dynamics_factor`` (velocity/acceleration/jerk scale, (0, 1]).
        realtime: ``False`` passes ``RealtimeConfig.Ignore`` (no RT kernel; simulators).
        gripper: also drive the Franka Hand.
        gripper_speed: finger speed (m/s); gripper_force: grasp force (N).
        home_joints: joint configuration for ``home()`` (rad, 7 values).
    """

    def __init__(
        self,
        host: str,
        *,
        dynamics_factor: float = 0.1,
        realtime: bool = True,
        gripper: bool = True,
        gripper_speed: float = 0.05,
        gripper_force: float = 20.0,
        home_joints: tuple[float, ...] = HOME_JOINTS,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host: expected the robot's hostname or IP, got {host!r}")
        if not 0 < dynamics_factor <= 1:
            raise ValueError(f"dynamics_factor: expected a value in (0, 1], got {dynamics_factor}")
        if len(home_joints) != 7:
            raise ValueError(f"home_joints: expected 7 joint angles, got {len(home_joints)}")
        self.host = host
        self.dynamics_factor = float(dynamics_factor)
        self.realtime = realtime
        self.use_gripper = gripper
        self.gripper_speed = float(gripper_speed)
        self.gripper_force = float(gripper_force)
        self.home_joints = tuple(float(q) for q in home_joints)
        self.robot: Any = None
        self.gripper: Any = None
        self._franky: Any = None
        self._gripper_future: Any = None

    def connect(self) -> None:
        franky = self._franky = import_optional("franky", "franky", "franky-control")
        kwargs = {} if self.realtime else {"realtime_config": franky.RealtimeConfig.Ignore}
        self.robot = franky.Robot(self.host, **kwargs)
        self.robot.relative_dynamics_factor = self.dynamics_factor
        self.robot.recover_from_errors()
        if self.use_gripper:
            self.gripper = franky.Gripper(self.host)

    def close(self) -> None:
        self.robot = None
        self.gripper = None

    def _require(self) -> Any:
        if self.robot is None:
            raise RuntimeError("FrankyDriver is not connected: call connect() or use it as a context manager")
        return self._franky

    def get_state(self) -> np.ndarray:
        self._require()
        pose = self.robot.current_cartesian_state.pose.end_effector_pose
        g = width_to_closedness(self.gripper.width, self.gripper.max_width) if self.gripper is not None else 0.0
        return state_from_pose(np.asarray(pose.translation), np.asarray(pose.quaternion), g)

    def move(self, delta: np.ndarray, blocking: bool = True, timeout: float | None = None) -> None:
        franky = self._require()
        start = time.monotonic()
        state = self.get_state()
        target = apply_delta(state, delta)
        position, quat = state_to_pose(target)
        motion = franky.CartesianMotion(franky.Affine(position, quat), franky.ReferenceType.Absolute)
        self.robot.move(motion, asynchronous=True)
        if self.gripper is not None and abs(target[6] - state[6]) > 1e-3:
            width = closedness_to_width(target[6], self.gripper.max_width)
            if target[6] > state[6]:  # closing: grasp holds an object instead of failing on it
                self._gripper_future = self.gripper.grasp_async(width, self.gripper_speed, self.gripper_force,
                                                                epsilon_inner=1.0, epsilon_outer=1.0)
            else:
                self._gripper_future = self.gripper.move_async(width, self.gripper_speed)
        if blocking:
            self._join(start, timeout)

    def _join(self, start: float, timeout: float | None) -> None:
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        if not self.robot.join_motion(remaining):
            raise TimeoutError(f"franky motion did not finish within {timeout} s")
        if self._gripper_future is not None:
            remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
            if not self._gripper_future.wait(remaining):
                raise TimeoutError(f"franky gripper did not finish within {timeout} s")
            self._gripper_future = None

    def home(self) -> None:
        franky = self._require()
        self.robot.move(franky.JointMotion(franky.JointState(list(self.home_joints))))
        if self.gripper is not None:
            self.gripper.open(self.gripper_speed)

    def stop(self) -> None:
        if self.robot is not None:
            self.robot.stop()
        if self.gripper is not None:
            self.gripper.stop_async()
