"""Planners on the real ``WorldModel`` (KV-cached rollout) with the official-code test predictor weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from planners import CEM, MPPI, CEMConfig, GradientConfig, GradientPlanner, MPPIConfig, WorldModelLike

torch.set_num_threads(1)


def _released():
    path = Path(__file__).resolve().parent / "released_reference.py"
    spec = importlib.util.spec_from_file_location("released_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small_world(official_small):
    from vjepa2_ac import ACPredictor, ACPredictorConfig, WorldModel

    pred = ACPredictor(ACPredictorConfig(**official_small["predictor_config"]))
    pred.load_official_state_dict(official_small["checkpoint"]["predictor"])
    wm = WorldModel(encoder=None, predictor=pred.eval().requires_grad_(False))
    tokens = official_small["encoder_tokens"][0]  # [T, N, D], normalised
    s0 = official_small["states_real"][:1].float()[None]  # [1, 1, 7]
    return wm, tokens[None, :1], s0, tokens[None, 1:2]


def test_world_model_satisfies_the_protocol(small_world):
    assert isinstance(small_world[0], WorldModelLike)


def test_official_cem_on_world_model_matches_the_released_loop(small_world):
    wm, z0, s0, z_goal = small_world
    released = _released()
    history: list = []
    with torch.no_grad():
        step = released.released_world_model_step(
            lambda x, a, s: released.released_predictor_forward(wm.predictor, x, a, s), wm.tokens_per_frame)
        args = {**released.RELEASED_WORLD_MODEL_ARGS, "samples": 40, "iterations": 4}
        ref = released.released_cem(z0, s0, z_goal, step, generator=torch.Generator().manual_seed(0), history=history,
                                    **args)
    plan = CEM(CEMConfig.official(samples=40, iterations=4)).plan(
        wm, z0, s0, z_goal, generator=torch.Generator().manual_seed(0)
    )
    for (mean, std), ours in zip(history, plan.history):  # KV cache + float32 poses: equal up to rounding
        torch.testing.assert_close(ours["mean"], mean, rtol=0, atol=1e-5)
        torch.testing.assert_close(ours["std"], std, rtol=0, atol=1e-5)
    torch.testing.assert_close(plan.actions, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "planner",
    [
        CEM(CEMConfig.paper(samples=64, iterations=4)),
        MPPI(MPPIConfig(samples=64, iterations=4)),
        GradientPlanner(GradientConfig(iterations=4, restarts=2)),
    ],
    ids=["cem_paper", "mppi", "gradient"],
)
def test_planners_improve_on_the_zero_plan(small_world, planner):
    from planners import rollout_energy

    wm, z0, s0, z_goal = small_world
    zero = rollout_energy(wm, z0, s0, z_goal, torch.zeros(1, planner.config.horizon, 7))
    plan = planner.plan(wm, z0, s0, z_goal, generator=torch.Generator().manual_seed(0))
    assert plan.energy < float(zero[0])


def test_bf16_with_fp32_rescoring_keeps_the_official_landscape_argmin(small_world, official_small):
    """The fixture landscape is flat to 2e-6 between its two best actions while bf16 rounding is ~1e-4: plain bf16
    may reorder them; re-scoring the best 10% in float32 recovers the official argmin."""
    from planners import rollout_energy

    wm, z0, s0, z_goal = small_world
    actions = official_small["landscape_actions"][:, None]
    with torch.no_grad():
        energies = rollout_energy(wm, z0, s0, z_goal, actions, dtype=torch.bfloat16, rescore=13)
        fp32 = rollout_energy(wm, z0, s0, z_goal, actions)
    assert energies.argmin() == official_small["landscape_energy"].argmin()
    torch.testing.assert_close(energies.min(), fp32.min(), rtol=0, atol=1e-6)  # the winner carries its fp32 energy
    with pytest.raises(ValueError, match="rescore must be >= 0"):
        CEMConfig.official(rescore=-1)
