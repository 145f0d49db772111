"""``vjepa2-ac robot``: run the V-JEPA 2-AC planner on a robot (``run``) or save a goal image (``capture-goal``).

    vjepa2-ac robot run --driver franky --host 172.16.0.2 --camera realsense --model DIR --goal goal.png
    vjepa2-ac robot run --driver franky --host ... --task pick-place --goal grasped=a.png lifted=b.png placed=c.png
    vjepa2-ac robot run --driver sim --model vjepa2-ac-sim-small --task pick-place   # SimDriver; the task's goals
    vjepa2-ac robot capture-goal --camera realsense --out goal.png

``run`` plans with the model's ``planning.json`` (as ``eval`` and ``demo`` do, through the one agent builder;
``--planning`` names another file, or ``none`` for the built-in defaults): the phases of ``--task`` (which goal image
each plans to, for how many steps, the gripper rule) and, with ``--driver sim``, its camera view and image size.
``--goal`` gives the goal images by name (``NAME=IMAGE``; a bare ``IMAGE`` is the task's ``final`` goal); every
goal the task's phases name must be given. ``--planner``, ``--preset``, ``--samples``, ``--iterations``,
``--horizon`` and ``--steps`` override the file.

Every command goes through ``envs.robot.SafeDriver`` (``--limits`` YAML, default ``limits_default.yaml``);
``--dry-run`` plans, checks and logs every command but moves nothing. Each run is recorded as an episode
(``--out``) next to its JSON-lines command log. Exit codes: 0 done, 1 stopped by a fault, 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vjepa2_ac.commands.common import TASK_CHOICES, check_output_dir

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
    p.add_argument("--task", default="reach", choices=TASK_CHOICES,
                   help="the sim scene, and the task's phases in the planning config (default: %(default)s)")
    p.add_argument("--object", default="cube", help="sim object: cube | cup")
    p.add_argument("--seed", type=int, default=0, help="sim scene seed and planner seed")
    p.add_argument("--image-size", type=int, help="sim camera image size (pixels; default: the planning config's "
                   "with run, 256 with capture-goal)")
    p.add_argument("--sim-view", help="sim camera view, e.g. dual, exterior_1 (default: the planning config's with "
                   "run, exterior_1 with capture-goal)")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="robot_command", metavar="{run,capture-goal}", required=True)
    run_p = sub.add_parser("run", help="closed-loop planning on a robot through the safety layer",
                           description="Closed-loop V-JEPA 2-AC planning on a robot through the safety layer.")
    _add_source_args(run_p)
    run_p.add_argument("--model", required=True, help="world model: directory, bundled name or hub repo id")
    run_p.add_argument("--device", default="cpu", help="torch device for the world model (cpu, cuda, ...)")
    run_p.add_argument("--goal", nargs="+", metavar="[NAME=]IMAGE",
                       help="goal images (PNG/JPEG) by name, e.g. final=goal.png or grasped=a.png lifted=b.png; a "
                            "bare IMAGE is the final goal (default with --driver sim: the task's own renders)")
    run_p.add_argument("--planning", help="planning.json (file or directory) giving the planner and the --task "
                       "settings; 'none': built-in defaults (default: the model's own planning.json)")
    run_p.add_argument("--steps", type=int, help="number of actions to execute (default: the task's max_steps in "
                       "the planning config)")
    run_p.add_argument("--planner", choices=("cem", "mppi", "icem"), help="planner (default: the planning config's)")
    run_p.add_argument("--preset", choices=("paper", "official"), help="CEM preset (default: the planning config's)")
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
# --driver / --camera -> (module, pip extra, package) of the optional backend it needs
_BACKEND_PACKAGES = {"franky": ("franky", "franky", "franky-control"), "panda-py": ("panda_py", "panda-py",
                                                                                   "panda-python"),
                     "realsense": ("pyrealsense2", "realsense", "pyrealsense2"),
                     "opencv": ("cv2", "opencv", "opencv-python-headless")}


def _check_backends(args: argparse.Namespace) -> None:
    """One line naming the pip extra when the driver's or camera's package is missing."""
    from envs.robot.driver import import_optional

    camera = args.camera or ("sim" if args.driver == "sim" else "realsense")
    for option, name in (("--driver", args.driver), ("--camera", camera)):
        if name in _BACKEND_PACKAGES:
            try:
                import_optional(*_BACKEND_PACKAGES[name])
            except ImportError as err:
                raise SystemExit(f"{option} {name}: {err}") from None


def _make_driver(args: argparse.Namespace, planning: Any = None) -> Any:
    """The robot backend; ``--driver sim`` renders the planning config's view and size (``--sim-view`` /
    ``--image-size`` win), or the env defaults without one. ``_run`` has checked ``--host`` (before loading the
    model); ``capture-goal`` builds only the sim driver."""
    from envs.robot import FrankyDriver, PandaPyDriver, SimDriver

    if args.driver == "sim":
        task = args.task
        kwargs = planning.env_kwargs_for(task, object=args.object) if planning is not None else {
            "object": args.object}
        if args.image_size is not None:
            kwargs["image_size"] = (args.image_size, args.image_size)
        if args.sim_view is not None:
            kwargs["camera"] = args.sim_view
        try:
            return SimDriver(task, seed=args.seed, **kwargs)
        except ValueError as err:
            raise SystemExit(f"--driver sim: {err}") from None
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
        raise SystemExit(f"--goal: image not found: {path}")
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"), dtype=np.uint8)
    except OSError as err:  # not an image (PIL.UnidentifiedImageError), or unreadable
        raise SystemExit(f"--goal: cannot read {path} as an image: {err}") from None


def load_goals(specs: list[str]) -> dict[str, Any]:
    """``--goal`` values (``NAME=IMAGE`` or a bare ``IMAGE`` for ``final``) -> goal images by name."""
    goals: dict[str, Any] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name, path = (name, path) if sep else ("final", spec)
        if not name or name in goals:
            raise SystemExit(f"--goal: {'an empty name' if not name else f'goal {name!r} given twice'} in {spec!r}")
        goals[name] = load_image(Path(path))
    return goals


def save_image(image: Any, path: Path) -> Path:
    """Write ``image`` uint8 ``[H, W, 3]`` to ``path`` atomically (temp file, then rename)."""
    from PIL import Image

    from vjepa2_ac.atomic import atomic_path

    suffix = path.suffix or ".png"
    with atomic_path(path, suffix=suffix) as tmp:
        Image.fromarray(image).save(tmp, format=suffix.lstrip(".").upper().replace("JPG", "JPEG"))
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
    from vjepa2_ac.agent import build_agent, run_robot_episode
    from vjepa2_ac.model.world_model import resolve_model_dir

    if args.steps is not None and args.steps < 1:
        raise SystemExit(f"--steps must be >= 1, got {args.steps}")
    if args.driver != "sim" and not args.host:
        raise SystemExit(f"--host is required with --driver {args.driver}")
    task = args.task
    try:
        limits = SafetyLimits.from_yaml(args.limits) if args.limits else SafetyLimits()
    except (OSError, ValueError) as err:
        raise SystemExit(f"--limits: {err}") from None
    try:
        model_dir = resolve_model_dir(args.model)
    except OSError as err:
        raise SystemExit(f"--model: {err}") from None
    planning = _load_planning(args.planning, model_dir)
    if args.preset is not None:
        planning.planner.preset = args.preset
    steps = args.steps if args.steps is not None else planning.task(task).max_steps
    goals = load_goals(args.goal) if args.goal else None
    if goals is None and args.driver != "sim":
        raise SystemExit("--goal is required with a real robot; capture one with "
                         "`vjepa2-ac robot capture-goal --out goal.png`")
    _check_backends(args)  # a missing franky / panda-py / camera package, before the model loads
    check_output_dir(args.out)
    torch.manual_seed(args.seed)
    from vjepa2_ac.agent.loading import check_device
    from vjepa2_ac.model.checkpoint import CheckpointError

    try:
        check_device(args.device)
        world_model = WorldModel.from_pretrained(model_dir, device=args.device)  # before connecting to the robot
    except (OSError, CheckpointError, ValueError) as err:  # a corrupted file (NaN weights) never reaches the arm
        raise SystemExit(f"--model: {err}") from None
    driver = _make_driver(args, planning)
    camera = None
    try:
        camera = _make_camera(args, driver)
        if goals is None:  # the sim task's own goal renders
            goals = driver.goal_images
        try:
            agent = build_agent(world_model, planning, task, goals, planner=args.planner, seed=args.seed,
                                samples=args.samples, iterations=args.iterations, horizon=args.horizon)
        except ValueError as err:
            raise SystemExit(f"robot run: {err}") from None
    except BaseException:
        for part in {id(x): x for x in (camera, driver) if x is not None}.values():
            part.close()
        raise
    phases = ", ".join(f"{ph.name} ({ph.steps or 'rest'})" for ph in agent.phases)
    print(f"planning: {planning.source or 'built-in defaults'} (task {task}, {steps} steps; phases {phases})",
          flush=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{args.driver}_{stamp}{'_dryrun' if args.dry_run else ''}"
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / f"{name}.commands.jsonl"
    episode_path = None if args.no_record else args.out / f"{name}.h5"

    def report(step: int, info: dict) -> None:
        print(f"step {step + 1:3d}/{steps}  energy {info.get('energy', float('nan')):.4f}  "
              f"plan {info['policy_s'] * 1e3:7.1f} ms  action {[round(float(a), 4) for a in info['action']]}",
              flush=True)

    success = (lambda: bool(driver.last_info.get("is_success"))) if isinstance(driver, SimDriver) else None
    done = None
    if success is not None and planning.stop_on_success and not args.dry_run:
        done = lambda step, state: success()  # noqa: E731  (the sim task reports success: stop there)
    with SafeDriver(driver, limits, camera=camera, dry_run=args.dry_run, log_path=log_path) as robot:
        if args.home:
            robot.home()
        episode = run_robot_episode(robot, agent, steps=steps, episode_path=episode_path,
                                    metadata={"command": "vjepa2-ac robot run", "model": str(args.model),
                                              "task": task, "planning": planning.source or ""},
                                    success=success, done=done, on_step=report)
    loop = episode.loop
    summary = loop.summary()
    print(f"{loop.steps} steps; loop overhead median {summary.get('overhead_median_ms', float('nan')):.2f} ms; "
          f"planning median {summary.get('policy_median_ms', float('nan')):.1f} ms")
    if episode.path is not None:
        print(f"episode: {episode.path}")
    print(f"command log: {log_path}")
    if success is not None and loop.error is None:
        print("success" if success() else "not successful", f"after {loop.steps} steps")
    if loop.error is not None:
        print(f"STOPPED: {loop.stopped_by}")
    return _exit_code(loop.error)


def _load_planning(spec: str | None, model_dir: Path) -> Any:
    """``--planning``: a file or directory, ``none`` (built-in defaults), or ``None`` (the model's own)."""
    from vjepa2_ac.agent import PlanningConfig

    try:
        if spec is not None and spec.lower() == "none":
            return PlanningConfig()
        return PlanningConfig.load(model_dir if spec is None else spec)
    except (OSError, ValueError) as err:
        raise SystemExit(f"--planning: {err}") from None


def _capture_goal(args: argparse.Namespace) -> int:
    if args.warmup < 0:
        raise SystemExit(f"--warmup must be >= 0 (frames to skip), got {args.warmup}")
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
            for _ in range(args.warmup):
                camera.read()
            image = camera.read().image
    path = save_image(image, args.out)
    print(f"saved {image.shape[1]}x{image.shape[0]} goal image to {path}")
    return 0
