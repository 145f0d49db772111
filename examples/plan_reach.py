"""Reach a goal image with the Python planning API: world model + CEM + receding-horizon MPC in MuJoCo.

    python examples/plan_reach.py [--model DIR_OR_NAME] [--steps 20] [--samples 200] [--seed 0]
"""

import argparse

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the vjepa2ac/* env ids)
from planners import CEM, CEMConfig, MPCAgent
from vjepa2_ac.evaluation import ModelNotAvailable, load_world_model

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="vjepa2-ac-sim-small", help="bundled name or save_pretrained directory")
parser.add_argument("--steps", type=int, default=None, help="actions (default: the model's planning.json)")
parser.add_argument("--samples", type=int, default=None, help="CEM samples (default: planning.json)")
parser.add_argument("--iterations", type=int, default=None, help="CEM iterations (default: planning.json)")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

try:
    world_model, planning, _ = load_world_model(args.model)  # WorldModel + the settings it was tuned for
except ModelNotAvailable as err:
    raise SystemExit(f"plan_reach.py: {err}") from None
env = gym.make("vjepa2ac/FrankaReach-v0", camera=planning.camera, image_size=planning.image_size)
obs, info = env.reset(seed=args.seed)  # info["goal_pixels"]: uint8 [H, W, 3] image of the goal pose

overrides = {k: v for k, v in (("samples", args.samples), ("iterations", args.iterations)) if v is not None}
planner = CEM(CEMConfig.paper(**planning.planner_fields("reach", **overrides)))
agent = MPCAgent(world_model, planner, goal=info["goal_pixels"], seed=args.seed)
for step in range(args.steps or planning.task("reach").max_steps):
    action = agent.act(obs["pixels"], obs["agent_pos"])  # encode frame, plan with CEM, return the first action
    obs, reward, terminated, truncated, info = env.step(action)
    distance = np.linalg.norm(obs["agent_pos"][:3] - env.unwrapped.goal["position"])
    print(f"step {step:2d}: action xyz {np.round(action[:3], 3)}  energy {agent.records[-1].plan_energy:.4f}  "
          f"distance {100 * distance:.1f} cm  ({agent.records[-1].latency_s:.2f} s)")
    if info["is_success"]:
        break
print("success" if info["is_success"] else "not reached", f"after {step + 1} actions;",
      f"mean {np.mean(agent.latencies):.2f} s per action")
