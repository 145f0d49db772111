"""Which part limits reaching: the encoder's latent cost or the predictor? Greedy reach with three scorers.

Every step, the arm may move to one of 27 candidates: the current position plus ``{-s, 0, +s}`` on each axis
(``--move s``; the zero move lets it stay). The candidate with the lowest score is executed in the env. Scores:

* ``distance``  -- true distance of the candidate to the goal position (sanity: the candidate set can reach).
* ``encoder``   -- *perfect-predictor oracle*: the candidate configuration is rendered (kinematically, the physics
  state untouched) and encoded; score = its latent L1 energy to the goal image. The best a horizon-1 planner can do
  with this encoder.
* ``predictor`` -- the world model's rollout of the 27 actions from the current frame (what the planners use).

"reached" counts episodes that came within 5 cm of the goal at some step (what ``vjepa2-ac eval`` scores: it stops
an episode at success); "at the end" those still within 5 cm after the last step. Same seeds, candidates and steps
for every scorer: ``encoder`` vs ``distance`` measures the encoder's cost, ``predictor`` vs ``encoder`` the
predictor's.

``--ranking`` instead scores the 27 candidates once, at each episode's start state, with all three scorers and
reports how the predictor's energies compare with the real (rendered) ones: rank correlation, bias (predicted minus
real energy, for the moves and for staying put: a negative bias on the moves makes any move look better than
staying) and regret (how much farther from the goal the lowest-energy candidate is than the best one).

    python investigations/reach_oracle.py                           # bundled model, 10 episodes each
    python investigations/reach_oracle.py --model runs/ac/model --scorers predictor --episodes 20
    python investigations/reach_oracle.py --ranking --episodes 24 --seed 2000
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import envs  # noqa: E402,F401  (registers the ids)
from vjepa2_ac.agent import load_world_model  # noqa: E402
from vjepa2_ac.eval import task_distance  # noqa: E402

SCORERS = ("distance", "encoder", "predictor")


def candidate_moves(move: float) -> np.ndarray:
    """``[27, 7]`` actions: xyz in ``{-move, 0, move}^3``, rotation and gripper deltas 0."""
    xyz = np.array(list(itertools.product((-move, 0.0, move), repeat=3)), np.float32)
    return np.concatenate([xyz, np.zeros((len(xyz), 4), np.float32)], axis=1)


def score(scorer: str, wm, env, obs, z_goal: torch.Tensor, moves: np.ndarray) -> np.ndarray:
    """Scores ``[27]`` of the candidate moves from the env's current state (lower is better)."""
    base = env.unwrapped
    pos, mat = base.get_ee_pose()
    if scorer == "distance":
        return np.linalg.norm(pos + moves[:, :3] - base.goal["position"], axis=1)
    if scorer == "encoder":
        closed = base.sim.gripper_closedness()
        frames = np.stack([base.render_configuration(pos + m[:3], mat, closed) for m in moves])
        z = wm.encode(frames[:, None])  # [27, 1, N, D]
        return wm.energy(z, z_goal).numpy()
    z0 = wm.encode(obs["pixels"][None])  # [1, 1, N, D]
    s0 = torch.as_tensor(obs["agent_pos"]).float()[None, None].expand(len(moves), 1, 7)
    z_pred, _ = wm.rollout(z0.expand(len(moves), -1, -1, -1), s0, torch.as_tensor(moves)[:, None])
    return wm.energy(z_pred, z_goal).numpy()


def ranking_row(wm, env, obs, z_goal: torch.Tensor, moves: np.ndarray) -> dict[str, float]:
    """Predicted vs real (rendered) energies of the candidates from the current state: one row of ``--ranking``."""
    from scipy.stats import spearmanr

    dist, real, pred = (score(s, wm, env, obs, z_goal, moves) for s in SCORERS)
    still = ~moves[:, :3].any(axis=1)
    return {"rho pred-real": spearmanr(pred, real)[0], "rho real-distance": spearmanr(real, dist)[0],
            "rho pred-distance": spearmanr(pred, dist)[0],
            "bias moves": float((pred - real)[~still].mean()), "bias stay": float((pred - real)[still].mean()),
            "regret real (cm)": 100 * (dist[np.argmin(real)] - dist.min()),
            "regret pred (cm)": 100 * (dist[np.argmin(pred)] - dist.min())}


def print_ranking(wm, env, moves: np.ndarray, seeds: range) -> None:
    """``--ranking``: mean (and sd) of :func:`ranking_row` over the start states of ``seeds``."""
    rows = []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        rows.append(ranking_row(wm, env, obs, wm.encode(info["goals"]["final"][None]), moves))
    print("| quantity | mean | sd |\n|---|---|---|")
    for key in rows[0]:
        v = np.array([r[key] for r in rows])
        print(f"| {key} | {v.mean():+.4f} | {v.std():.4f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vjepa2-ac-sim-small", help="bundled name or model directory")
    p.add_argument("--scorers", nargs="+", default=list(SCORERS), choices=SCORERS)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1000, help="episode i uses env seed seed + i")
    p.add_argument("--steps", type=int, default=20, help="actions per episode")
    p.add_argument("--move", type=float, default=0.04, help="per-axis move of the candidates (m)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ranking", action="store_true", help="compare predicted and real energies at the start states")
    args = p.parse_args()
    if args.episodes < 1 or args.steps < 1 or not args.move > 0:
        p.error("--episodes and --steps must be >= 1 and --move > 0")
    torch.set_num_threads(args.threads)
    wm, planning, desc = load_world_model(args.model)
    env = gymnasium.make(planning.env_id("reach"), **planning.env_kwargs_for("reach", object="cube"))
    moves = candidate_moves(args.move)
    if args.ranking:
        print(f"world model: {desc}; predicted vs real energies of 27 moves of {args.move * 100:.0f} cm per axis at "
              f"the start states of {args.episodes} reach episodes from seed {args.seed}\n")
        with torch.no_grad():
            print_ranking(wm, env, moves, range(args.seed, args.seed + args.episodes))
        env.close()
        return
    success_distance = env.unwrapped.cfg.success_threshold  # `eval` stops an episode once it is reached
    print(f"world model: {desc}; greedy reach over 27 moves of {args.move * 100:.0f} cm per axis, {args.steps} "
          f"steps, {args.episodes} episodes from seed {args.seed}\n")
    cm = f"{100 * success_distance:g} cm"
    print(f"| scorer | reached (< {cm} at some step) | within {cm} at the end | mean start / final / best distance "
          "(cm) | s per step |")
    print("|---|---|---|---|---|")
    with torch.no_grad():
        for scorer in args.scorers:
            start, final, best, t0 = [], [], [], time.perf_counter()
            for seed in range(args.seed, args.seed + args.episodes):
                obs, info = env.reset(seed=seed)
                z_goal = wm.encode(info["goals"]["final"][None])
                start.append(task_distance(env, "reach"))
                dists = []
                for _ in range(args.steps):
                    s = score(scorer, wm, env, obs, z_goal, moves)
                    obs, _, _, _, info = env.step(moves[int(np.argmin(s))])
                    dists.append(task_distance(env, "reach"))
                final.append(dists[-1])
                best.append(min(dists))
            per_step = (time.perf_counter() - t0) / (args.episodes * args.steps)
            reached, at_end = (int((np.array(d) < success_distance).sum()) for d in (best, final))
            print(f"| {scorer} | {reached}/{args.episodes} | {at_end}/{args.episodes} | {100 * np.mean(start):.1f} / "
                  f"{100 * np.mean(final):.1f} / {100 * np.mean(best):.1f} | {per_step:.2f} |", flush=True)
    env.close()


if __name__ == "__main__":
    main()
