"""Real-robot loop benchmarks: loop overhead per step with SimDriver, and time from a fault to ``stop()``.

    MUJOCO_GL=egl python benchmarks/bench_robot.py [--steps 60] [--repeats 30]

Targets (issue 7): loop overhead per step, planning excluded, <= 20 ms; fault -> stop() <= 100 ms.
"Overhead" is the step's wall time minus the policy and minus the time spent inside the raw driver / camera calls
(for SimDriver: physics + rendering): the safety checks, watchdog, state/frame checks, logging and episode
recording. The step time without planning (overhead + simulator) is printed too.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from envs.robot import SafeDriver, SafetyLimits  # noqa: E402
from envs.robot.loop import run_loop  # noqa: E402
from envs.robot.testing import FakeCamera, FakeDriver  # noqa: E402


def stats_ms(values: list[float]) -> str:
    v = np.asarray(values) * 1e3
    return f"{np.median(v):8.2f} {np.quantile(v, 0.9):8.2f} {v.max():8.2f}"


def bench_overhead(steps: int, image_size: int, record: bool) -> dict[str, list[float]]:
    from envs.robot import SimDriver

    rng = np.random.default_rng(0)

    def policy(frame: np.ndarray, state: np.ndarray):
        return rng.uniform(-0.01, 0.01, 7) * [1, 1, 1, 0, 0, 0, 0], {"energy": 0.0}

    sim = SimDriver(image_size=image_size)
    with tempfile.TemporaryDirectory() as tmp:
        writer = None
        if record:
            from vjepa2_ac.data import EpisodeWriter

            writer = EpisodeWriter(Path(tmp) / "ep.h5", camera="exterior_1")
        with SafeDriver(sim, SafetyLimits(), camera=sim, log_path=Path(tmp) / "log.jsonl") as robot:
            run_loop(robot, policy, 3)  # warm-up (renderer, caches)
            result = run_loop(robot, policy, steps, recorder=writer)
        if writer is not None:
            t0 = time.perf_counter()
            writer.close()
            result.timings["close_episode"] = [time.perf_counter() - t0]
    if not result.ok:
        raise RuntimeError(f"benchmark loop failed: {result.stopped_by}")
    result.timings["without_policy"] = [s - p for s, p in zip(result.timings["step"], result.timings["policy"])]
    return result.timings


def fault_to_stop(kind: str) -> float:
    """Seconds from the fault to the driver's ``stop()`` call."""
    limits = SafetyLimits(move_timeout_s=0.2, camera_timeout_s=0.2, state_timeout_s=0.2, max_frame_age_s=0.2)
    driver, camera = FakeDriver(), FakeCamera()
    robot = SafeDriver(driver, limits, camera=camera, handle_signals=(kind == "sigterm"))
    step = np.array([0.01, 0, 0, 0, 0, 0, 0])
    fault_time = 0.0
    try:
        with robot:
            robot.read_frame()
            robot.move(step)
            if kind == "driver_exception":
                driver.raise_on_move = RuntimeError("reflex")
                try:
                    robot.move(step)
                except Exception:
                    pass
                fault_time = driver.time_of("move")  # the fake raises right after recording the call
            elif kind == "stale_frame":
                camera.freeze = True
                fault_time = time.perf_counter()  # the frozen frame is returned at once
                try:
                    robot.read_frame()
                except Exception:
                    pass
            elif kind == "camera_hang":
                camera.hang_s = 1.0
                start = time.perf_counter()
                try:
                    robot.read_frame()
                except Exception:
                    pass
                fault_time = start + limits.camera_timeout_s  # the fault is the missed deadline
            elif kind == "driver_stall":
                driver.stall_s = 1.0
                start = time.perf_counter()
                try:
                    robot.move(step)
                except Exception:
                    pass
                fault_time = start + limits.move_timeout_s
            elif kind == "sigterm":
                driver.stall_s = 1.0
                fault_time = 0.0

                def send() -> None:
                    nonlocal fault_time
                    fault_time = time.perf_counter()
                    os.kill(os.getpid(), signal.SIGTERM)

                threading.Timer(0.05, send).start()
                robot.move(step)
    except SystemExit:
        pass
    return driver.time_of("stop", 0) - fault_time


def sim_exception_to_stop() -> float:
    from envs.robot import SimDriver

    sim = SimDriver(image_size=64)
    inner_step = sim.env.step
    moment = {}

    def failing_step(action):
        inner_step(action)
        moment["t"] = time.perf_counter()
        raise RuntimeError("simulated controller fault")

    stops = []
    original_stop = sim.stop

    def stop() -> None:
        stops.append(time.perf_counter())
        original_stop()

    sim.stop = stop
    with SafeDriver(sim, SafetyLimits(), camera=sim, handle_signals=False) as robot:
        sim.env.step = failing_step
        try:
            robot.move([0.01, 0, 0, 0, 0, 0, 0])
        except Exception:
            pass
    return stops[0] - moment["t"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=256)
    args = parser.parse_args()
    logging.getLogger("envs.robot").setLevel(logging.CRITICAL)  # the injected faults would log an error each
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    print(f"## Loop per step with SimDriver ({args.steps} steps, {args.image_size}px, blocking moves, "
          "planning excluded)\n")
    print("| recording | quantity | median ms | p90 ms | max ms |")
    print("|---|---|---|---|---|")
    for record in (False, True):
        timings = bench_overhead(args.steps, args.image_size, record)
        label = "episode + command log" if record else "command log only"
        for key, name in (("overhead", "loop overhead (target <= 20 ms)"), ("robot", "inside SimDriver (physics+render)"),
                          ("without_policy", "whole step without planning")):
            med, p90, mx = stats_ms(timings[key]).split()
            print(f"| {label} | {name} | {med} | {p90} | {mx} |")
        if "close_episode" in timings:
            print(f"| {label} | closing the episode file (once) | {timings['close_episode'][0] * 1e3:.2f} | | |")

    print(f"\n## Fault -> stop() ({args.repeats} repeats each; FakeDriver/FakeCamera unless noted)\n")
    print("| fault | median ms | p90 ms | max ms | target |")
    print("|---|---|---|---|---|")
    for kind in ("driver_exception", "stale_frame", "camera_hang", "driver_stall", "sigterm"):
        values = [fault_to_stop(kind) for _ in range(args.repeats)]
        med, p90, mx = stats_ms(values).split()
        after = " (after the 200 ms deadline)" if kind in ("camera_hang", "driver_stall") else ""
        print(f"| {kind}{after} | {med} | {p90} | {mx} | <= 100 |")
    values = [sim_exception_to_stop() for _ in range(max(3, args.repeats // 10))]
    med, p90, mx = stats_ms(values).split()
    print(f"| SimDriver exception in env.step | {med} | {p90} | {mx} | <= 100 |")


if __name__ == "__main__":
    main()
