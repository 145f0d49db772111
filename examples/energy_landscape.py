"""Energy landscape of one planning step on the official repository's real Franka frames (the paper's figure):
energy of every xyz move on a grid around the current pose, with the argmin and the ground-truth move.

    python examples/energy_landscape.py [--model DIR_OR_NAME] [--grid 5] [--out landscape.png]
"""

import argparse

from vjepa2_ac.agent import ModelNotAvailable, load_world_model
from vjepa2_ac.data.franka_example import load_franka_example
from vjepa2_ac.eval.landscape import energy_landscape
from vjepa2_ac.eval.plots import plot_landscape

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="vjepa2-ac-sim-small", help="bundled name or save_pretrained directory")
parser.add_argument("--grid", type=int, default=5, help="points per axis")
parser.add_argument("--radius", type=float, default=0.075, help="largest move per axis (m)")
parser.add_argument("--out", default="landscape.png")
args = parser.parse_args()

try:
    world_model, _, description = load_world_model(args.model)
except ModelNotAvailable as err:
    raise SystemExit(f"energy_landscape.py: {err}") from None
example = load_franka_example()  # frames uint8 [2, 256, 256, 3], states [2, 7], gt_action [7]
frame, goal = example["frames"]
landscape = energy_landscape(world_model, frame, goal, example["states"][0], grid=args.grid, radius=args.radius,
                             reference_delta=example["gt_action"][:3])
plot_landscape(args.out, landscape, frame=frame, goal=goal, title=f"Franka example, {description}")
print(f"argmin move (cm): {(100 * landscape.argmin_delta).round(1)}; "
      f"ground truth (cm): {(100 * example['gt_action'][:3]).round(1)}; wrote {args.out}")
