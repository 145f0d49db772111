"""The interfaces every robot and camera backend implements, and the errors the safety layer raises.

A ``RobotDriver`` moves the end effector by DROID-convention deltas (see ``envs.robot.poses``); a ``Camera``
returns RGB frames with the time they were captured. Backends are plain classes that match these protocols
(no inheritance needed); ``SafeDriver`` wraps any of them.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np


class RobotFault(RuntimeError):
    """The robot was stopped because of a fault (driver exception, timeout, bad state, stale frame, signal).

    After a fault ``SafeDriver`` refuses every further motion until ``clear_fault()`` is called.
    """


class WatchdogTimeout(RobotFault):
    """A driver or camera call did not return in time, or a camera frame was too old."""


class StateError(RobotFault):
    """The robot reported a non-finite state or one that jumped further than the limits allow."""


class UnsafeCommandError(ValueError):
    """A command was refused by the safety layer (malformed, non-finite, or outside the limits)."""


class Frame(NamedTuple):
    """One camera frame: ``image`` uint8 ``[H, W, 3]`` RGB and ``timestamp`` (``time.monotonic()`` seconds)."""

    image: np.ndarray
    timestamp: float


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the colour stream (pixels)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fovy(cls, width: int, height: int, fovy_deg: float) -> CameraIntrinsics:
        """Square pixels, principal point at the centre, vertical field of view ``fovy_deg``."""
        f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2)
        return cls(width, height, float(f), float(f), (width - 1) / 2, (height - 1) / 2)


@runtime_checkable
class RobotDriver(Protocol):
    """End-effector delta control of one arm + gripper (base frame, DROID convention).

    ``get_state() -> float64 [7]`` ``[x, y, z, roll, pitch, yaw, g]``; ``move(delta [7])`` executes
    ``state ⊕ delta`` and, when ``blocking``, returns once the motion finished (or raises after ``timeout`` s).
    ``stop()`` must be safe to call at any time, from any thread, more than once.
    """

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def home(self) -> None: ...

    def get_state(self) -> np.ndarray: ...

    def move(self, delta: np.ndarray, blocking: bool = True, timeout: float | None = None) -> None: ...

    def stop(self) -> None: ...

    def __enter__(self) -> RobotDriver: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Camera(Protocol):
    """An RGB camera: ``read() -> Frame(image uint8 [H, W, 3], timestamp)``; ``intrinsics``."""

    @property
    def intrinsics(self) -> CameraIntrinsics: ...

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def read(self) -> Frame: ...


class DriverBase:
    """Context-manager plumbing shared by the built-in drivers and cameras (``with X() as x:``)."""

    def connect(self) -> None:  # pragma: no cover - trivial default
        pass

    def close(self) -> None:  # pragma: no cover - trivial default
        pass

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_frame(image: np.ndarray, name: str = "frame") -> np.ndarray:
    """Validate a camera image: uint8 ``[H, W, 3]``; raise ``ValueError`` naming ``name`` otherwise."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}".strip()
        raise ValueError(f"{name}: expected a uint8 array of shape [H, W, 3], got {got}")
    return image


def now() -> float:
    """The clock used for frame timestamps and the watchdog (``time.monotonic``)."""
    return time.monotonic()


def import_optional(module: str, extra: str, package: str) -> Any:
    """Import an optional backend package or raise one ``ImportError`` naming the pip extra to install.

    A package that is missing gives ``"<module> is not installed: pip install 'vjepa2-ac[<extra>]' ..."``
    (nothing chained); one that is installed but fails to import (a missing shared library or dependency)
    says so, with the original error, rather than claiming it is not installed."""
    install = f"pip install 'vjepa2-ac[{extra}]' (or pip install {package})"
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = e.name if isinstance(e, ModuleNotFoundError) else None
        if missing is not None and (module == missing or module.startswith(missing + ".")):
            raise ImportError(f"{module} is not installed: {install}", name=module) from None
        raise ImportError(f"{module} is installed but does not import ({type(e).__name__}: {e}); reinstall it: "
                          f"{install}", name=module) from e
