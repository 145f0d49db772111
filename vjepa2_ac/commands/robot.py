"""``vjepa2-ac robot``: run the V-JEPA 2-AC planner on a robot (``run``) or save a goal image (``capture-goal``).

    vjepa2-ac robot run --driver franky --host 172.16.0.2 --camera realsense --model DIR --goal goal.png
    vjepa2-ac robot run --driver franky --host ... --goal g.png --subgoals a.png b.png --switch-after 4 10 4
    vjepa2-ac robot run --driver sim --model DIR --steps 20           # SimDriver; goal = the task's goal render
    vjepa2-ac robot capture-goal --camera realsense --out goal.png

Every command goes through ``envs.robot.SafeDriver`` (``--limits`` YAML, default ``limits_default.yaml``);
``--dry-run`` plans, checks and logs every command but moves nothing. Each run is recorded as an episode
(``--out``) next to its JSON-lines command log. Exit codes: 0 done, 1 stopped by a fault, 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

DRIVERS = ("sim", "franky", "panda-py")
CAMERAS = ("sim", "realsense", "opencv")


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--driver", choices=DRIVERS, default="sim", help="robot backend (default: sim)")
    p.add_argument("--host", help="robot FCI hostname / IP (franky, panda-py)")
    p.add_argument("--camera", choices=CAMERAS, default=None,
                   help="camera backend (default: sim with --driver sim, else realsense)")
    p.add_argument("--camera-serial", help="RealSense serial number (default: first device)")
    p.add_argument("--camera-source", default="0", help="OpenCV device index or video path (default: 0)")
    p.add_argument("--camera-size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"), default=(640, 480))
    p.add_argument("--fps", type=int, default=30, help="camera frame rate")
    p.add_argument("--task", default="reach", help="sim task: reach | grasp | reach_with_object | pick_place")
    p.add_argument("--seed", type=int, default=0, help="sim scene seed and planner seed")
    p.add_argument("--image-size", type=int, default=256, help="sim camera image size (pixels)")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="robot_command", metavar="{run,capture-goal}", required=True)
    run_p = sub.add_parser("run", help="closed-loop planning on a robot through the safety layer",
                           description="Closed-loop V-JEPA 2-AC planning on a robot through the safety layer.")
    _add_source_args(run_p)
    run_p.add_argument("--model", required=True, help="world model: directory, bundled name or hub repo id")
    run_p.add_argument("--device", default="cpu", help="torch device for the world model (cpu, cuda, ...)")
    run_p.add_argument("--goal", type=Path, help="goal image (PNG/JPEG); default with --driver sim: the task goal")
    run_p.add_argument("--subgoals", type=Path, nargs="+", help="sub-goal images, in order (the last is the goal)")
    run_p.add_argument("--switch-after", type=int, nargs="+", help="steps spent on each sub-goal (e.g. 4 10 4)")
    run_p.add_argument("--steps", type=int, default=30, help="number of actions to execute")
    run_p.add_argument("--planner", choices=("cem", "mppi", "icem"), default="cem")
    run_p.add_argument("--preset", choices=("paper", "official"), default="paper", help="CEM preset")
    run_p.add_argument("--samples", type=int, help="planner samples (override)")
    run_p.add_argument("--iterations", type=int, help="planner iterations (override)")
    run_p.add_argument("--horizon", type=int, help="planning horizon (override)")
    run_p.add_argument("--limits", type=Path, help="safety limits YAML (default: envs/robot/limits_default.yaml)")
    run_p.add_argument("--dry-run", action="store_true", help="plan, check and log every command; move nothing")
    run_p.add_argument("--home", action="store_true", help="send the robot home before the run")
    run_p.add_argument("--out", type=Path, default=Path("runs/robot"), help="directory for episodes and logs")
    run_p.add_argument("--no-record", action="store_true", help="do not write an episode file")
    run_p.add_argument("--dynamics-factor", type=float, default=0.1, help="franky relative dynamics factor")
    run_p.add_argument("--speed-factor", type=float, default=0.2, help="panda-py move_to_pose speed factor")
    run_p.add_argument("--no-realtime", action="store_true", help="franky: ignore the real-time kernel check")
    run_p.set_defaults(robot_run=_run)
    cap = sub.add_parser("capture-goal", help="save the current camera frame as a goal image",
                         description="Save the current camera frame as a goal image (PNG).")
    _add_source_args(cap)
    cap.add_argument("--out", type=Path, required=True, help="output image path (.png)")
    cap.add_argument("--warmup", type=int, default=10, help="frames to skip first (auto exposure)")
    cap.add_argument("--sim-goal", action="store_true", help="sim only: save the task's goal render instead")
    cap.set_defaults(robot_run=_capture_goal)


def run(args: argparse.Namespace) -> int:
    return int(args.robot_run(args))


# ---------------------------------------------------------------------------------------------------------------
def _make_driver(args: argparse.Namespace) -> Any:
    from envs.robot import FrankyDriver, PandaPyDriver, SimDriver

    if args.driver == "sim":
        return SimDriver(args.task, seed=args.seed, image_size=args.image_size)
    if not args.host:
        raise SystemExit(f"--host is required with --driver {args.driver}")
    if args.driver == "franky":
        return FrankyDriver(args.host, dynamics_factor=args.dynamics_factor, realtime=not args.no_realtime)
    return PandaPyDriver(args.host, speed_factor=args.speed_factor)


def _make_camera(args: argparse.Namespace, driver: Any) -> Any:
    from envs.robot import OpenCVCamera, RealSenseCamera, SimDriver

    kind = args.camera or ("sim" if args.driver == "sim" else "realsense")
    if kind == "sim":
        if not isinstance(driver, SimDriver):
            raise SystemExit("--camera sim needs --driver sim")
        return driver
    width, height = args.camera_size
    if kind == "realsense":
        return RealSenseCamera(args.camera_serial, width, height, args.fps)
    source: int | str = int(args.camera_source) if args.camera_source.isdigit() else args.camera_source
    return OpenCVCamera(source, width, height, args.fps)


def load_image(path: Path) -> Any:
    """RGB uint8 ``[H, W, 3]`` from an image file."""
    import numpy as np
    from PIL import Image

    if not path.is_file():
        raise SystemExit(f"image not found: {path}")
    with Image.open(path) as img:
        return np.array(img.convert("RGB"), dtype=np.uint8)


def save_image(image: Any, path: Path) -> Path:
    """Write ``image`` uint8 ``[H, W, 3]`` to ``path`` atomically (temp file, then rename)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        Image.fromarray(image).save(tmp, format=(path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _exit_code(error: BaseException | None) -> int:
    if error is None:
        return 0
    if isinstance(error, KeyboardInterrupt):
        return 130
    if isinstance(error, SystemExit):
        return int(error.code) if isinstance(error.code, int) else 1
    return 1


def _run(args: argparse.Namespace) -> int:
    import time

    import torch

    from envs.robot import SafeDriver, SafetyLimits, SimDriver
    from vjepa2_ac import WorldModel
    from vjepa2_ac.robot_loop import build_agent, run_robot_episode

    if args.steps < 1:
        raise SystemExit(f"--steps must be >= 1, got {args.steps}")
    if args.subgoals and args.goal:
        raise SystemExit("pass either --goal or --subgoals, not both")
    if args.switch_after and not args.subgoals:
        raise SystemExit("--switch-after needs --subgoals")
    limits = SafetyLimits.from_yaml(args.limits) if args.limits else SafetyLimits()
    driver = _make_driver(args)
    camera = _make_camera(args, driver)
    if args.subgoals:
        goal, subgoals = None, [load_image(p) for p in args.subgoals]
    elif args.goal:
        goal, subgoals = load_image(args.goal), None
    elif isinstance(driver, SimDriver) and driver.goal_image is not None:
        if args.task == "pick_place" and driver.subgoal_images:
            goal, subgoals = None, driver.subgoal_images
        else:
            goal, subgoals = driver.goal_image, None
    else:
        raise SystemExit("--goal (or --subgoals) is required with a real robot; capture one with "
                         "`vjepa2-ac robot capture-goal --out goal.png`")
    torch.manual_seed(args.seed)
    world_model = WorldModel.from_pretrained(args.model, device=args.device)
    agent = build_agent(world_model, goal, subgoals=subgoals, switch_after=args.switch_after, planner=args.planner,
                        preset=args.preset, seed=args.seed, samples=args.samples, iterations=args.iterations,
                        horizon=args.horizon)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{args.driver}_{stamp}{'_dryrun' if args.dry_run else ''}"
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / f"{name}.commands.jsonl"
    episode_path = None if args.no_record else args.out / f"{name}.h5"

    def report(step: int, info: dict) -> None:
        print(f"step {step + 1:3d}/{args.steps}  energy {info.get('energy', float('nan')):.4f}  "
              f"plan {info['policy_s'] * 1e3:7.1f} ms  action {[round(float(a), 4) for a in info['action']]}",
              flush=True)

    success = (lambda: bool(driver.last_info.get("is_success"))) if isinstance(driver, SimDriver) else None
    with SafeDriver(driver, limits, camera=camera, dry_run=args.dry_run, log_path=log_path) as robot:
        if args.home:
            robot.home()
        episode = run_robot_episode(robot, agent, steps=args.steps, episode_path=episode_path,
                                    metadata={"command": "vjepa2-ac robot run", "model": str(args.model),
                                              "task": args.task if args.driver == "sim" else ""},
                                    success=success, on_step=report)
    loop = episode.loop
    summary = loop.summary()
    print(f"{loop.steps} steps; loop overhead median {summary.get('overhead_median_ms', float('nan')):.2f} ms; "
          f"planning median {summary.get('policy_median_ms', float('nan')):.1f} ms")
    if episode.path is not None:
        print(f"episode: {episode.path}")
    print(f"command log: {log_path}")
    if loop.error is not None:
        print(f"STOPPED: {loop.stopped_by}")
    return _exit_code(loop.error)


def _capture_goal(args: argparse.Namespace) -> int:
    from envs.robot import SafeDriver, SafetyLimits

    kind = args.camera or ("sim" if args.driver == "sim" else "realsense")
    if kind == "sim" or args.sim_goal:
        if args.driver != "sim":
            raise SystemExit("--camera sim and --sim-goal need --driver sim")
        driver = _make_driver(args)
        if args.sim_goal:
            image = driver.goal_image
            driver.close()
        else:  # read through the safety layer's frame checks, in dry-run (nothing can move)
            with SafeDriver(driver, SafetyLimits(), camera=driver, dry_run=True) as robot:
                image = robot.read_frame().image
    else:  # a real camera needs no robot connection
        camera = _make_camera(args, None)
        with camera:
            for _ in range(max(0, args.warmup)):
                camera.read()
            image = camera.read().image
    path = save_image(image, args.out)
    print(f"saved {image.shape[1]}x{image.shape[0]} goal image to {path}")
    return 0
