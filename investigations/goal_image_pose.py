"""Where is the encoder's energy lowest for a "grasped" goal image, and does the goal image's gripper pose move it?

The planner moves the tool centre point in xyz only, so on the way to the object the gripper keeps its home
orientation (and, in a phase with ``"gripper": "open"``, stays open). The env can render pick-and-place's "grasped"
goal image with the gripper turned to the object's faces and closed, as the scripted expert grasps
(``goal_gripper_yaw="object"``, ``grasp_goal_gripper="closed"``, the env defaults), or in the pose the planner can
reach (``"home"`` / ``"open"``).

For each scene (a pick-and-place reset) this renders the open, home-oriented gripper over an xyz grid around the grasp
pose (``--grid`` cm per axis in xy, three heights from the grasp pose up), encodes every frame with the model's
encoder (no predictor) and, for each goal-image variant, reports how far (xy) from the grasp pose the energy is
lowest, split by the object's yaw (the cube's yaw relative to the home gripper, 0-45 deg). It then closes the gripper
at the grasp pose, home-oriented and object-aligned, and counts the grasps (two closing steps, lift 6 cm).

    python investigations/goal_image_pose.py                  # bundled model, 24 scenes from seed 3000
    python investigations/goal_image_pose.py --model runs/ac/model --scenes 50
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from grasp_precision import close_and_lift, place_open_gripper  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from vjepa2_ac.agent import load_world_model, make_env  # noqa: E402

# name -> (goal_gripper_yaw, grasp_goal_gripper)
VARIANTS = {
    "object yaw, closed (env default)": ("object", "closed"),
    "object yaw, open": ("object", "open"),
    "home yaw, closed": ("home", "closed"),
    "home yaw, open": ("home", "open"),
}


def relative_yaw_deg(object_quat: np.ndarray, symmetry: float = np.pi / 2) -> float:
    """|yaw| of the object modulo its symmetry, in [0, symmetry / 2] (deg)."""
    yaw = Rotation.from_quat(object_quat, scalar_first=True).as_euler("xyz")[2]
    return float(abs(np.degrees((yaw + symmetry / 2) % symmetry - symmetry / 2)))


def grid_offsets(step_cm: float, reach_cm: float) -> np.ndarray:
    """xy grid of ``+-reach_cm`` in ``step_cm`` steps at 0, 1 and 2 cm above the grasp pose ``[K, 3]`` (m)."""
    g = np.arange(-reach_cm, reach_cm + 1e-9, step_cm) / 100
    return np.array([[x, y, z] for x in g for y in g for z in (0.0, 0.01, 0.02)])


def static_grasp(env, seed: int, mat: np.ndarray) -> bool:
    """Reset to ``seed``, put the open gripper at the grasp pose with orientation ``mat``, close and lift."""
    env.reset(seed=seed)
    base = env.unwrapped
    place_open_gripper(env, base.goal["configs"][base.grasp_subgoal][0], mat)
    return close_and_lift(env)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vjepa2-ac-sim-small", help="bundled name or model directory")
    p.add_argument("--object", default="cube", choices=("cube", "cup"))
    p.add_argument("--scenes", type=int, default=24, help="pick-and-place scenes (env seeds from --seed)")
    p.add_argument("--seed", type=int, default=3000, help="first env seed (away from training and eval seeds)")
    p.add_argument("--grid", type=float, default=1.0, help="grid step (cm)")
    p.add_argument("--reach", type=float, default=4.0, help="grid half-width in x and y (cm)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.scenes < 1 or args.grid <= 0 or args.reach < 0:
        p.error("--scenes must be >= 1, --grid > 0 and --reach >= 0")
    torch.set_num_threads(args.threads)
    wm, planning, desc = load_world_model(args.model)
    env = make_env(planning, "pick-place", object=args.object, max_steps=10_000)
    base = env.unwrapped
    offsets = grid_offsets(args.grid, args.reach)
    argmin = {name: [] for name in VARIANTS}
    yaws, grasped_home, grasped_aligned = [], 0, 0
    with torch.no_grad():
        for seed in range(args.seed, args.seed + args.scenes):
            env.reset(seed=seed)
            pinch, _, _, obj_pos, obj_quat = base.goal["configs"][base.grasp_subgoal]
            hold = base.goal["hold_closedness"]
            home, aligned = base._home_mat, base._grasp_mat(obj_quat)
            yaws.append(relative_yaw_deg(obj_quat) if args.object == "cube" else 0.0)  # the cup is round
            frames = np.stack([base.render_configuration(pinch + o, home, 0.0, obj_pos, obj_quat) for o in offsets])
            z = torch.cat([wm.encode(frames[i:i + 64][:, None]) for i in range(0, len(frames), 64)])
            for name, (yaw, gripper) in VARIANTS.items():
                goal = base.render_configuration(pinch, aligned if yaw == "object" else home,
                                                 hold if gripper == "closed" else 0.0, obj_pos, obj_quat)
                energy = wm.energy(z, wm.encode(goal[None, None])).reshape(-1)
                argmin[name].append(np.linalg.norm(offsets[int(energy.argmin())][:2]) * 100)
            grasped_home += static_grasp(env, seed, home)
            grasped_aligned += static_grasp(env, seed, aligned)
    env.close()
    yaws = np.array(yaws)
    high = yaws >= 22.5
    n = len(yaws)
    print(f"world model: {desc}; {args.object}, {n} scenes from seed {args.seed}; open home-oriented gripper over "
          f"{len(offsets)} poses ({args.grid:g} cm grid, +-{args.reach:g} cm, 0-2 cm up); object yaw >= 22.5 deg in "
          f"{int(high.sum())} scenes\n")
    print("| goal image (gripper) | energy's minimum, xy from the grasp pose (cm, mean) | yaw < 22.5 deg | "
          "yaw >= 22.5 deg | scenes with the minimum off the grasp pose |")
    print("|---|---|---|---|---|")
    for name, dist in argmin.items():
        d = np.array(dist)
        lo = f"{d[~high].mean():.2f}" if (~high).any() else "-"
        hi = f"{d[high].mean():.2f}" if high.any() else "-"
        print(f"| {name} | {d.mean():.2f} | {lo} | {hi} | {int((d > 0).sum())}/{n} |")
    print(f"\nstatic close at the grasp pose: home-oriented {grasped_home}/{n}, turned to the object "
          f"{grasped_aligned}/{n}")


if __name__ == "__main__":
    main()
