"""Reach a goal image with the Python planning API: world model + its planning file + MPC in MuJoCo.

    python examples/plan_reach.py [--model DIR_OR_NAME] [--samples 200] [--seed 0]
"""

import argparse

import numpy as np

from vjepa2_ac.agent import ModelNotAvailable, build_agent, load_world_model, make_env

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
env = make_env(planning, "reach")  # the model's camera and image size
obs, info = env.reset(seed=args.seed)  # info["goals"]["final"]: uint8 [H, W, 3] image of the goal pose
# The task's phases from planning.json (bundled model: horizon 1 for ten actions, then a two-step look-ahead).
agent = build_agent(world_model, planning, "reach", info["goals"], seed=args.seed, samples=args.samples,
                    iterations=args.iterations)
for step in range(args.steps or planning.task("reach").max_steps):
    action = agent.act(obs["pixels"], obs["agent_pos"])  # encode frame, plan with CEM, return the first action
    obs, reward, terminated, truncated, info = env.step(action)
    distance = np.linalg.norm(obs["agent_pos"][:3] - env.unwrapped.goal["position"])
    record = agent.records[-1]
    print(f"step {step:2d} (phase {record.phase}): action xyz {np.round(action[:3], 3)}  "
          f"energy {record.plan_energy:.4f}  distance {100 * distance:.1f} cm  ({record.latency_s:.2f} s)")
    if info["is_success"]:
        break
print("success" if info["is_success"] else "not reached", f"after {step + 1} actions;",
      f"mean {np.mean(agent.latencies):.2f} s per action")
