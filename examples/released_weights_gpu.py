"""The released V-JEPA 2-AC world model (ViT-g encoder, 1 B params + 305 M AC predictor) on a GPU: plan one
action on the official repository's real Franka frames with the paper's CEM, and draw its energy landscape.

    python examples/released_weights_gpu.py [--checkpoint vjepa2-ac-vitg.pt] [--encoder facebook/vjepa2-vitg-fpc64-256]

Needs the Hugging Face hub (or a local copy of the encoder) and the 11.7 GB checkpoint (path, or the URL below,
downloaded once to ~/.cache/vjepa2_ac). Offline, or without the files, it stops with one line saying what is
missing. On a CPU every step takes minutes to hours: pass --allow-cpu to try anyway.
"""

import argparse
import sys
import time

import torch

from planners import CEM, CEMConfig
from vjepa2_ac import Encoder, WorldModel
from vjepa2_ac.data.franka_example import load_franka_example
from vjepa2_ac.eval.landscape import energy_landscape
from vjepa2_ac.eval.plots import plot_landscape
from vjepa2_ac.model.checkpoint import RELEASED_AC_URL, CheckpointError

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--encoder", default="facebook/vjepa2-vitg-fpc64-256", help="encoder hub id or local directory")
parser.add_argument("--checkpoint", default=RELEASED_AC_URL, help="vjepa2-ac-vitg.pt path or URL")
parser.add_argument("--samples", type=int, default=800, help="CEM samples (paper: 800)")
parser.add_argument("--grid", type=int, default=9, help="landscape points per axis")
parser.add_argument("--out", default="released_landscape.png")
parser.add_argument("--allow-cpu", action="store_true", help="run even without a CUDA GPU (very slow)")
args = parser.parse_args()

device = "cuda" if torch.cuda.is_available() else "cpu"
if device == "cpu" and not args.allow_cpu:
    print("note: no CUDA GPU found; the released ViT-g model needs one (pass --allow-cpu to run on the CPU "
          "anyway, minutes to hours per step). Checking that the weights can be loaded first.", file=sys.stderr)
dtype = torch.bfloat16 if device == "cuda" else torch.float32
try:
    encoder = Encoder.from_pretrained(args.encoder, dtype=dtype, device=device)
    world_model = WorldModel.from_official_checkpoint(args.checkpoint, encoder=encoder, device=device, dtype=dtype)
except (OSError, ConnectionError, CheckpointError) as err:  # offline, missing or corrupt files
    raise SystemExit(f"released_weights_gpu.py: cannot load the released weights: {err}") from None
if device == "cpu" and not args.allow_cpu:
    raise SystemExit("released_weights_gpu.py: weights loaded, but no CUDA GPU; rerun with --allow-cpu to plan on "
                     "the CPU")

example = load_franka_example()  # two real Franka frames [2, 256, 256, 3] and their states [2, 7]
frames, states = example["frames"], torch.from_numpy(example["states"])
z = world_model.encode(frames[None]).float()  # [1, 2, 256, 1408]: current frame and goal frame
world_model.float()  # plan in fp32 (bf16 autocast is available through CEMConfig(dtype=torch.bfloat16))
start = time.perf_counter()
plan = CEM(CEMConfig.paper(samples=args.samples)).plan(
    world_model, z[:, :1], states[None, :1].to(device), z[:, 1:], generator=torch.Generator(device).manual_seed(0))
print(f"CEM ({args.samples} samples, 10 iterations): action {plan.actions[0].cpu().numpy().round(3)}, energy "
      f"{plan.energy:.4f}, {time.perf_counter() - start:.1f} s; ground truth {example['gt_action'].round(3)}")
landscape = energy_landscape(world_model, z[:, :1], z[:, 1:], example["states"][0], grid=args.grid,
                             reference_delta=example["gt_action"][:3])
plot_landscape(args.out, landscape, frame=frames[0], goal=frames[1], title="released V-JEPA 2-AC (ViT-g)")
print(f"argmin move (cm) {(100 * landscape.argmin_delta).round(1)}; wrote {args.out}")
