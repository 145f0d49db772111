"""Rollout speed and memory: KV-cached vs full-prefix recompute vs the released planning loop.

    python benchmarks/bench_rollout.py                 # default tables (a few minutes on 2 CPU cores)
    python benchmarks/bench_rollout.py --samples 100 --horizons 1 2 --repeats 2   # quicker
    python benchmarks/bench_rollout.py --skip steps fixture memory --compile      # + torch.compile variants

Model: the released predictor geometry (256 px, patch 16 -> 16x16 grid, 258 tokens per step, head dim 64 so the
real 20/20/20+4 RoPE split) with reduced width/depth so that it runs on a CPU. Random weights (timings only).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planners import native_low_precision  # noqa: E402
from vjepa2_ac.model.predictor import ACPredictor, ACPredictorConfig  # noqa: E402
from vjepa2_ac.model.world_model import WorldModel  # noqa: E402

# the test oracle: an independent re-implementation of the released planning loop
_spec = importlib.util.spec_from_file_location("released_reference", ROOT / "tests" / "released_reference.py")
released_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(released_reference)
released_predictor_forward = released_reference.released_predictor_forward
released_world_model_step = released_reference.released_world_model_step


def make_model(args) -> WorldModel:
    torch.manual_seed(0)
    cfg = ACPredictorConfig(img_size=256, patch_size=16, embed_dim=args.embed_dim,
                            predictor_embed_dim=args.width, depth=args.depth, num_heads=args.width // 64)
    return WorldModel(None, ACPredictor(cfg).eval(), memory_budget_mb=args.budget_mb)


def inputs(wm: WorldModel, samples: int, horizon: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c = wm.config
    z0 = torch.nn.functional.layer_norm(torch.randn(1, 1, c.tokens_per_frame, c.embed_dim, generator=g),
                                        (c.embed_dim,)).expand(samples, -1, -1, -1)
    s0 = torch.tensor([[[0.58, -0.002, 0.25, -3.07, 0.03, -1.91, 0.5]]]).expand(samples, -1, -1)
    actions = torch.randn(samples, horizon, 7, generator=g) * 0.05
    goal = torch.nn.functional.layer_norm(torch.randn(1, 1, c.tokens_per_frame, c.embed_dim, generator=g),
                                          (c.embed_dim,))
    return z0, s0, actions, goal


def released_rollout(wm: WorldModel, z0, s0, actions):
    """The released planner's inner loop: full-prefix recompute + per-sample scipy pose update."""
    step = released_world_model_step(lambda x, a, s: released_predictor_forward(wm.predictor, x, a, s),
                                     wm.tokens_per_frame)
    reps, poses = z0, s0
    for h in range(actions.shape[1]):
        nxt, pose = step(reps, actions[:, :h + 1], poses)
        reps, poses = torch.cat([reps, nxt], 1), torch.cat([poses, pose], 1)
    return reps[:, 1:], poses[:, 1:]


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bf16_ok() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.functional.linear(torch.randn(4, 4), torch.randn(4, 4))
        return True
    except RuntimeError:
        return False


@torch.no_grad()
def table_steps(wm, args):
    print(f"\n## ms per rollout step (cached vs uncached), {args.threads} thread(s)\n")
    print("| samples | horizon | cached total ms | cached ms/step | marginal ms of last step | uncached total ms | "
          "uncached ms/step | cache speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for S in args.samples:
        prev = None
        for H in args.horizons:
            z0, s0, a, _ = inputs(wm, S, H)
            cached = timeit(lambda: wm.rollout(z0, s0, a), args.repeats)  # noqa: B023
            full = timeit(lambda: wm.rollout(z0, s0, a, use_cache=False), args.repeats)  # noqa: B023
            marginal = "" if prev is None else f"{(cached - prev) * 1e3:.0f}"
            prev = cached
            print(f"| {S} | {H} | {cached * 1e3:.0f} | {cached / H * 1e3:.0f} | {marginal} | {full * 1e3:.0f} | "
                  f"{full / H * 1e3:.0f} | {full / cached:.2f}x |", flush=True)


@torch.no_grad()
def table_released(wm, args):
    S = args.compare_samples
    compiled = copy.deepcopy(wm).compile_predictor() if args.compile else None  # compiles on first use (warm-up)
    print(f"\n## Against the released loop (full-prefix recompute + per-sample scipy poses), S = {S}\n")
    print("| horizon | variant | ms per rollout | speed-up vs released | max abs diff latents | max abs diff energy | "
          "same argmin |")
    print("|---|---|---|---|---|---|---|")
    for H in (2, 4):
        z0, s0, a, goal = inputs(wm, S, H)
        ref_z, ref_s = released_rollout(wm, z0, s0, a)
        ref_e = wm.energy(ref_z[:, -1:], goal)
        t_ref = timeit(lambda: released_rollout(wm, z0, s0, a), max(1, args.repeats - 1))  # noqa: B023
        print(f"| {H} | released loop | {t_ref * 1e3:.0f} | 1.00x | 0 | 0 | yes |", flush=True)
        variants = [("ours, uncached fp32", wm, dict(use_cache=False), None), ("ours, cached fp32", wm, {}, None)]
        if bf16_ok():
            variants.append(("ours, cached bf16 autocast", wm, {}, torch.bfloat16))
        if compiled is not None:
            variants.append(("ours, cached fp32, compiled", compiled, {}, None))
            if bf16_ok():
                variants.append(("ours, cached bf16 autocast, compiled", compiled, {}, torch.bfloat16))
        for name, model, kw, dtype in variants:
            def run(model=model, kw=kw, dtype=dtype):
                with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                    return model.rollout(z0, s0, a, **kw)  # noqa: B023
            z, s = run()
            e = wm.energy(z[:, -1:], goal)
            t = timeit(run, args.repeats)
            same = bool(e.argmin() == ref_e.argmin())
            print(f"| {H} | {name} | {t * 1e3:.0f} | {t_ref / t:.2f}x | {(z - ref_z).abs().max():.1e} | "
                  f"{(e - ref_e).abs().max():.1e} | {'yes' if same else 'no'} |", flush=True)


@torch.no_grad()
def table_fixture_bf16():
    """bf16 autocast on the official test vectors: energy error and argmin of the one-step landscape."""
    d = torch.load(ROOT / "tests/fixtures/official_ac_small.pt", weights_only=True)
    p = ACPredictor(ACPredictorConfig(**d["predictor_config"])).eval()
    p.load_official_state_dict(d["checkpoint"]["predictor"])
    wm = WorldModel(None, p)
    A = d["landscape_actions"][:, None]
    z0 = d["encoder_tokens"][0:1, 0:1].expand(len(A), -1, -1, -1)
    s0 = d["states_real"][0].view(1, 1, 7).expand(len(A), -1, -1)
    goal = d["encoder_tokens"][0:1, 1:2]
    rows = []
    for name, dtype in (("fp32", None), ("bf16 autocast", torch.bfloat16)):
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            e = wm.energy(wm.rollout(z0, s0, A)[0], goal)
        rows.append((name, (e - d["landscape_energy"]).abs().max().item(), int(e.argmin()),
                     int(d["landscape_energy"].argmin())))
    print("\n## Official fixture energy landscape (125 actions)\n")
    print("| precision | max abs diff vs official energy | argmin | official argmin |")
    print("|---|---|---|---|")
    for name, err, am, ref in rows:
        print(f"| {name} | {err:.1e} | {am} | {ref} |")


def table_memory(args):
    print(f"\n## Peak RSS of one cached rollout (S = {args.memory_samples}, horizon 2), separate processes\n")
    print("| chunk budget | peak RSS MiB |")
    print("|---|---|")
    for budget in (None, args.memory_budget_mb):
        cmd = [sys.executable, __file__, "--_memory-child", json.dumps({**vars(args), "budget_mb": budget})]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
        print(f"| {'off' if budget is None else f'{budget} MiB'} | {float(out.stdout.strip()):.0f} |", flush=True)


def memory_child(cfg: dict) -> None:
    import resource

    args = argparse.Namespace(**cfg)
    torch.set_num_threads(args.threads)
    wm = make_model(args)
    z0, s0, a, _ = inputs(wm, args.memory_samples, 2)
    with torch.no_grad():
        wm.rollout(z0, s0, a)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, nargs="+", default=[100, 800])
    ap.add_argument("--horizons", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--compare-samples", type=int, default=100)
    ap.add_argument("--width", type=int, default=128, help="predictor width (multiple of 64: head dim 64)")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--embed-dim", type=int, default=256, help="encoder width")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true",
                    help="add torch.compile'd variants (WorldModel.compile_predictor) to the released-loop table")
    ap.add_argument("--memory-samples", type=int, default=800)
    ap.add_argument("--memory-budget-mb", type=float, default=256)
    ap.add_argument("--skip", nargs="*", default=[], choices=["steps", "released", "fixture", "memory"])
    ap.add_argument("--_memory-child", dest="memory_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.budget_mb = None
    if args.memory_child:
        return memory_child(json.loads(args.memory_child))
    torch.set_num_threads(args.threads)
    wm = make_model(args)
    c = wm.config
    print(f"predictor: grid {c.grid_size}x{c.grid_size} ({c.tokens_per_step} tokens/step), width "
          f"{c.predictor_embed_dim}, depth {c.depth}, heads {c.num_heads}, encoder dim {c.embed_dim}; "
          f"torch {torch.__version__}, {args.threads} thread(s), bf16 autocast {'available' if bf16_ok() else 'n/a'}, "
          f"native bf16 matmuls (AVX512-BF16/AMX): {'yes' if native_low_precision('cpu') else 'no: bf16 rows are emulated'}")
    if "steps" not in args.skip:
        table_steps(wm, args)
    if "released" not in args.skip:
        table_released(wm, args)
    if "fixture" not in args.skip:
        table_fixture_bf16()
    if "memory" not in args.skip:
        table_memory(args)


if __name__ == "__main__":
    main()
