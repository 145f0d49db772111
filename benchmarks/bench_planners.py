"""Planner speed and quality on a small random-weight world model with the real 16x16 token grid.

Table 1: seconds per planned action and the energy of the returned plan after 10 iterations, for CEM
(official and paper settings), iCEM, MPPI and the gradient planner. The goal latent is the world model's own
prediction for a known action, so energy 0 is reachable.
Table 2: CEM in official mode (100 samples, top-10, 10 iterations, horizon 2) against the port of the
released planning loop (full-prefix recompute, per-sample scipy pose update) on the same weights and the
same random draws, in fp32 and with bf16 autocast.

    python benchmarks/bench_planners.py                 # 1 thread, CPU
    python benchmarks/bench_planners.py --device cuda --released-geometry --only paper   # ViT-g predictor
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planners import (  # noqa: E402
    CEM,
    ICEM,
    MPPI,
    CEMConfig,
    GradientConfig,
    GradientPlanner,
    ICEMConfig,
    MPPIConfig,
    native_low_precision,
    rollout_energy,
)
from vjepa2_ac import ACPredictor, ACPredictorConfig, WorldModel  # noqa: E402
from vjepa2_ac.model.world_model import normalize_reps  # noqa: E402

S0 = [0.5804, -0.0020, 0.2476, -3.0666, 0.0305, -1.9128, 0.0]  # the Franka example's first state (gripper open)
GOAL_ACTION = [0.03, -0.02, 0.015, 0.0, 0.0, 0.0, 0.0]  # inside the box 0.05 and the L1 ball 0.075


def _released():
    spec = importlib.util.spec_from_file_location("released_reference", ROOT / "tests" / "released_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: torch.device, repeats: int) -> tuple[float, object]:
    """Median wall seconds of ``repeats`` calls (after the warm-up the caller did) and the last result."""
    times, out = [], None
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def build(args: argparse.Namespace) -> tuple[WorldModel, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    if args.released_geometry:
        cfg = ACPredictorConfig()  # the released ViT-g AC predictor, 305 M parameters
    else:
        cfg = ACPredictorConfig(img_size=256, patch_size=16, embed_dim=args.embed_dim,
                                predictor_embed_dim=args.predictor_dim, depth=args.depth, num_heads=args.heads)
    device = torch.device(args.device)
    pred = ACPredictor(cfg).to(device).eval().requires_grad_(False)
    with torch.no_grad():  # random weights barely react to 5 cm actions: scale the conditioning (as the fixtures do)
        pred.action_encoder.weight.mul_(30.0)
        pred.state_encoder.weight.mul_(10.0)
    wm = WorldModel(encoder=None, predictor=pred)
    g = torch.Generator(device=device).manual_seed(0)
    z0 = normalize_reps(torch.randn(1, 1, cfg.tokens_per_frame, cfg.embed_dim, generator=g, device=device))
    s0 = torch.tensor([[S0]], device=device)
    return wm, z0, s0


def goal_for(wm: WorldModel, z0: torch.Tensor, s0: torch.Tensor, horizon: int) -> torch.Tensor:
    """The predicted frame after ``horizon`` equal steps that add up to ``GOAL_ACTION`` (energy 0 is reachable)."""
    step = torch.tensor(GOAL_ACTION, device=z0.device) / horizon
    with torch.no_grad():
        z, _ = wm.rollout(z0, s0, step.expand(1, horizon, 7))
    return z[:, -1:]


def planners_table(args, wm, z0, s0) -> None:
    device, dtype = z0.device, (torch.bfloat16 if args.bf16 else None)
    candidates = {
        "CEM official": CEM(CEMConfig.official(dtype=dtype)),
        "CEM paper": CEM(CEMConfig.paper(dtype=dtype)),
        "iCEM": ICEM(ICEMConfig(horizon=2, samples=400, iterations=10, dtype=dtype)),
        "MPPI": MPPI(MPPIConfig(horizon=1, samples=400, iterations=10, maxnorm=0.075, constraint="l1_ball", dtype=dtype)),
        "gradient": GradientPlanner(GradientConfig(horizon=2, iterations=10, restarts=8, lr=0.01, dtype=dtype)),
    }
    settings = {
        "CEM official": "400 samples, top-10, H=2, box 0.05",
        "CEM paper": "800 samples, top-10, H=1, L1 0.075",
        "iCEM": "400->decay 1.25, top-10, H=2, beta 2",
        "MPPI": "400 samples, H=1, L1 0.075",
        "gradient": "Adam, 8 restarts, H=2",
    }
    if args.only:
        candidates = {k: v for k, v in candidates.items() if args.only.lower() in k.lower()}
    print("\n## Planners (10 iterations; the goal is reachable: energy 0)\n")
    print("| planner | settings | s / action | plan energy | energy of the zero plan |")
    print("|---|---|---|---|---|")
    for name, planner in candidates.items():
        horizon = planner.config.horizon
        z_goal = goal_for(wm, z0, s0, horizon)
        zero = float(rollout_energy(wm, z0, s0, z_goal, torch.zeros(1, horizon, 7, device=device))[0])

        def run(planner=planner, z_goal=z_goal):
            return planner.plan(wm, z0, s0, z_goal, generator=torch.Generator(device=device).manual_seed(0))

        run()  # warm-up
        seconds, plan = _timed(run, device, args.repeats)
        print(f"| {name} | {settings[name]} | {seconds:.3f} | {plan.energy:.2e} | {zero:.2e} |", flush=True)


def released_table(args, wm, z0, s0) -> None:
    released = _released()
    device = z0.device
    z_goal = goal_for(wm, z0, s0, 2)
    n = wm.tokens_per_frame
    kw = dict(samples=args.cmp_samples, topk=10, iterations=10, horizon=2)

    def ours(dtype, model=wm):
        planner = CEM(CEMConfig.official(dtype=dtype, evaluate_plan=False, **kw))
        return lambda: planner.plan(model, z0, s0, z_goal, generator=torch.Generator(device=device).manual_seed(0))

    def theirs(dtype):
        def run():
            history: list = []
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                step = released.released_world_model_step(
                    lambda x, a, s: released.released_predictor_forward(wm.predictor, x, a, s), n)
                actions = released.released_cem(
                    z0, s0, z_goal, step, generator=torch.Generator(device=device).manual_seed(0), history=history,
                    horizon=2, samples=kw["samples"], topk=10, iterations=10, momentum_mean=0.15, momentum_std=0.15,
                    maxnorm=0.05)
            return actions, history

        return run

    def energy(actions):
        return float(rollout_energy(wm, z0, s0, z_goal, actions[None].float()))

    print(f"\n## CEM official ({kw['samples']} samples, top-10, 10 iterations, H=2) vs the released loop, same weights\n")
    print("| precision | released s/plan | ours s/plan | speed-up | vs released fp32 | released energy | ours energy "
          "| max abs diff of final mean |")
    print("|---|---|---|---|---|---|---|---|")
    released_fp32 = None
    rows = [("fp32", None, wm), ("bf16 autocast", torch.bfloat16, wm)]
    if args.compile:  # WorldModel.compile_predictor on a copy; the warm-up call compiles
        compiled = copy.deepcopy(wm).compile_predictor()
        rows += [("fp32, compiled", None, compiled), ("bf16 autocast, compiled", torch.bfloat16, compiled)]
    if args.no_bf16:
        rows = [row for row in rows if row[1] is None]
    released_times: dict = {}
    for label, dtype, model in rows:
        ours(dtype, model)()  # warm-up
        t_ours, plan = _timed(ours(dtype, model), device, args.repeats)
        if dtype not in released_times:
            released_times[dtype] = _timed(theirs(dtype), device, max(1, args.released_repeats))
        t_rel, (actions, history) = released_times[dtype]
        diff = (history[-1][0] - plan.history[-1]["mean"]).abs().max().item()
        released_fp32 = released_fp32 or t_rel
        print(f"| {label} | {t_rel:.3f} | {t_ours:.3f} | {t_rel / t_ours:.1f}x | {released_fp32 / t_ours:.1f}x | "
              f"{energy(actions):.3e} | "
              f"{energy(plan.actions):.3e} | {diff:.2e} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--predictor-dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--released-geometry", action="store_true", help="the 305 M-parameter ViT-g AC predictor")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast in the planners table")
    p.add_argument("--only", default="", help="run only the planners whose name contains this")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--released-repeats", type=int, default=1)
    p.add_argument("--cmp-samples", type=int, default=100)
    p.add_argument("--skip-planners", action="store_true")
    p.add_argument("--skip-released", action="store_true")
    p.add_argument("--no-bf16", action="store_true", help="leave out the bf16 rows of the released-loop table "
                                                          "(slow where bf16 is emulated)")
    p.add_argument("--compile", action="store_true", help="add torch.compile'd rows (WorldModel.compile_predictor) "
                                                          "to the released-loop table")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    wm, z0, s0 = build(args)
    c = wm.config
    print(f"world model: predictor {c.predictor_embed_dim}-d x {c.depth} blocks, {c.num_heads} heads, "
          f"{c.tokens_per_frame} tokens/frame, D={c.embed_dim}; device {args.device}, {args.threads} thread(s), "
          f"torch {torch.__version__}; native bf16 matmuls (AVX512-BF16/AMX): "
          f"{'yes' if native_low_precision(args.device) else 'no: bf16 rows are emulated'}")
    if not args.skip_planners:
        planners_table(args, wm, z0, s0)
    if not args.skip_released:
        released_table(args, wm, z0, s0)


if __name__ == "__main__":
    main()
