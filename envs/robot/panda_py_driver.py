"""``PandaPyDriver``: a Franka arm + Franka Hand through panda-py (``pip install 'vjepa2-ac[panda-py]'``).

panda-py has no relative motion primitive: every ``move(delta)`` reads the base-frame pose and calls
``Panda.move_to_pose(position, orientation_xyzw)`` with the target ``current ⊕ delta``. ``move_to_pose`` blocks
(there is no asynchronous variant and no timeout), so ``blocking=False`` is refused and the timeout is enforced
by ``SafeDriver``'s watchdog, which calls ``stop()`` (``Panda.stop_controller()`` + ``Gripper.stop()``) from
another thread. The gripper uses ``libfranka.Gripper``: ``grasp`` with wide tolerances to close, ``move`` to open.
"""

from __future__ import annotations

import logging
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

logger = logging.getLogger(__name__)


class PandaPyDriver(DriverBase):
    """``RobotDriver`` over ``panda_py.Panda`` and ``panda_py.libfranka.Gripper`` (blocking moves only).

    Args:
        host: FCI hostname or IP of the robot.
        speed_factor: ``move_to_pose`` speed factor (0, 1].
        gripper: also drive the Franka Hand; gripper_speed (m/s), gripper_force (N).
    """

    def __init__(
        self,
        host: str,
        *,
        speed_factor: float = 0.2,
        gripper: bool = True,
        gripper_speed: float = 0.05,
        gripper_force: float = 20.0,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host: expected the robot's hostname or IP, got {host!r}")
        if not 0 < speed_factor <= 1:
            raise ValueError(f"speed_factor: expected a value in (0, 1], got {speed_factor}")
        self.host = host
        self.speed_factor = float(speed_factor)
        self.use_gripper = gripper
        self.gripper_speed = float(gripper_speed)
        self.gripper_force = float(gripper_force)
        self.panda: Any = None
        self.gripper: Any = None
        self._max_width = 0.08

    def connect(self) -> None:
        panda_py = import_optional("panda_py", "panda-py", "panda-python")
        libfranka = import_optional("panda_py.libfranka", "panda-py", "panda-python")
        self.panda = panda_py.Panda(self.host)
        if self.use_gripper:
            self.gripper = libfranka.Gripper(self.host)
            self._max_width = float(self.gripper.read_once().max_width)

    def close(self) -> None:
        self.panda = None
        self.gripper = None

    def _require(self) -> None:
        if self.panda is None:
            raise RuntimeError("PandaPyDriver is not connected: call connect() or use it as a context manager")

    def get_state(self) -> np.ndarray:
        self._require()
        g = 0.0
        if self.gripper is not None:
            gs = self.gripper.read_once()
            g = width_to_closedness(gs.width, gs.max_width)
        return state_from_pose(np.asarray(self.panda.get_position()), np.asarray(self.panda.get_orientation()), g)

    def move(self, delta: np.ndarray, blocking: bool = True, timeout: float | None = None) -> None:
        self._require()
        if not blocking:
            raise ValueError("blocking: panda-py's move_to_pose is blocking only; use blocking=True")
        state = self.get_state()
        target = apply_delta(state, delta)
        position, quat = state_to_pose(target)
        if not self.panda.move_to_pose(position, quat, speed_factor=self.speed_factor):
            # Not dangerous (contact, friction): the impedance controller settled short of the target.
            logger.warning("panda-py move_to_pose settled short of %s", position.round(4).tolist())
        if self.gripper is not None and abs(target[6] - state[6]) > 1e-3:
            width = closedness_to_width(target[6], self._max_width)
            if target[6] > state[6]:
                self.gripper.grasp(width, self.gripper_speed, self.gripper_force, 1.0, 1.0)
            else:
                self.gripper.move(width, self.gripper_speed)

    def home(self) -> None:
        self._require()
        self.panda.move_to_start(speed_factor=self.speed_factor)
        if self.gripper is not None:
            self.gripper.move(self._max_width, self.gripper_speed)

    def stop(self) -> None:
        if self.panda is not None:
            self.panda.stop_controller()
        if self.gripper is not None:
            self.gripper.stop()
