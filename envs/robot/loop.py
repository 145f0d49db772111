"""The closed control loop, independent of any model: read frame + state, ask a policy, move through the safety
layer, record the step. ``vjepa2_ac.agent.robot`` plugs the V-JEPA 2-AC ``MPCAgent`` in as the policy.

Every fault (driver, camera, watchdog, refused command, an exception in the policy, Ctrl-C / SIGTERM) ends the
loop with the arm stopped; ``LoopResult.stopped_by`` says why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from envs.robot.safety import SafeDriver

logger = logging.getLogger(__name__)

#: ``policy(frame uint8 [H, W, 3], state [A]) -> action [A]`` or ``(action [A], {name: float | array})``; A = 7 for
#: DROID's Franka end effector (the driver's state decides).
Policy = Callable[[np.ndarray, np.ndarray], Any]


class StepRecorder(Protocol):
    """What the loop records into (``vjepa2_ac.data.EpisodeWriter`` fits)."""

    def add_step(self, frame: np.ndarray, state: np.ndarray, action: np.ndarray | None = None,
                 **extras: Any) -> None: ...


@dataclass
class LoopResult:
    """Outcome of ``run_loop``.

    steps: actions executed. stopped_by: ``None`` if all steps ran (or ``done`` said so), else the reason.
    error: the exception that ended the loop (``None`` if none). timings: per-step seconds, keys ``step``
    (wall time of the whole step), ``policy``, ``robot`` (time inside the raw driver/camera calls) and
    ``overhead`` (``step - policy - robot``: safety checks, watchdog, recording, bookkeeping).
    """

    steps: int = 0
    stopped_by: str | None = None
    error: BaseException | None = None
    done: bool = False
    timings: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in
                                                                      ("step", "policy", "robot", "overhead")})

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> dict[str, float]:
        """Median / p90 milliseconds of each timing."""
        out: dict[str, float] = {"steps": self.steps}
        for key, values in self.timings.items():
            if values:
                out[f"{key}_median_ms"] = float(np.median(values) * 1e3)
                out[f"{key}_p90_ms"] = float(np.quantile(values, 0.9) * 1e3)
        return out


def run_loop(
    robot: SafeDriver,
    policy: Policy,
    max_steps: int,
    *,
    recorder: StepRecorder | None = None,
    done: Callable[[int, np.ndarray], bool] | None = None,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> LoopResult:
    """Run up to ``max_steps`` closed-loop steps on a connected ``SafeDriver`` that has a camera.

    Each step: ``frame = robot.read_frame()``, ``state = robot.get_state()``, ``action = policy(frame, state)``,
    ``sent = robot.move(action)`` (blocking), then ``recorder.add_step(frame, state, sent, **extras)`` where
    extras are the policy's extras plus ``requested_action`` [7] and ``loop_overhead_s``. After the last step
    the final observation is recorded without an action. ``done(step, state)`` may end the loop early.
    The loop never raises: a fault stops the arm and is returned in ``LoopResult``.
    """
    if not isinstance(max_steps, int) or max_steps < 0:
        raise ValueError(f"max_steps: expected an int >= 0, got {max_steps!r}")
    if robot.camera is None:
        raise ValueError("robot: the SafeDriver needs a camera (SafeDriver(driver, limits, camera=...))")
    result = LoopResult()
    step = 0
    try:
        for step in range(max_steps):
            start = time.perf_counter()
            robot.robot_time_s = 0.0
            frame = robot.read_frame()
            state = robot.get_state()
            t_policy = time.perf_counter()
            out = policy(frame.image, state)
            policy_s = time.perf_counter() - t_policy
            action, extras = out if isinstance(out, tuple) else (out, {})
            requested = np.asarray(action, dtype=np.float64)
            sent = robot.move(requested)
            robot_s = robot.robot_time_s
            if recorder is not None:
                record_extras = dict(extras) if isinstance(extras, Mapping) else {}
                if requested.shape == np.shape(state):
                    record_extras["requested_action"] = requested
                overhead = time.perf_counter() - start - policy_s - robot_s
                recorder.add_step(frame.image, state, sent, loop_overhead_s=overhead, **record_extras)
            result.steps += 1
            step_s = time.perf_counter() - start
            result.timings["step"].append(step_s)
            result.timings["policy"].append(policy_s)
            result.timings["robot"].append(robot_s)
            result.timings["overhead"].append(step_s - policy_s - robot_s)
            if on_step is not None:
                on_step(step, {"state": state, "action": sent, "policy_s": policy_s, "step_s": step_s, **extras})
            if done is not None and done(step, robot.get_state()):
                result.done = True
                break
        if recorder is not None:
            recorder.add_step(robot.read_frame().image, robot.get_state())
    except (Exception, KeyboardInterrupt, SystemExit) as e:
        result.error = e
        result.stopped_by = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        robot.stop(f"loop ended at step {step}: {result.stopped_by}")
        logger.error("control loop stopped at step %d: %s", step, result.stopped_by)
    return result
