"""How close one CEM plan runs to the CPU's matmul throughput, and where the rest of its time goes.

Table 1, the bundled model's plan (its planner: 64 samples, top-10, 5 iterations, horizon 1; fp32, and bf16 where
the CPU has it natively): FLOPs (``torch.utils.flop_counter``), seconds per plan with the library's kernels
(``vjepa2_ac.model.kernels``) and with plain PyTorch ops (``F.linear`` under autocast,
``F.scaled_dot_product_attention``, as before those kernels), the plan's FLOP/s, and the FLOP/s of a plain matmul of
the predictor's MLP shape (fc1: ``[64 * 66, 128] x [128, 512]``) through ``F.linear`` and through oneDNN (on AMD
CPUs MKL's fp32 GEMM does not use AVX-512, so the two differ). Timings interleave the variants; each figure is
the fastest of ``--repeats`` runs (the least disturbed by other processes).

Table 2, a profile of one plan by operator category (``torch.profiler`` self CPU time): matmul, attention,
normalisation, activation, RoPE and other element-wise work, copies and casts, sampling and CEM bookkeeping, and
what the profiler does not see (Python and dispatch overhead).

Table 3, official-mode CEM (100 samples, top-10, 10 iterations, horizon 2; predictor width 128, depth 2) against the
port of the released planning loop (``tests/released_reference.py``: full-prefix recompute, per-sample scipy pose
update, plain PyTorch ops) on the same weights, at an 8x8 and a 16x16 token grid.

    python benchmarks/bench_plan_profile.py                 # all three tables, 1 thread (a few minutes)
    python benchmarks/bench_plan_profile.py --skip released # tables 1 and 2
    python benchmarks/bench_plan_profile.py --skip released --compile   # + torch.compile'd plans, compile time
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planners import CEM, CEMConfig, native_low_precision  # noqa: E402
from vjepa2_ac import ACPredictor, ACPredictorConfig, WorldModel  # noqa: E402
from vjepa2_ac.agent import load_world_model  # noqa: E402
from vjepa2_ac.model.kernels import fast_kernels, onednn_available  # noqa: E402
from vjepa2_ac.model.world_model import normalize_reps  # noqa: E402

S0 = [[[0.5804, -0.0020, 0.2476, -3.0666, 0.0305, -1.9128, 0.0]]]  # the Franka example's first state

# operator -> category (self CPU time of the profiler's aten / mkldnn ops)
CATEGORIES = {
    "matmul": ("addmm", "mm", "bmm", "baddbmm", "matmul", "linear", "_linear_pointwise"),
    "attention": ("_scaled_dot_product", "softmax", "_softmax"),
    "normalisation": ("layer_norm", "native_layer_norm"),
    "activation": ("gelu",),
    "RoPE + element-wise": ("mul", "add", "addcmul", "flip", "sub", "div", "abs", "mean", "sum", "neg", "pow",
                            "sqrt", "rsqrt", "where", "maximum", "exp", "clamp", "clamp_min"),
    "copies and casts": ("copy_", "_to_copy", "cat", "stack", "contiguous", "clone", "index_select", "expand_as",
                         "index", "index_put_", "_unsafe_view", "empty", "empty_like", "empty_strided", "zeros",
                         "new_zeros", "fill_", "zero_"),
    "sampling and CEM": ("randn", "normal_", "topk", "sort", "std", "var", "std_mean", "var_mean", "linalg_vector_norm",
                         "sign", "cumsum", "gather", "scatter", "isfinite", "all", "any", "item",
                         "_local_scalar_dense", "eq", "ne", "lt", "gt", "le", "ge", "max", "min", "amax"),
}


def _category(name: str) -> str:
    op = name.split("::")[-1]
    for cat, ops in CATEGORIES.items():
        if op in ops or (cat == "attention" and op.startswith("_scaled_dot_product")):
            return cat
    return "other ops (views, reshapes, ...)"


def _fastest(fns: dict, repeats: int) -> dict:
    """Fastest wall seconds of each callable over ``repeats`` interleaved rounds (after one warm-up each)."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with fast_kernels(False), FlopCounterMode(display=False) as counter:  # plain ops: every matmul is counted
        fn()
    return counter.get_total_flops()


def _matmul_rates(rows: int, width: int, hidden: int, dtype: torch.dtype, repeats: int) -> dict[str, float]:
    """GFLOP/s of ``[rows, width] x [width, hidden]`` plus bias through F.linear and through oneDNN."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=g).to(dtype)
    w = (torch.randn(hidden, width, generator=g) * 0.05).to(dtype)
    b = (torch.randn(hidden, generator=g) * 0.05).to(dtype)
    fns = {"F.linear": lambda: F.linear(x, w, b)}
    if onednn_available():
        fns["oneDNN"] = lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "none")
    flops = 2 * rows * width * hidden
    return {name: flops / t / 1e9 for name, t in _fastest(fns, max(repeats, 20)).items()}


def bundled_tables(args: argparse.Namespace) -> None:
    wm, _, _ = load_world_model("vjepa2-ac-sim-small", device="cpu")
    wm = wm.eval().requires_grad_(False)
    c = wm.config
    g = torch.Generator().manual_seed(0)
    z0 = normalize_reps(torch.randn(1, 1, c.tokens_per_frame, c.embed_dim, generator=g))
    z_goal = normalize_reps(torch.randn(1, 1, c.tokens_per_frame, c.embed_dim, generator=g))
    s0 = torch.tensor(S0)
    samples = 64
    dtypes = [("fp32", None)] + ([("bf16", torch.bfloat16)] if native_low_precision("cpu") else [])
    rows, profiles, compile_s = [], {}, {}
    for label, dtype in dtypes:
        cem = CEM(CEMConfig.paper(samples=samples, topk=10, iterations=5, dtype=dtype))

        def plan(cem=cem):
            return cem.plan(wm, z0, s0, z_goal, generator=torch.Generator().manual_seed(0))

        def plain(plan=plan):
            with fast_kernels(False):
                return plan()

        flops = _flops(plan)
        variants = {"ours": plan, "plain": plain}
        if args.compile:  # WorldModel.compile_predictor on a copy (its graphs use Inductor's kernels, not ours)
            compiled_wm = copy.deepcopy(wm).compile_predictor()
            compiled_cem = CEM(cem.config)
            start = time.perf_counter()
            compiled_cem.plan(compiled_wm, z0, s0, z_goal, generator=torch.Generator().manual_seed(0))
            compile_s[label] = time.perf_counter() - start
            variants["compiled"] = lambda c=compiled_cem, m=compiled_wm: c.plan(
                m, z0, s0, z_goal, generator=torch.Generator().manual_seed(0))
        t = _fastest(variants, args.repeats)
        rates = _matmul_rates(samples * c.tokens_per_step, c.predictor_embed_dim, c.mlp_hidden_dim,
                              dtype or torch.float32, args.repeats)
        rows.append((label, flops, t, rates))
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            plan()
            wall = time.perf_counter() - start
        profiles[label] = (prof.key_averages(), wall)

    print(f"\n## The bundled model's plan ({samples} samples, top-10, 5 iterations, horizon 1), 1 thread\n")
    print("| dtype | GFLOP / plan | plain ops s / plan | ours s / plan | speed-up | ours GFLOP/s | matmul GFLOP/s "
          "F.linear / oneDNN | ours ÷ F.linear matmul | ours ÷ oneDNN matmul |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, flops, t, rates in rows:
        rate = flops / t["ours"] / 1e9
        one = rates.get("oneDNN", float("nan"))
        print(f"| {label} | {flops / 1e9:.1f} | {t['plain']:.3f} | {t['ours']:.3f} | {t['plain'] / t['ours']:.2f}x | "
              f"{rate:.0f} | {rates['F.linear']:.0f} / {one:.0f} | {rate / rates['F.linear']:.2f} | "
              f"{rate / one:.2f} |", flush=True)
    for label, _, t, _ in rows:
        if "compiled" in t:
            print(f"\n{label}, `compile_predictor()`: {t['compiled']:.3f} s / plan after {compile_s[label]:.1f} s "
                  f"of compilation on the first plan (ours, eager: {t['ours']:.3f})")

    print("\n## Where one plan's time goes (profiler self CPU time, ours)\n")
    print("| category | " + " | ".join(f"{label} ms | {label} %" for label in profiles) + " |")
    print("|---|" + "---|---|" * len(profiles))
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for label, (events, wall) in profiles.items():
        per = defaultdict(float)
        for e in events:
            per[_category(e.key)] += e.self_cpu_time_total / 1e3
        per["Python and dispatch (wall - profiled ops)"] = max(0.0, wall * 1e3 - sum(per.values()))
        for cat, ms in per.items():
            table[cat][label] = (ms, 100 * ms / (wall * 1e3))
    for cat, cells in sorted(table.items(), key=lambda kv: -max(v[0] for v in kv[1].values())):
        print(f"| {cat} | " + " | ".join(f"{cells.get(lb, (0, 0))[0]:.1f} | {cells.get(lb, (0, 0))[1]:.0f}%"
                                          for lb in profiles) + " |")


def released_table(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import released_reference as released  # the test oracle: the released planning loop, plain PyTorch ops

    print("\n## Official-mode CEM (100 samples, top-10, 10 iterations, H=2) vs the released loop, same weights\n")
    print("| grid | dtype | released s / plan | ours s / plan | speed-up | max abs diff of the final mean |")
    print("|---|---|---|---|---|---|")
    dtypes = [("fp32", None)] + ([("bf16", torch.bfloat16)] if native_low_precision("cpu") else [])
    for grid in args.grids:
        torch.manual_seed(0)
        cfg = ACPredictorConfig(img_size=16 * grid, patch_size=16, embed_dim=args.embed_dim, predictor_embed_dim=128,
                                depth=2, num_heads=2)
        pred = ACPredictor(cfg).eval().requires_grad_(False)
        with torch.no_grad():  # random weights barely react to 5 cm actions: scale the conditioning
            pred.action_encoder.weight.mul_(30.0)
            pred.state_encoder.weight.mul_(10.0)
        wm = WorldModel(encoder=None, predictor=pred)
        g = torch.Generator().manual_seed(0)
        z0 = normalize_reps(torch.randn(1, 1, cfg.tokens_per_frame, cfg.embed_dim, generator=g))
        s0 = torch.tensor(S0)
        with torch.no_grad():
            z_goal, _ = wm.rollout(z0, s0, torch.tensor([[[0.015, -0.01, 0.0075, 0, 0, 0, 0]] * 2]))
        z_goal = z_goal[:, -1:]
        for label, dtype in dtypes:
            planner = CEM(CEMConfig.official(dtype=dtype, evaluate_plan=False, samples=100, topk=10, iterations=10,
                                             horizon=2))
            box: dict = {}

            def ours(planner=planner, wm=wm, z0=z0, s0=s0, z_goal=z_goal, box=box):
                box["ours"] = planner.plan(wm, z0, s0, z_goal, generator=torch.Generator().manual_seed(0))

            def theirs(dtype=dtype, pred=pred, z0=z0, s0=s0, z_goal=z_goal, box=box):
                history: list = []
                step = released.released_world_model_step(
                    lambda x, a, s: released.released_predictor_forward(pred, x, a, s), pred.config.tokens_per_frame)
                with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                    released.released_cem(z0, s0, z_goal, step, generator=torch.Generator().manual_seed(0),
                                          history=history, horizon=2, samples=100, topk=10, iterations=10,
                                          momentum_mean=0.15, momentum_std=0.15, maxnorm=0.05)
                box["theirs"] = history

            t = _fastest({"ours": ours, "theirs": theirs}, max(1, args.repeats // 3))
            diff = (box["theirs"][-1][0] - box["ours"].history[-1]["mean"]).abs().max().item()
            print(f"| {grid}x{grid} | {label} | {t['theirs']:.3f} | {t['ours']:.3f} | "
                  f"{t['theirs'] / t['ours']:.2f}x | {diff:.1e} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=9, help="interleaved timing rounds (the fastest counts)")
    p.add_argument("--grids", type=int, nargs="+", default=[8, 16], help="token grids of the released-loop table")
    p.add_argument("--embed-dim", type=int, default=192, help="encoder width of the released-loop table's model")
    p.add_argument("--compile", action="store_true", help="add WorldModel.compile_predictor() to table 1")
    p.add_argument("--skip", nargs="*", default=[], choices=["bundled", "released"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cpu = "native bf16 (AVX512-BF16/AMX)" if native_low_precision("cpu") else "no native bf16 (fp32 only)"
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, {cpu}, oneDNN linear: {onednn_available()}")
    if "bundled" not in args.skip:
        bundled_tables(args)
    if "released" not in args.skip:
        released_table(args)


if __name__ == "__main__":
    main()
