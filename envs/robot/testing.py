"""Fake robot and camera with fault injection, for tests, benchmarks and trying a loop without hardware.

``FakeDriver`` integrates deltas exactly (DROID convention) and records every call with its time in ``calls``;
faults are switched on by attributes (``raise_on_move``, ``stall_s``, ``nan_state``, ``jump``). ``FakeCamera``
returns synthetic frames and can freeze (same timestamp), lag (old timestamp), hang or raise.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from envs.robot.driver import CameraIntrinsics, DriverBase, Frame, now
from envs.robot.poses import apply_delta

HOME_STATE = np.array([0.45, 0.0, 0.30, np.pi, 0.0, 0.0, 0.0])


class FakeDriver(DriverBase):
    """In-memory ``RobotDriver``.

    Fault switches (set at any time): ``raise_on_move`` (exception raised by the next ``move``), ``stall_s``
    (``move`` sleeps this long, interruptible by ``stop()``), ``nan_state`` (``get_state`` returns NaNs),
    ``jump`` (``[3]`` offset added to the state once), ``state_delay_s`` (``get_state`` sleeps).
    """

    def __init__(self, state: np.ndarray = HOME_STATE) -> None:
        self.home_state = np.array(state, dtype=np.float64)
        self.state = self.home_state.copy()
        self.calls: list[tuple[str, float]] = []
        self.moves: list[np.ndarray] = []
        self.connected = False
        self.raise_on_move: BaseException | None = None
        self.stall_s = 0.0
        self.nan_state = False
        self.jump: np.ndarray | None = None
        self.state_delay_s = 0.0
        self._stopped = threading.Event()

    def _call(self, name: str) -> None:
        self.calls.append((name, time.perf_counter()))

    def call_names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def time_of(self, name: str, which: int = -1) -> float:
        return [t for n, t in self.calls if n == name][which]

    def connect(self) -> None:
        self._call("connect")
        self.connected = True

    def close(self) -> None:
        self._call("close")
        self.connected = False

    def home(self) -> None:
        self._call("home")
        self.state = self.home_state.copy()

    def get_state(self) -> np.ndarray:
        self._call("get_state")
        if self.state_delay_s:
            time.sleep(self.state_delay_s)
        if self.nan_state:
            return np.full(7, np.nan)
        if self.jump is not None:
            self.state[:3] += self.jump
            self.jump = None
        return self.state.copy()

    def move(self, delta: np.ndarray, blocking: bool = True, timeout: float | None = None) -> None:
        self._call("move")
        self._stopped.clear()
        if self.raise_on_move is not None:
            err, self.raise_on_move = self.raise_on_move, None
            raise err
        if self.stall_s and self._stopped.wait(self.stall_s):
            return  # stopped mid-motion: the arm holds where it is
        self.moves.append(np.array(delta, dtype=np.float64))
        self.state = apply_delta(self.state, delta)

    def stop(self) -> None:
        self._call("stop")
        self._stopped.set()


class FakeCamera(DriverBase):
    """Synthetic ``Camera``: ``[H, W, 3]`` frames whose pixels encode the frame index.

    Fault switches: ``freeze`` (repeat the last frame and its timestamp), ``lag_s`` (timestamps this old),
    ``hang_s`` (``read`` blocks), ``raise_error`` (``read`` raises it).
    """

    def __init__(self, height: int = 64, width: int = 64) -> None:
        self.height, self.width = height, width
        self.count = 0
        self.freeze = False
        self.lag_s = 0.0
        self.hang_s = 0.0
        self.raise_error: BaseException | None = None
        self._last: Frame | None = None

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return CameraIntrinsics.from_fovy(self.width, self.height, 50.0)

    def read(self) -> Frame:
        if self.raise_error is not None:
            raise self.raise_error
        if self.hang_s:
            time.sleep(self.hang_s)
        if self.freeze and self._last is not None:
            return self._last
        self.count += 1
        image = np.full((self.height, self.width, 3), self.count % 256, dtype=np.uint8)
        self._last = Frame(image, now() - self.lag_s)
        return self._last
