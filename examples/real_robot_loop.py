"""Closed-loop V-JEPA 2-AC planning on a robot, through the safety layer, recorded as an episode.

Runs against the simulated Franka (``SimDriver``) by default; the same code drives a real arm:

    python examples/real_robot_loop.py                                   # sim, reach task
    python examples/real_robot_loop.py --model path/to/world_model      # a trained model
    python examples/real_robot_loop.py --driver franky --host 172.16.0.2 --goal goal.png --model DIR

Without ``--model`` it uses the first bundled model, or else a tiny *untrained* model that only exercises the
loop (the arm then wanders; the safety layer keeps it in the workspace). The model's ``planning.json`` sets the
planner and, for the sim, the camera view and image size the model was trained on (``vjepa2-ac robot run`` is the
full command-line version).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from envs.robot import FrankyDriver, RealSenseCamera, SafeDriver, SafetyLimits, SimDriver  # noqa: E402
from vjepa2_ac import WorldModel  # noqa: E402
from vjepa2_ac.agent import PlanningConfig, build_agent, run_robot_episode  # noqa: E402
from vjepa2_ac.model.world_model import resolve_model_dir  # noqa: E402


def load_world_model(name_or_dir: str | None) -> tuple[WorldModel, PlanningConfig]:
    """The world model and its planning settings (built-in defaults for the untrained fallback)."""
    from vjepa2_ac.model import bundled

    if name_or_dir is None and bundled.MODELS:
        name_or_dir = next(iter(bundled.MODELS))
    if name_or_dir is not None:
        path = resolve_model_dir(name_or_dir)
        return WorldModel.from_pretrained(path), PlanningConfig.load(path)
    from transformers import VJEPA2Config

    from vjepa2_ac import ACPredictor, ACPredictorConfig, Encoder

    print("no --model and no bundled model: using a tiny UNTRAINED world model (exercises the loop only)")
    torch.manual_seed(0)
    encoder = Encoder(VJEPA2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=1, crop_size=64,
                                   patch_size=16))
    predictor = ACPredictor(ACPredictorConfig(img_size=64, patch_size=16, embed_dim=64, predictor_embed_dim=64,
                                              depth=2, num_heads=4))
    return WorldModel(encoder, predictor.eval()), PlanningConfig()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", choices=("sim", "franky"), default="sim")
    parser.add_argument("--host", help="robot FCI address (franky)")
    parser.add_argument("--goal", help="goal image (default with sim: the task's goal render)")
    parser.add_argument("--model", help="world model directory or bundled name")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--samples", type=int, help="CEM samples (default: the model's planning.json; paper: 800)")
    parser.add_argument("--limits", help="safety limits YAML")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--out", default="runs/example_episode.h5")
    args = parser.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))

    world_model, planning = load_world_model(args.model)
    if args.driver == "sim":  # rendered as the model saw its training data
        driver = camera = SimDriver("reach", seed=0, **planning.env_kwargs_for("reach"))
    else:
        driver, camera = FrankyDriver(args.host), RealSenseCamera()
    goal = np.array(Image.open(args.goal).convert("RGB")) if args.goal else getattr(driver, "goal_image", None)
    if goal is None:
        raise SystemExit("--goal is required with a real robot (vjepa2-ac robot capture-goal --out goal.png)")

    agent = build_agent(world_model, planning, "reach", {"final": goal}, samples=args.samples)
    limits = SafetyLimits.from_yaml(args.limits) if args.limits else SafetyLimits()
    success = (lambda: bool(driver.last_info["is_success"])) if isinstance(driver, SimDriver) else None

    def show(step: int, info: dict) -> None:
        print(f"step {step}: energy {info['energy']:.4f}  plan {info['policy_s'] * 1e3:.0f} ms  "
              f"xyz {np.round(info['state'][:3], 3)}")

    with SafeDriver(driver, limits, camera=camera, dry_run=args.dry_run,
                    log_path=os.path.splitext(args.out)[0] + ".commands.jsonl") as robot:
        episode = run_robot_episode(robot, agent, steps=args.steps, episode_path=args.out, success=success,
                                    on_step=show)
    print(episode.loop.summary())
    print(f"episode saved to {episode.path}" + (f"; STOPPED: {episode.loop.stopped_by}" if episode.loop.error else ""))


if __name__ == "__main__":
    main()
