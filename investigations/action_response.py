"""Does the world model see what an action does? Real vs predicted energy for a move towards / away from the goal.

For reach episodes (env seeds ``--seed`` ...), from the start state: move ``--step`` metres straight towards the goal
position, and (from the same start) the same distance away. Reports, per start state and on average:

* the *encoder's* energy to the goal image of the real next frames (towards vs away): is the latent cost usable?
* the *predictor's* energy for the same two actions: does the rollout reproduce that difference?
* the predictor's error on the real next frame against copying the current frame (a predictor that ignores the
  action cannot beat the copy), over all tokens and over the ``--top-tokens`` the move changes most.

    python investigations/action_response.py                        # the bundled model, 16 start states
    python investigations/action_response.py --model runs/ac_v2/model --episodes 32
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

import envs  # noqa: E402,F401  (registers the ids)
from vjepa2_ac.agent import load_world_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vjepa2-ac-sim-small", help="bundled name or model directory")
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--step", type=float, default=0.05, help="move length (m)")
    p.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top-tokens", type=int, default=4, help="tokens of the 'most changed' error columns")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    wm, planning, desc = load_world_model(args.model)
    if not 1 <= args.top_tokens <= wm.tokens_per_frame:
        p.error(f"--top-tokens must be in [1, {wm.tokens_per_frame}] (tokens per frame), got {args.top_tokens}")
    env = gymnasium.make(planning.env_id("reach"), **planning.env_kwargs_for("reach", object="cube",
                                                                              backend=args.backend))
    rows = []
    with torch.no_grad():
        for seed in range(args.seed, args.seed + args.episodes):
            row = {}
            for name, sign in (("towards", 1.0), ("away", -1.0)):
                obs, info = env.reset(seed=seed)
                base = env.unwrapped
                direction = base.goal["position"] - base.get_ee_pose()[0]
                action = np.zeros(7, np.float32)
                action[:3] = sign * args.step * direction / np.linalg.norm(direction)
                nxt, *_ = env.step(action)
                z = wm.encode(np.stack([obs["pixels"], nxt["pixels"], info["goals"]["final"]]))  # [1, 3, N, D]
                s0 = torch.as_tensor(obs["agent_pos"]).float()[None, None]
                z_pred, _ = wm.rollout(z[:, :1], s0, torch.as_tensor(action)[None, None])
                row["start"] = wm.energy(z[:, :1], z[:, 2:]).item()
                row[f"real {name}"] = wm.energy(z[:, 1:2], z[:, 2:]).item()
                row[f"pred {name}"] = wm.energy(z_pred, z[:, 2:]).item()
                if name == "towards":
                    row["pred error"] = wm.energy(z_pred, z[:, 1:2]).item()
                    row["copy error"] = wm.energy(z[:, :1], z[:, 1:2]).item()
                    # the same errors on the tokens the move changes most (where the arm is)
                    top = (z[0, 1] - z[0, 0]).abs().mean(-1).topk(args.top_tokens).indices
                    row["pred error top"] = (z_pred[0, 0, top] - z[0, 1, top]).abs().mean().item()
                    row["copy error top"] = (z[0, 0, top] - z[0, 1, top]).abs().mean().item()
            rows.append(row)
    env.close()
    cols = ["start", "real towards", "real away", "pred towards", "pred away", "pred error", "copy error",
            "pred error top", "copy error top"]
    print(f"world model: {desc}; {args.episodes} reach start states from seed {args.seed}, {args.step * 100:.0f} cm "
          f"moves, {args.backend}\n")
    print("| seed | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for i, r in enumerate(rows):
        print(f"| {args.seed + i} | " + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")
    a = {c: np.array([r[c] for r in rows]) for c in cols}
    n = len(rows)
    print("\n| quantity | value |\n|---|---|")
    print(f"| encoder: real move towards scores lower than away | {(a['real towards'] < a['real away']).sum()}/{n} |")
    print(f"| encoder: mean energy gap away - towards (real frames) | {(a['real away'] - a['real towards']).mean():.5f} |")
    print(f"| predictor: towards scores lower than away | {(a['pred towards'] < a['pred away']).sum()}/{n} |")
    print(f"| predictor: mean energy gap away - towards | {(a['pred away'] - a['pred towards']).mean():.5f} |")
    print(f"| predictor error on the real next frame / copying the current frame | {a['pred error'].mean():.4f} / "
          f"{a['copy error'].mean():.4f} |")
    print(f"| the same on the {args.top_tokens} tokens the move changes most | {a['pred error top'].mean():.4f} / "
          f"{a['copy error top'].mean():.4f} |")


if __name__ == "__main__":
    main()
