"""Pick and place the cube through the phases of the model's planning.json with MPC; save a video and a summary sheet.

    python examples/pick_and_place.py [--model DIR_OR_NAME] [--object cube] [--seed 0] [--out pick_place_out]
"""

import argparse
from pathlib import Path

from vjepa2_ac.agent import ModelNotAvailable, build_agent, load_world_model, make_env
from vjepa2_ac.data.video import write_video
from vjepa2_ac.eval import task_distance
from vjepa2_ac.eval.plots import plot_episode_sheet

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="vjepa2-ac-sim-small", help="bundled name or save_pretrained directory")
parser.add_argument("--object", default="cube", choices=["cube", "cup"])
parser.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"])
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--max-steps", type=int, default=None, help="actions (default: the model's planning.json)")
parser.add_argument("--out", default="pick_place_out", help="output directory")
args = parser.parse_args()

try:
    world_model, planning, description = load_world_model(args.model)
except ModelNotAvailable as err:
    raise SystemExit(f"pick_and_place.py: {err}") from None
env = make_env(planning, "pick-place", object=args.object, backend=args.backend)  # model's camera + image size
obs, info = env.reset(seed=args.seed)
# Phases (bundled model: over the object, grasped, lifted over the target, placed), each with its goal image.
agent = build_agent(world_model, planning, "pick-place", info["goals"], seed=args.seed)
frames = [obs["pixels"]]
for _ in range(args.max_steps or planning.task("pick-place").max_steps):
    obs, _, _, _, info = env.step(agent.act(obs["pixels"], obs["agent_pos"]))
    frames.append(obs["pixels"])
    record = agent.records[-1]
    print(f"step {len(frames) - 1:2d}: phase {record.phase + 1} ({agent.phases[record.phase].name})  energy {record.plan_energy:.4f}  "
          f"object-to-target {100 * task_distance(env, 'pick-place'):.1f} cm")
    if info["is_success"]:
        break

out = Path(args.out)
video = write_video(frames, out / "pick_and_place.mp4", fps=4)  # GIF when no MP4 encoder is available
goals = [(phase.name, info["goals"][phase.name]) for phase in agent.phases]
sheet = plot_episode_sheet(out / "pick_and_place.png", goals=goals, frames=frames, energies=agent.energies,
                           frame_energies=[r.frame_energy for r in agent.records],
                           phases=[r.phase for r in agent.records], title=description)
print(f"{'success' if info['is_success'] else 'failure'}; wrote {video} and {sheet}")
