"""What the finiteness checks cost a plan: one CEM plan of a model's planning.json (reach, first phase), against the
same checks run alone on tensors of the plan's shapes (the planner's inputs once; per world-model call the context
latents and the energies, twice: the world model's and the planner's). Prints a table; the target is under 1%.

    python benchmarks/bench_finite_checks.py [--model vjepa2-ac-sim-small] [--repeats 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from planners.common import check_inputs, resolve_dtype  # noqa: E402
from vjepa2_ac.agent import build_planner, load_world_model, make_env  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vjepa2-ac-sim-small")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    wm, planning, _ = load_world_model(args.model)
    env = make_env(planning, "reach")
    obs, info = env.reset(seed=1000)
    env.close()
    planner = build_planner(planning, planning.task("reach").phases[0])
    cfg = planner.config
    z = wm.encode(np.stack([obs["pixels"], info["goals"]["final"]]))
    z0, z_goal = z[:, :1], z[:, 1:]
    s0 = torch.as_tensor(obs["agent_pos"])[None, None]
    gen = torch.Generator()

    def plan() -> None:
        gen.manual_seed(0)
        planner.plan(wm, z0, s0, z_goal, generator=gen)

    calls = cfg.iterations + (1 if cfg.evaluate_plan else 0)  # rollout_energy calls per plan
    energies = torch.rand(cfg.samples)
    context = z0.expand(cfg.samples, -1, -1, -1)

    def checks() -> None:
        check_inputs(z0, s0, z_goal, None)
        for _ in range(calls):
            wm._check_latents(context, "z0")
            bool(torch.isfinite(energies).all())
            bool((~torch.isfinite(energies)).any())

    plan()  # warm-up
    t_plan, t_checks = best_of(plan, args.repeats), best_of(checks, args.repeats * 5)
    dtype = resolve_dtype(cfg.dtype, z0.device)
    cpu = "AVX512-BF16" if torch.cpu._is_avx512_bf16_supported() else "AVX2 only"
    print(f"model {args.model}; CEM {cfg.samples} samples x {cfg.iterations} iterations, horizon {cfg.horizon}, "
          f"dtype {dtype or torch.float32}; {args.threads} thread(s); CPU: {cpu}")
    print("| one plan (s) | its finiteness checks (s) | overhead |")
    print("|---|---|---|")
    print(f"| {t_plan:.4f} | {t_checks:.6f} | {100 * t_checks / t_plan:.2f}% |")


if __name__ == "__main__":
    main()
