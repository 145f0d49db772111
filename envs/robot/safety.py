"""The safety layer every command to a real arm goes through.

``SafeDriver(driver, SafetyLimits(), camera=...)`` wraps any ``RobotDriver`` and:

* checks each ``move(delta)`` before it is sent: malformed commands (not 7 real numbers: wrong shape, booleans,
  complex numbers, strings, other objects) and non-finite ones are **refused**
  (``UnsafeCommandError``, ``stop()`` called, nothing moves); oversized or out-of-workspace commands are
  **clipped** or **refused** as ``SafetyLimits.on_oversize`` / ``on_out_of_workspace`` say (see
  ``limits_default.yaml`` for the exact rules);
* runs every driver and camera call under a watchdog (``state_timeout_s``, ``move_timeout_s``,
  ``camera_timeout_s``; in a watchdog thread, or in the caller's thread with the deadline checked on return for
  backends with ``call_from_owner_thread = True`` such as ``SimDriver``) and checks what comes back (finite state, no jump larger than the commanded motion plus
  ``max_state_jump``, camera frames fresh, not stamped in the future (beyond ``FRAME_CLOCK_TOLERANCE_S``) and
  newer than the previous one);
* on any fault (driver exception, timeout, bad state, stale frame, Ctrl-C, SIGTERM, an exception inside the
  ``with`` block) calls ``driver.stop()`` at once, latches the fault (every later motion is refused until
  ``clear_fault()``) and raises ``RobotFault`` with the reason (a backend package that is not installed: its
  ``ImportError`` alone, naming the pip extra);
* in ``dry_run`` mode checks and logs every command but sends no motion (state and frames are still read);
* logs every command, clip, refusal, stop and fault to ``self.log`` and, with ``log_path``, to a JSON-lines file.

``envs`` must not import torch: everything here is numpy/scipy.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import numbers
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from envs.robot.driver import (
    Camera,
    Frame,
    RobotDriver,
    RobotFault,
    StateError,
    UnsafeCommandError,
    WatchdogTimeout,
    check_frame,
    now,
)
from envs.robot.poses import STATE_DIM, rotation_angle

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_LIMITS_PATH = Path(__file__).with_name("limits_default.yaml")
_MODES = ("clip", "refuse")
DELTA_LABELS = "[dx, dy, dz, droll, dpitch, dyaw, dg]"
STATE_LABELS = "[x, y, z, roll, pitch, yaw, g]"
#: A frame stamped later than ``now()`` by more than this (clock granularity) is a camera fault: its clock is
#: not ``time.monotonic()`` (a constant, not a ``SafetyLimits`` field: ``limits_default.yaml`` lists every field).
FRAME_CLOCK_TOLERANCE_S = 0.005


@dataclass(frozen=True)
class SafetyLimits:
    """Limits enforced by ``SafeDriver``; defaults are documented in ``envs/robot/limits_default.yaml``."""

    workspace_low: tuple[float, float, float] = (0.20, -0.50, 0.00)
    workspace_high: tuple[float, float, float] = (0.85, 0.50, 0.75)
    min_height: float = 0.01
    on_out_of_workspace: Literal["clip", "refuse"] = "clip"
    max_translation_per_axis: float = 0.075
    max_translation_l1: float = 0.15
    max_rotation: float = 0.35
    max_gripper_step: float = 1.0
    on_oversize: Literal["clip", "refuse"] = "clip"
    max_state_jump: float = 0.05
    max_state_jump_rotation: float = 0.30
    state_timeout_s: float = 0.5
    move_timeout_s: float = 10.0
    camera_timeout_s: float = 1.0
    max_frame_age_s: float = 0.5

    def __post_init__(self) -> None:
        for name in ("workspace_low", "workspace_high"):
            value = getattr(self, name)
            try:
                arr = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise ValueError(f"SafetyLimits.{name}: expected 3 numbers [x, y, z], got {value!r}") from e
            if arr.shape != (3,) or not np.all(np.isfinite(arr)):
                raise ValueError(f"SafetyLimits.{name}: expected 3 finite numbers [x, y, z], got {value!r}")
            object.__setattr__(self, name, tuple(float(v) for v in arr))
        low, high = np.array(self.workspace_low), np.array(self.workspace_high)
        if np.any(low >= high):
            raise ValueError(f"SafetyLimits: workspace_low {self.workspace_low} must be < workspace_high "
                             f"{self.workspace_high} on every axis")
        if isinstance(self.min_height, bool) or not isinstance(self.min_height, int | float):
            raise ValueError(f"SafetyLimits.min_height: expected a number, got {self.min_height!r}")
        if not self.min_height < high[2]:
            raise ValueError(f"SafetyLimits.min_height ({self.min_height}) must be below workspace_high[2] "
                             f"({high[2]})")
        for name in ("on_out_of_workspace", "on_oversize"):
            if getattr(self, name) not in _MODES:
                raise ValueError(f"SafetyLimits.{name}: expected one of {_MODES}, got {getattr(self, name)!r}")
        positive = ("max_translation_per_axis", "max_translation_l1", "max_rotation", "max_gripper_step",
                    "max_state_jump", "max_state_jump_rotation", "state_timeout_s", "move_timeout_s",
                    "camera_timeout_s", "max_frame_age_s")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
                raise ValueError(f"SafetyLimits.{name}: expected a finite number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def effective_low(self) -> np.ndarray:
        """Lower workspace corner with ``min_height`` folded into z: ``[x, y, max(z_low, min_height)]``."""
        low = np.array(self.workspace_low)
        low[2] = max(low[2], self.min_height)
        return low

    @classmethod
    def from_yaml(cls, path: str | Path) -> SafetyLimits:
        """Read limits from a YAML mapping; missing keys take the defaults, unknown keys are an error.

        Every error is one exception whose message names the file (and the key, with the valid keys):
        ``FileNotFoundError`` / ``OSError`` if it cannot be read, ``ValueError`` for bad YAML, keys or values."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            why = "no such file" if isinstance(e, FileNotFoundError) else e.strerror or str(e)
            raise type(e)(f"safety limits file {path}: {why} (resolved: {path.resolve()}); the defaults are in "
                          f"{DEFAULT_LIMITS_PATH}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"safety limits file {path}: not valid YAML: {' '.join(str(e).split())}") from None
        if not isinstance(data, dict):
            raise ValueError(f"safety limits file {path}: expected a mapping of limit names to values, got "
                             f"{type(data).__name__}")
        known = sorted(f.name for f in fields(cls))
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            hints = [f"{k!r} -> {close[0]!r}" for k in unknown if (close := difflib.get_close_matches(k, known, 1))]
            hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
            raise ValueError(f"safety limits file {path}: unknown safety limit(s) {unknown}{hint}; valid keys: "
                             f"{known}")
        try:
            return cls(**data)
        except ValueError as e:
            raise ValueError(f"safety limits file {path}: {e}") from None

    @classmethod
    def default(cls) -> SafetyLimits:
        """The limits in ``limits_default.yaml`` (equal to ``SafetyLimits()``)."""
        return cls.from_yaml(DEFAULT_LIMITS_PATH)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CheckedCommand:
    """Result of ``check_command``: the delta to send ``[7]`` and what was clipped (empty if nothing)."""

    delta: np.ndarray
    clipped: tuple[str, ...]


_DTYPE_KINDS = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes", "M": "datetimes",
                "m": "timedeltas", "V": "raw records"}


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def real_vector(value: Any, name: str, labels: str, error: type[Exception] = ValueError) -> np.ndarray:
    """``value`` as float64 ``[7]`` (``None`` entries read as NaN; NaN/inf kept for the caller to check).

    Only real numbers are accepted: booleans, complex numbers, strings and other objects raise ``error`` naming
    ``name``, the offending entries and ``labels`` (the meaning of the 7 values) instead of being converted
    (``np.array([True] * 7, float)`` would be a 1 m / 1 rad motion on every axis)."""
    expected = f"expected {STATE_DIM} real numbers {labels}"
    try:
        arr = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object)
    except (TypeError, ValueError) as e:
        raise error(f"{name}: {expected}, got {type(value).__name__} {_short(value)}") from e
    if arr.ndim == 0:
        raise error(f"{name}: {expected}, got {type(value).__name__} {_short(value)}")
    if arr.shape != (STATE_DIM,):
        raise error(f"{name}: expected shape [{STATE_DIM}] {labels}, got shape {list(arr.shape)}")
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64)
    if arr.dtype.kind != "O":
        raise error(f"{name}: {expected}, got an array of {_DTYPE_KINDS.get(arr.dtype.kind, 'non-numbers')} "
                    f"(dtype {arr.dtype}): {_short(value)}")
    out, bad = np.empty(STATE_DIM), []
    for i, x in enumerate(arr):
        if isinstance(x, np.ndarray) and x.ndim == 0:
            x = x[()]
        if x is None:
            out[i] = np.nan
        elif isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real):
            bad.append(f"{type(x).__name__} at index {i}")
        else:
            try:
                out[i] = float(x)
            except OverflowError:  # an int or Fraction beyond float range
                out[i] = np.inf
    if bad:
        raise error(f"{name}: {expected}, got {', '.join(bad)} in {_short(value)}")
    return out


def parse_delta(delta: Any) -> np.ndarray:
    """Turn a command into float64 ``[7]`` or raise ``UnsafeCommandError`` saying what is wrong with it."""
    arr = real_vector(delta, "delta", DELTA_LABELS, UnsafeCommandError)
    if not np.all(np.isfinite(arr)):
        raise UnsafeCommandError(f"delta: non-finite values (NaN/inf/None) at index "
                                 f"{np.flatnonzero(~np.isfinite(arr)).tolist()} in {arr.tolist()}")
    return arr


def check_command(delta: Any, state: np.ndarray, limits: SafetyLimits) -> CheckedCommand:
    """Apply ``limits`` to ``delta [7]`` taken from ``state [7]`` (pure function; nothing is moved).

    Order: parse (refuse malformed / NaN / inf) -> translation (per-axis and L1, uniform scaling) -> rotation
    angle (rotation vector scaled) -> gripper step -> workspace box on the target position (per-axis clip).
    If the arm is already outside the box so far that reaching it breaks the step limits, the command is
    refused whatever the mode.
    """
    d = parse_delta(delta)
    state = np.asarray(state, dtype=np.float64)
    clipped: list[str] = []

    def violate(what: str, mode: str) -> None:
        if mode == "refuse":
            raise UnsafeCommandError(f"command refused: {what} (delta={d.tolist()})")
        clipped.append(what)

    # Translation: one scale factor for both limits keeps the direction.
    t = d[:3]
    scale = min(1.0, limits.max_translation_per_axis / max(np.abs(t).max(), 1e-300),
                limits.max_translation_l1 / max(np.abs(t).sum(), 1e-300))
    if scale < 1.0:
        violate(f"translation {t.round(4).tolist()} exceeds per-axis {limits.max_translation_per_axis} / L1 "
                f"{limits.max_translation_l1}", limits.on_oversize)
        d[:3] = t * scale
    # Rotation: limit the angle of R(d).
    rotvec = Rotation.from_euler("xyz", d[3:6]).as_rotvec()
    angle = float(np.linalg.norm(rotvec))
    if angle > limits.max_rotation:
        violate(f"rotation angle {angle:.4f} rad exceeds {limits.max_rotation}", limits.on_oversize)
        d[3:6] = Rotation.from_rotvec(rotvec * (limits.max_rotation / angle)).as_euler("xyz")
    # Gripper rate.
    if abs(d[6]) > limits.max_gripper_step:
        violate(f"gripper step {d[6]:.4f} exceeds +-{limits.max_gripper_step}", limits.on_oversize)
        d[6] = np.sign(d[6]) * limits.max_gripper_step
    # Workspace on the target position.
    low, high = limits.effective_low, np.array(limits.workspace_high)
    target = state[:3] + d[:3]
    inside = np.clip(target, low, high)
    if np.any(inside != target):
        violate(f"target position {target.round(4).tolist()} outside workspace {low.tolist()}..{high.tolist()}",
                limits.on_out_of_workspace)
        d[:3] = inside - state[:3]
        t = d[:3]
        if (np.abs(t).max() > limits.max_translation_per_axis + 1e-12
                or np.abs(t).sum() > limits.max_translation_l1 + 1e-12):
            raise UnsafeCommandError(
                f"command refused: the arm at {state[:3].round(4).tolist()} is outside the workspace "
                f"{low.tolist()}..{high.tolist()} by more than one step; bring it back (home()) first")
    return CheckedCommand(d, tuple(clipped))


class SafeDriver:
    """A ``RobotDriver`` that enforces ``SafetyLimits`` on another driver (and watches an optional camera).

    Use it as a context manager: ``with SafeDriver(SimDriver(), SafetyLimits()) as robot: robot.move(a)``.
    ``move`` returns the delta actually sent (after clipping). Signal handlers for SIGINT/SIGTERM are installed
    on enter (main thread only) and restored on exit: they stop the arm, then raise ``KeyboardInterrupt`` /
    ``SystemExit(143)``.
    """

    def __init__(
        self,
        driver: RobotDriver,
        limits: SafetyLimits | None = None,
        *,
        camera: Camera | None = None,
        dry_run: bool = False,
        log_path: str | Path | None = None,
        handle_signals: bool = True,
    ) -> None:
        if driver is None:
            raise ValueError("driver: expected a RobotDriver, got None")
        self.driver = driver
        self.camera = camera
        self.limits = limits if limits is not None else SafetyLimits()
        if not isinstance(self.limits, SafetyLimits):
            raise TypeError(f"limits: expected SafetyLimits, got {type(self.limits).__name__}")
        self.dry_run = bool(dry_run)
        self.handle_signals = handle_signals
        self.log: list[dict[str, Any]] = []
        self.fault: RobotFault | None = None
        self.stop_count = 0
        self.robot_time_s = 0.0  # time spent inside the raw driver / camera calls (reset by the caller)
        self._log_path = Path(log_path) if log_path is not None else None
        self._log_file = None
        self._old_handlers: dict[int, Any] = {}
        self._last_state: np.ndarray | None = None
        self._moved_translation = 0.0
        self._moved_rotation = 0.0
        self._last_frame_time: float | None = None
        # Backends that must be called from the thread that created them (SimDriver: OpenGL context).
        self._inline_driver = bool(getattr(driver, "call_from_owner_thread", False))
        self._inline_camera = bool(getattr(camera, "call_from_owner_thread", False))
        self._stop_lock = threading.RLock()  # re-entrant: a signal may arrive inside stop()

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        if self._log_path is not None and self._log_file is None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self._log_path.open("a", buffering=1)
        self._record("connect", dry_run=self.dry_run, limits=self.limits.to_dict())
        self._install_signal_handlers()
        self._guarded("driver.connect()", self.driver.connect, None)
        if self.camera is not None and self.camera is not self.driver:
            self._guarded("camera.connect()", self.camera.connect, None)

    def close(self) -> None:
        try:
            if self.camera is not None and self.camera is not self.driver:
                self.camera.close()
        finally:
            try:
                self.driver.close()
            finally:
                self._restore_signal_handlers()
                self._record("close")
                if self._log_file is not None:
                    self._log_file.close()
                    self._log_file = None

    def __enter__(self) -> SafeDriver:
        try:
            self.connect()
        except BaseException:
            self.stop("connect failed")
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc is not None:
                self.stop(f"{exc_type.__name__}: {exc}")
            else:
                self.stop("end of session")
        finally:
            self.close()

    # ------------------------------------------------------------------ faults and stop
    @property
    def faulted(self) -> bool:
        return self.fault is not None

    def stop(self, reason: str = "requested") -> None:
        """Stop the arm now (best effort; never raises). Safe from any thread and from signal handlers."""
        with self._stop_lock:
            self.stop_count += 1
            try:
                self.driver.stop()
                self._record("stop", reason=reason)
            except BaseException as e:  # noqa: BLE001 - stopping must never raise
                logger.error("driver.stop() failed after %s: %r", reason, e)
                self._record("stop_failed", reason=reason, error=repr(e))

    def clear_fault(self) -> None:
        """Accept motions again after a fault (the operator has checked the cell)."""
        self._record("clear_fault", reason=str(self.fault))
        self.fault = None
        self._last_state = None
        self._last_frame_time = None

    def _raise_fault(self, error: RobotFault, cause: BaseException | None = None, *,
                     shown: BaseException | None = None) -> None:
        """Stop, latch ``error`` and raise it (or ``shown``, unchanged, when given)."""
        self.stop(str(error))
        self.fault = error
        self._record("fault", reason=str(error), kind=type(shown or error).__name__)
        logger.error("robot stopped: %s", error)
        if shown is not None:
            raise shown
        raise error from cause

    def _check_not_faulted(self, what: str) -> None:
        if self.fault is not None:
            msg = f"{what} refused: the robot was stopped after a fault ({self.fault}); call clear_fault() first"
            self._record("refused", what=what, reason=msg)
            raise RobotFault(msg)

    def _call_failed(self, what: str, error: BaseException) -> None:
        """A driver / camera call raised ``error``: stop, latch and raise ``RobotFault``. An ``ImportError`` (a
        backend package is missing: a setup error) is latched the same way but raised alone, unchanged, so its
        message naming the pip extra to install is the one error shown."""
        self._raise_fault(RobotFault(f"{what} raised {type(error).__name__}: {error}"), error,
                          shown=error if isinstance(error, ImportError) else None)

    def _guarded(self, what: str, fn: Callable[[], T], limit_s: float | None, inline: bool = False) -> T:
        """Run ``fn()`` with a deadline of ``limit_s`` seconds; on an exception or timeout stop the arm and raise
        ``RobotFault`` (``_call_failed``). The call runs in a watchdog thread, so a hung call is caught at the
        deadline; with ``inline`` (backends bound to their creating thread, e.g. an OpenGL context) it runs in
        this thread and the deadline is checked when it returns. ``limit_s=None``: no deadline."""
        if inline or limit_s is None:
            start = time.perf_counter()
            try:
                value = fn()
            except Exception as e:
                self._call_failed(what, e)
            elapsed = time.perf_counter() - start
            self.robot_time_s += elapsed
            if limit_s is not None and elapsed > limit_s:
                self._raise_fault(WatchdogTimeout(f"{what} returned after {elapsed:.3g} s (limit {limit_s:.3g} s)"))
            return value
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            start = time.perf_counter()
            try:
                box["value"] = fn()
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                box["error"] = e
            finally:
                box["elapsed"] = time.perf_counter() - start
                done.set()

        threading.Thread(target=target, name=f"SafeDriver {what}", daemon=True).start()
        if not done.wait(limit_s):
            self._raise_fault(WatchdogTimeout(f"{what} did not return within {limit_s:.3g} s"))
        self.robot_time_s += box["elapsed"]
        if "error" in box:
            self._call_failed(what, box["error"])
        return box["value"]

    # ------------------------------------------------------------------ state and frames
    def get_state(self) -> np.ndarray:
        """Read the state ``[7]`` under the watchdog and check it is finite and did not jump."""
        raw = self._guarded("driver.get_state()", self.driver.get_state, self.limits.state_timeout_s,
                            self._inline_driver)
        try:
            state = real_vector(raw, "driver.get_state()", STATE_LABELS, StateError)
        except StateError as e:
            self._raise_fault(e, e.__cause__)
        if not np.all(np.isfinite(state)):
            self._raise_fault(StateError(f"driver.get_state() returned non-finite values {state.tolist()}"))
        prev = self._last_state
        if prev is not None:
            jump = float(np.linalg.norm(state[:3] - prev[:3]))
            allowed = self._moved_translation + self.limits.max_state_jump
            turn = rotation_angle(prev[3:6], state[3:6])
            allowed_turn = self._moved_rotation + self.limits.max_state_jump_rotation
            if jump > allowed or turn > allowed_turn:
                self._raise_fault(StateError(
                    f"state jumped {jump:.4f} m / {turn:.4f} rad since the last read (allowed {allowed:.4f} m / "
                    f"{allowed_turn:.4f} rad): {prev.round(4).tolist()} -> {state.round(4).tolist()}"))
        self._last_state = state
        self._moved_translation = 0.0
        self._moved_rotation = 0.0
        return state

    def read_frame(self) -> Frame:
        """Read a camera frame under the watchdog; stale, frozen or malformed frames are faults."""
        if self.camera is None:
            raise RuntimeError("read_frame(): this SafeDriver has no camera (pass camera=...)")
        frame = self._guarded("camera.read()", self.camera.read, self.limits.camera_timeout_s, self._inline_camera)
        try:
            image, stamp = frame
            check_frame(image, "camera.read() image")
            if isinstance(stamp, bool | np.bool_) or not isinstance(stamp, numbers.Real) or not math.isfinite(stamp):
                raise ValueError(f"timestamp: expected finite time.monotonic() seconds, got {stamp!r}")
            stamp = float(stamp)
        except (TypeError, ValueError) as e:
            self._raise_fault(RobotFault(f"camera.read() returned a malformed frame: {e}"), e)
        t = now()
        age = t - stamp
        if age < -FRAME_CLOCK_TOLERANCE_S:
            self._raise_fault(WatchdogTimeout(
                f"camera frame from the future: timestamp {stamp:.3f} is {-age * 1e3:.0f} ms after now ({t:.3f}; "
                f"tolerance {FRAME_CLOCK_TOLERANCE_S * 1e3:.0f} ms); the camera's clock is not time.monotonic()"))
        if age > self.limits.max_frame_age_s:
            self._raise_fault(WatchdogTimeout(
                f"stale camera frame: {age * 1e3:.0f} ms old (max {self.limits.max_frame_age_s * 1e3:.0f} ms)"))
        if self._last_frame_time is not None and stamp <= self._last_frame_time:
            self._raise_fault(WatchdogTimeout(
                f"stale camera frame: timestamp {stamp:.3f} is not newer than the previous one "
                f"({self._last_frame_time:.3f}); the camera stopped delivering"))
        self._last_frame_time = stamp
        return Frame(image, stamp)

    # ------------------------------------------------------------------ motion
    def check(self, delta: Any, state: np.ndarray | None = None) -> CheckedCommand:
        """``check_command`` against ``state`` (default: a fresh ``get_state()``); moves nothing."""
        return check_command(delta, self.get_state() if state is None else state, self.limits)

    def move(self, delta: Any, blocking: bool = True, timeout: float | None = None) -> np.ndarray:
        """Check ``delta [7]`` against the limits and the current state, then send it. Returns what was sent."""
        deadline = self.limits.move_timeout_s if timeout is None else timeout
        if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not deadline > 0:
            raise ValueError(f"timeout: expected seconds > 0 or None, got {timeout!r}")
        self._check_not_faulted("move()")
        state = self.get_state()
        try:
            checked = check_command(delta, state, self.limits)
        except UnsafeCommandError as e:
            self._record("refused", requested=_jsonable(delta), state=state, reason=str(e))
            self.stop(f"refused command: {e}")
            logger.warning("%s", e)
            raise
        sent = checked.delta
        if checked.clipped:
            self._record("clipped", requested=_jsonable(delta), sent=sent, state=state, reason=list(checked.clipped))
        self._record("move", requested=_jsonable(delta), sent=sent, state=state, dry_run=self.dry_run)
        self._moved_translation += float(np.linalg.norm(sent[:3]))
        self._moved_rotation += float(Rotation.from_euler("xyz", sent[3:6]).magnitude())
        if self.dry_run:
            return sent
        self._guarded("driver.move()", partial(self.driver.move, sent, blocking=blocking, timeout=deadline),
                      deadline if blocking else self.limits.state_timeout_s, self._inline_driver)
        return sent

    def home(self, timeout: float | None = None) -> None:
        """Send the driver to its home pose (not in dry-run). The next state read is not jump-checked."""
        self._check_not_faulted("home()")
        self._record("home", dry_run=self.dry_run)
        if not self.dry_run:
            self._guarded("driver.home()", self.driver.home,
                          self.limits.move_timeout_s if timeout is None else float(timeout), self._inline_driver)
        self._last_state = None

    # ------------------------------------------------------------------ signals and log
    def _install_signal_handlers(self) -> None:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        while self._old_handlers:
            signum, handler = self._old_handlers.popitem()
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        self.stop(f"signal {name}")
        self.fault = RobotFault(f"stopped by {name}")
        self._record("fault", reason=f"stopped by {name}", kind="signal")
        if signum == signal.SIGINT:
            raise KeyboardInterrupt(f"robot stopped by {name}")
        raise SystemExit(128 + signum)

    def _record(self, event: str, **data: Any) -> None:
        entry = {"event": event, "time": time.time(), **{k: _jsonable(v) for k, v in data.items()}}
        self.log.append(entry)
        if self._log_file is not None:
            try:
                self._log_file.write(json.dumps(entry) + "\n")
            except (OSError, RuntimeError) as e:  # RuntimeError: re-entrant write from a signal handler
                logger.error("could not write the command log: %r", e)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)
