"""How precisely does the planner bring the open gripper onto the object, and how precise must it be to grasp?

Pick-and-place's "grasped" goal image shows the gripper at the grasp pose. Each trial puts the open gripper
``--offset`` (a range, metres) off that pose, in a random xy direction and 0-1.5 cm above it, then:

* ``planner`` rows: runs ``--steps`` MPC steps towards the "grasped" image with the planner of the model's first
  pick-and-place phase on that goal (``planning.json``: box constraint, gripper forced open), plus overrides such as
  ``samples=128``, and reports the tool centre point's error to the grasp pose (which moves with the object if it
  was pushed) after each step;
* ``no planning`` rows: leave the gripper where it was put (the error of the start itself).

Then every trial closes the gripper (two steps of dg = +1), lifts 6 cm (two steps) and counts a grasp when the
object is held and lifted >= 5 cm, as the grasp task scores it. ``planner`` vs ``no planning`` at the same offsets
shows whether the planner's final error is small enough; the ``no planning`` rows at several offsets measure the
grasp's tolerance.

    python investigations/grasp_precision.py                         # bundled model, 12 scenes x 3 starts
    python investigations/grasp_precision.py --configs shipped "s128:samples=128" "it10:iterations=10"
    python investigations/grasp_precision.py --model runs/ac/model --object cup
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vjepa2_ac.agent import build_planner, load_world_model, make_env  # noqa: E402

DEFAULT_CONFIGS = ("shipped", "samples=128:samples=128", "iterations=10:iterations=10", "box 3 cm:maxnorm=0.03")
GRASPED = "grasped"  # the goal image of the grasp pose


def grasp_phase(planning, task: str = "pick-place"):
    """The first phase of ``task`` that plans towards the "grasped" image (its planner settings are the ones the
    model uses to bring the open gripper onto the object); ``None`` (the file's planner) if no phase does."""
    return next((ph for ph in planning.task(task).phases if ph.goal == GRASPED), None)


def parse_config(spec: str) -> tuple[str, dict]:
    """``"name:key=value,key=value"`` (values JSON) or ``"shipped"`` -> ``(name, overrides)``."""
    name, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--configs: expected key=value in {spec!r}, got {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return name, overrides


def start_trial(env, rng: np.random.Generator, seed: int, offset: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """Reset to ``seed`` and put the open gripper off the grasp pose; returns the grasp pose (TCP position) and the
    object's start position."""
    base = env.unwrapped
    env.reset(seed=seed)
    pinch, mat, _, obj_pos, obj_quat = base.goal["configs"][base.grasp_subgoal]
    r, angle = rng.uniform(*offset), rng.uniform(0, 2 * np.pi)
    start = pinch + np.array([r * np.cos(angle), r * np.sin(angle), rng.uniform(0.0, 0.015)])
    place_open_gripper(env, start, mat)
    return np.asarray(pinch, float), np.asarray(obj_pos, float).copy()


def place_open_gripper(env, pos: np.ndarray, mat: np.ndarray) -> None:
    """Put the open gripper at ``pos`` / ``mat`` (the object where the reset put it) and let the controller hold it."""
    base = env.unwrapped
    _, _, _, obj_pos, obj_quat = base.goal["configs"][base.grasp_subgoal]
    base.sim.place(pos, mat, 0.0, obj_pos, obj_quat)
    base.sim.settle(0.2)
    base._cmd_pos, base._cmd_mat = base.sim.ee_pose()  # the controller holds the placed pose
    base._cmd_g = 0.0


def tcp_error(env, pinch: np.ndarray, obj0: np.ndarray) -> np.ndarray:
    """TCP minus the grasp pose, which moves with the object ``[3]``."""
    base = env.unwrapped
    return base.sim.ee_pose()[0] - (pinch + base.sim.object_pose()[0] - obj0)


def close_and_lift(env) -> bool:
    """Two closing steps, two 3 cm lifting steps; True when the object is held >= 5 cm above its rest height."""
    base = env.unwrapped
    for action in ([0, 0, 0, 0, 0, 0, 1.0],) * 2 + ([0, 0, 0.03, 0, 0, 0, 0.0],) * 2:
        env.step(np.asarray(action, np.float32))
    return bool(base.sim.object_pose()[0][2] - base.sim.object_rest_z >= 0.05 and base.sim.object_grasped())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vjepa2-ac-sim-small", help="bundled name or model directory")
    p.add_argument("--object", default="cube", choices=("cube", "cup"))
    p.add_argument("--scenes", type=int, default=12, help="pick-and-place scenes (env seeds from --seed)")
    p.add_argument("--starts", type=int, default=3, help="starts per scene")
    p.add_argument("--seed", type=int, default=3000, help="first env seed (away from training and eval seeds)")
    p.add_argument("--steps", type=int, default=4, help="MPC steps towards the \"grasped\" goal image")
    p.add_argument("--offset", type=float, nargs=2, default=(0.015, 0.03), metavar=("MIN", "MAX"),
                   help="xy distance of the start from the grasp pose (m)")
    p.add_argument("--tolerance", type=float, nargs="*", default=(0.0, 0.01, 0.02, 0.03),
                   help="'no planning' rows: starts this far (m) off the grasp pose (xy)")
    p.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS),
                   help="planner rows: 'shipped' or 'name:key=value,...' overrides of the grasp phase's settings")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.scenes < 1 or args.starts < 1 or args.steps < 1:
        p.error("--scenes, --starts and --steps must be >= 1")
    if not 0 <= args.offset[0] <= args.offset[1]:
        p.error("--offset: expected 0 <= MIN <= MAX")
    torch.set_num_threads(args.threads)
    wm, planning, desc = load_world_model(args.model)
    env = make_env(planning, "pick-place", object=args.object, max_steps=10_000)
    phase = grasp_phase(planning)
    trials = [(seed, k) for seed in range(args.seed, args.seed + args.scenes) for k in range(args.starts)]
    print(f"world model: {desc}; {args.object}, {len(trials)} starts ({args.scenes} scenes from seed {args.seed}); "
          f"planner rows start {args.offset[0] * 100:g}-{args.offset[1] * 100:g} cm off the grasp pose and plan "
          f"{args.steps} steps towards the \"{GRASPED}\" goal image\n")
    print("| row | TCP error by step (cm, mean) | final xy / z error (cm, mean) | final error < 1.5 cm | object pushed "
          "> 1 cm | grasped and lifted | s per step |")
    print("|---|---|---|---|---|---|---|")
    with torch.no_grad():
        for spec in args.configs:
            name, overrides = parse_config(spec)
            errors, pushed, grasped, t0 = [], 0, 0, time.perf_counter()
            for i, (seed, k) in enumerate(trials):
                rng = np.random.default_rng([seed, k])
                pinch, obj0 = start_trial(env, rng, seed, tuple(args.offset))
                base = env.unwrapped
                grasp = base.grasp_subgoal  # the "grasped" goal's config (after the pre-grasp one, if any)
                z_goal = wm.encode(base.render_configuration(*base.goal["configs"][grasp])[None, None])
                planner = build_planner(planning, phase, **overrides)
                row = [tcp_error(env, pinch, obj0)]
                for step in range(args.steps):
                    obs = base._obs()
                    z0 = wm.encode(obs["pixels"][None, None])
                    s0 = torch.as_tensor(obs["agent_pos"])[None, None]
                    plan = planner.plan(wm, z0, s0, z_goal, generator=torch.Generator().manual_seed(i * 100 + step))
                    env.step(plan.actions[0].float().cpu().numpy())
                    row.append(tcp_error(env, pinch, obj0))
                errors.append(row)
                pushed += np.linalg.norm(base.sim.object_pose()[0][:2] - obj0[:2]) > 0.01
                grasped += close_and_lift(env)
            per_step = (time.perf_counter() - t0) / (len(trials) * args.steps)
            print_row(f"planner: {name}", np.array(errors), pushed, grasped, len(trials), f"{per_step:.2f}")
        for r in args.tolerance:
            errors, pushed, grasped = [], 0, 0
            for seed, k in trials:
                pinch, obj0 = start_trial(env, np.random.default_rng([seed, k, 1]), seed, (r, r))
                errors.append([tcp_error(env, pinch, obj0)])
                grasped += close_and_lift(env)
            print_row(f"no planning, {r * 100:g} cm off", np.array(errors), pushed, grasped, len(trials), "")
    env.close()


def print_row(name: str, errors: np.ndarray, pushed: int, grasped: int, n: int, seconds: str) -> None:
    """``errors [trials, steps + 1, 3]`` (m)."""
    dist = np.linalg.norm(errors, axis=-1) * 100
    final = errors[:, -1] * 100
    print(f"| {name} | {' '.join(f'{x:.2f}' for x in dist.mean(0))} | "
          f"{np.linalg.norm(final[:, :2], axis=1).mean():.2f} / {final[:, 2].mean():+.2f} | "
          f"{np.mean(dist[:, -1] < 1.5):.2f} | {pushed}/{n} | {grasped}/{n} | {seconds} |")


if __name__ == "__main__":
    main()
