"""How well does a model's encoder energy see the arm and the object? Rendered configurations only (no predictor).

All energies are the planners' L1 latent energy to a goal image, with the model's own camera and image size
(``planning.json``); every configuration is rendered kinematically (physics untouched) and encoded.

* **arm**: per reach episode, ``--samples`` random gripper positions in the reach goal box; Spearman rank
  correlation of the energy with the distance to the goal position (1 = the energy orders positions by distance).
* **object**: per pick-and-place episode, the arm at home and the object moved to ``--samples`` random table
  positions within 15 cm; rank correlation of the energy (goal: object at its start) with the object's displacement,
  and the energy of a 15 cm object displacement as a multiple of that of a 2 cm arm displacement (the
  figure of our probe of an untrained encoder's landscape, which scores < 0.5).
* **grasp**: per grasp episode (goal: object held 12 cm up), the energy of "arm at the goal pose, gripper closed,
  object left on the table" (where a planner that ignores the object ends) and of "gripper closed around the object
  on the table" (the step a grasp passes through), each as a multiple of the energy of a 2 cm arm error while
  holding the object. A missing object that costs less than a 2 cm arm error is nearly invisible to the planner.
  A one-step (horizon 1) planner descends to the object only if "closed at object" costs less than "left behind".
* **grasp path**: the scripted expert's grasp episode (approach, descend, close, lift), its real frames encoded:
  the largest rise of the energy to the grasp goal along the way (over the lowest energy before it), as a fraction
  of the start frame's energy. 0: every step of the expert's path lowers the energy (a greedy planner can follow
  it); large: the path crosses a ridge that a horizon-1 planner does not climb.

    python benchmarks/bench_encoder_probe.py                       # bundled model
    python benchmarks/bench_encoder_probe.py --model runs/ac/model --episodes 12 --seed 3000
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

import envs  # noqa: E402  (registers the ids)
from envs.franka_env import LIFT_HEIGHT, REACH_GOAL_BOX  # noqa: E402
from vjepa2_ac.agent import load_world_model  # noqa: E402

AXES = np.concatenate([np.eye(3), -np.eye(3)])  # the six unit moves of a "2 cm arm error"


def energies(wm, frames: list[np.ndarray], z_goal: torch.Tensor) -> np.ndarray:
    """``[len(frames)]`` L1 energies of rendered frames to an encoded goal ``[1, 1, N, D]``."""
    z = wm.encode(np.stack(frames)[:, None])  # [K, 1, N, D]
    return wm.energy(z, z_goal).numpy()


def arm_probe(wm, env, seed: int, samples: int, rng: np.random.Generator) -> dict[str, float]:
    """Rank correlation of the energy with the gripper's distance to a reach goal."""
    _, info = env.reset(seed=seed)
    base = env.unwrapped
    _, mat = base.get_ee_pose()
    pos = rng.uniform(*REACH_GOAL_BOX, (samples, 3))
    e = energies(wm, [base.render_configuration(p, mat) for p in pos], wm.encode(info["goals"]["final"][None]))
    return {"arm rho": spearmanr(e, np.linalg.norm(pos - base.goal["position"], axis=1))[0]}


def object_probe(wm, env, seed: int, samples: int, rng: np.random.Generator) -> dict[str, float]:
    """Energy vs the object's displacement on the table (arm at home), and its weight against the arm's."""
    env.reset(seed=seed)
    base = env.unwrapped
    ee, mat = base.get_ee_pose()
    obj, quat = base.sim.object_pose()
    goal = wm.encode(base.render_configuration(ee, mat, 0.0, obj, quat)[None])
    angle = rng.uniform(0, 2 * np.pi, samples)
    radius = rng.uniform(0.0, 0.15, samples)
    moved = obj + np.stack([radius * np.cos(angle), radius * np.sin(angle), 0 * radius], axis=1)
    e = energies(wm, [base.render_configuration(ee, mat, 0.0, p, quat) for p in moved], goal)
    ring = [obj + 0.15 * np.array([np.cos(a), np.sin(a), 0.0]) for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)]
    arm = [ee + 0.02 * d for d in AXES]
    e_obj = energies(wm, [base.render_configuration(ee, mat, 0.0, p, quat) for p in ring], goal).mean()
    e_arm = energies(wm, [base.render_configuration(p, mat, 0.0, obj, quat) for p in arm], goal).mean()
    return {"object rho": spearmanr(e, radius)[0], "object 15 cm / arm 2 cm": float(e_obj / e_arm)}


def grasp_probe(wm, env, seed: int) -> dict[str, float]:
    """Energy to the grasp goal (object held up) of 'arm at the goal pose, object left on the table' against a 2 cm
    arm error while holding the object, and of 'closed around the object on the table' (the step a grasp needs)."""
    _, info = env.reset(seed=seed)
    base = env.unwrapped
    goal_pos, goal_mat, hold, held_pos, held_quat = base.goal["configs"][-1]
    obj, quat = base.sim.object_pose()
    frames = [base.render_configuration(goal_pos, goal_mat, hold, obj, quat),
              base.render_configuration(goal_pos - [0.0, 0.0, LIFT_HEIGHT], goal_mat, hold, obj, quat)]
    frames += [base.render_configuration(goal_pos + 0.02 * d, goal_mat, hold, held_pos + 0.02 * d, held_quat)
               for d in AXES]
    e = energies(wm, frames, wm.encode(info["goals"]["final"][None]))
    return {"grasp: object left behind / arm 2 cm": float(e[0] / e[2:].mean()),
            "grasp: closed at object / arm 2 cm": float(e[1] / e[2:].mean())}


def grasp_path_probe(wm, env, seed: int) -> dict[str, float]:
    """Largest energy rise to the grasp goal along the scripted expert's grasp episode, over the start energy."""
    obs, info = env.reset(seed=seed)
    expert, frames = envs.scripted_expert(env), [obs["pixels"]]
    for _ in range(env.spec.max_episode_steps):
        obs, _, terminated, truncated, _ = env.step(expert(obs))
        frames.append(obs["pixels"])
        if terminated or truncated:
            break
    e = energies(wm, frames, wm.encode(info["goals"]["final"][None]))
    return {"grasp path: largest rise / start energy": float((e - np.minimum.accumulate(e)).max() / e[0])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vjepa2-ac-sim-small", help="bundled name or model directory")
    p.add_argument("--episodes", type=int, default=12)
    p.add_argument("--samples", type=int, default=40, help="configurations per episode (arm and object probes)")
    p.add_argument("--seed", type=int, default=3000, help="episode i uses env seed seed + i")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.episodes < 1 or args.samples < 3:
        p.error("--episodes must be >= 1 and --samples >= 3")
    torch.set_num_threads(args.threads)
    wm, planning, desc = load_world_model(args.model)
    rng = np.random.default_rng(args.seed)
    rows: dict[str, list[float]] = {}
    make = {t: gymnasium.make(planning.env_id(t), **planning.env_kwargs_for(t, object="cube"))
            for t in ("reach", "pick-place", "grasp")}
    with torch.no_grad():
        for seed in range(args.seed, args.seed + args.episodes):
            for row in (arm_probe(wm, make["reach"], seed, args.samples, rng),
                        object_probe(wm, make["pick-place"], seed, args.samples, rng),
                        grasp_probe(wm, make["grasp"], seed), grasp_path_probe(wm, make["grasp"], seed)):
                for k, v in row.items():
                    rows.setdefault(k, []).append(v)
    for env in make.values():
        env.close()
    print(f"world model: {desc}; camera {planning.camera!r}; {args.episodes} episodes from seed {args.seed}\n")
    print("| quantity | mean | sd |\n|---|---|---|")
    for key, v in rows.items():
        print(f"| {key} | {np.mean(v):.4f} | {np.std(v):.4f} |")


if __name__ == "__main__":
    main()
