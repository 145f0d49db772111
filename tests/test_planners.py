"""Planners on analytic world models with a known optimum, constraints, seeding, and the released-code oracle."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from planners import (
    CEM,
    ICEM,
    MPPI,
    ActionSpace,
    CEMConfig,
    GradientConfig,
    GradientPlanner,
    ICEMConfig,
    MPPIConfig,
    Plan,
    Planner,
    WorldModelLike,
    check_actions,
    clip_box,
    colored_noise,
    project_l1_ball,
)
from planners.analytic import PoseLinearWorldModel, PredictorWorldModel
from vjepa2_ac.model.pose import compute_new_pose

torch.set_num_threads(1)

S0 = torch.tensor([[[0.5, 0.0, 0.3, 3.0, 0.1, -1.9, 0.0]]])


def _released():
    path = Path(__file__).resolve().parent / "released_reference.py"
    spec = importlib.util.spec_from_file_location("released_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _apply(actions: torch.Tensor, s0: torch.Tensor = S0) -> torch.Tensor:
    state = s0[0, -1].double()
    for a in actions:
        state = compute_new_pose(state, a.double())
    return state.float()


def _problem(wm: PoseLinearWorldModel, target_actions: list[list[float]]):
    goal_state = _apply(torch.tensor(target_actions))
    return wm.latent(S0), wm.latent(goal_state)[None, None], goal_state


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- constraints ------------------------------------------------------------------------------------------
finite = st.floats(-1.0, 1.0, allow_nan=False, width=64)


@settings(max_examples=200, deadline=None)
@given(x=arrays("float64", st.integers(1, 6), elements=finite), radius=st.floats(1e-3, 2.0))
def test_l1_projection_is_the_nearest_point_of_the_ball(x, radius):
    x = torch.from_numpy(x)
    y = project_l1_ball(x, radius)
    assert y.abs().sum() <= radius * (1 + 1e-9) + 1e-12
    if x.abs().sum() <= radius:
        assert torch.equal(y, x)
    # Optimality certificate: <x - y, z - y> <= 0 for every z in the ball; the max over z is attained at a
    # vertex +-r e_i, so it equals r * ||x - y||_inf - <x - y, y>.
    r = x - y
    assert radius * r.abs().max() - (r * y).sum() <= 1e-9
    torch.testing.assert_close(project_l1_ball(y, radius), y, rtol=0, atol=1e-12)  # idempotent


def test_l1_projection_is_batched_and_matches_rowwise():
    x = torch.randn(5, 4, 3, generator=_gen(1), dtype=torch.float64) * 0.2
    y = project_l1_ball(x, 0.075)
    rows = torch.stack([project_l1_ball(row, 0.075) for row in x.reshape(-1, 3)]).reshape(x.shape)
    torch.testing.assert_close(y, rows, rtol=0, atol=0)
    with pytest.raises(ValueError, match="radius"):
        project_l1_ball(x, 0.0)


@settings(max_examples=100, deadline=None)
@given(x=arrays("float32", st.integers(1, 8), elements=st.floats(-5, 5, width=32)), bound=st.floats(0.0, 1.0))
def test_box_clip_range_and_identity_inside(x, bound):
    x = torch.from_numpy(x)
    y = clip_box(x, bound)
    assert (y.abs() <= torch.tensor(bound, dtype=torch.float32)).all()
    inside = x.abs() <= bound
    assert torch.equal(y[inside], x[inside])


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), constraint=st.sampled_from(["box", "l1_ball"]), rotation=st.booleans())
def test_action_space_projection_respects_every_constraint(seed, constraint, rotation):
    space = ActionSpace(constraint=constraint, maxnorm=0.05, search_rotation=rotation, rotation_maxnorm=0.1)
    a = torch.randn(64, 3, space.size, generator=_gen(seed)) * 0.5
    full = space.to_full(space.project(a))
    assert full.shape == (64, 3, 7)
    check_actions(full, space)
    if not rotation:
        assert torch.equal(full[..., 3:6], torch.zeros_like(full[..., 3:6]))


def test_action_space_axis_and_close_gripper():
    space = ActionSpace(axis={2: 0.01, 6: 0.0}, close_gripper=1)
    full = space.to_full(space.project(torch.randn(10, 3, 4, generator=_gen(0))))
    assert (full[..., 2] == 0.01).all() and (full[:, 0, 6] == 0).all() and (full[:, 1:, 6] == 1.0).all()
    with pytest.raises(ValueError, match="used 3 for the gripper"):
        ActionSpace(axis={3: 0.0})
    with pytest.raises(ValueError, match="constraint"):
        ActionSpace(constraint="ball")
    with pytest.raises(ValueError, match="exceed"):
        check_actions(torch.tensor([[0.0, 0, 0, 0, 0, 0, 0.9]]), ActionSpace())


def test_action_space_open_gripper():
    space = ActionSpace(open_gripper=1)
    full = space.to_full(space.project(torch.randn(10, 3, 4, generator=_gen(0))))
    assert (full[:, 1:, 6] == -1.0).all() and (full[:, 0, 6].abs() <= 0.75).all()
    check_actions(full, space)  # the forced -1 steps are not held to gripper_max
    assert space.forced_gripper == (1, -1.0) and ActionSpace(close_gripper=0).forced_gripper == (0, 1.0)
    assert ActionSpace().forced_gripper is None
    with pytest.raises(ValueError, match="at most one of close_gripper and open_gripper"):
        ActionSpace(close_gripper=0, open_gripper=1)
    with pytest.raises(ValueError, match="open_gripper must be None or an int >= 0"):
        ActionSpace(open_gripper=-1)
    with pytest.raises(ValueError, match="close_gripper must be None or an int >= 0"):
        ActionSpace(close_gripper=0.5)
    assert ActionSpace(close_gripper=np.int64(1)).forced_gripper == (1, 1.0)  # numpy ints are horizon steps too


# -- configs ----------------------------------------------------------------------------------------------
def test_official_and_paper_settings():
    off = CEMConfig.official()
    assert (off.samples, off.topk, off.iterations, off.horizon, off.maxnorm) == (400, 10, 10, 2, 0.05)
    assert (off.momentum_mean, off.momentum_std, off.momentum_mean_gripper, off.momentum_std_gripper) == (0.15,) * 4
    assert off.constraint == "box" and not off.search_rotation and off.gripper_round == 0.25 and off.gripper_std == 1.0
    paper = CEMConfig.paper()
    assert (paper.samples, paper.topk, paper.iterations, paper.horizon) == (800, 10, 10, 1)
    assert (paper.constraint, paper.maxnorm) == ("l1_ball", 0.075)
    assert CEMConfig.official(samples=100).samples == 100 and CEMConfig.paper(horizon=2).horizon == 2
    with pytest.raises(TypeError, match="unknown CEMConfig field"):
        CEMConfig.official(sample=100)
    for bad in (dict(topk=1), dict(samples=5, topk=10), dict(momentum_mean=1.5), dict(energy="mean"), dict(horizon=0)):
        with pytest.raises(ValueError):
            CEMConfig.official(**bad)
    with pytest.raises(ValueError, match="temperature"):
        MPPIConfig(temperature=0.0)
    with pytest.raises(ValueError, match="dtype"):
        ICEMConfig(dtype=torch.int8)


def test_protocols_are_satisfied():
    assert isinstance(PoseLinearWorldModel(), WorldModelLike)
    for planner in (CEM(), MPPI(), ICEM(), GradientPlanner()):
        assert isinstance(planner, Planner)


# -- oracle: the released algorithm ------------------------------------------------------------------------
class ToyPredictor(torch.nn.Module):
    """Deterministic block-causal predictor with the official forward signature (uses frames, actions, states)."""

    def __init__(self, dim: int = 16, tokens: int = 4) -> None:
        super().__init__()
        g = _gen(1)
        self.tokens = tokens
        self.mix = torch.nn.Parameter(torch.randn(dim, dim, generator=g) / dim**0.5)
        self.act = torch.nn.Parameter(torch.randn(7, dim, generator=g) * 5)
        self.state = torch.nn.Parameter(torch.randn(7, dim, generator=g))

    def forward(self, x: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        t = length // self.tokens
        frames = x.view(b, t, self.tokens, d)
        causal_mean = frames.cumsum(1) / torch.arange(1, t + 1).view(1, t, 1, 1)
        cond = (actions @ self.act + states @ self.state)[:, :, None]
        return torch.tanh(causal_mean @ self.mix + cond).flatten(1, 2)


@pytest.mark.parametrize(
    "options",
    [{}, {"close_gripper": 1}, {"axis": {2: 0.01}}, {"axis": {6: 0.0}}, {"momentum_std": 0.75, "maxnorm": 0.075}],
    ids=["default", "close_gripper", "axis_z", "axis_gripper", "notebook_momenta"],
)
def test_official_cem_reproduces_released_means_and_stds_bit_for_bit(options):
    released = _released()
    predictor = ToyPredictor().requires_grad_(False)
    g = _gen(0)
    z0 = torch.nn.functional.layer_norm(torch.randn(1, 1, 4, 16, generator=g), (16,))
    zg = torch.nn.functional.layer_norm(torch.randn(1, 1, 4, 16, generator=g), (16,))
    s0 = torch.tensor([[[0.58, -0.002, 0.2476, -3.0666, 0.0305, -1.9128, 0.3]]])
    released_kw = dict(options)
    if "axis" in options:  # the released code indexes its 4-vector: gripper 3
        released_kw["axis"] = {(3 if k == 6 else k): v for k, v in options["axis"].items()}
    history: list = []
    with torch.no_grad():
        ref = released.released_cem(
            z0, s0, zg, released.released_world_model_step(predictor, 4), horizon=2, iterations=4,
            momentum_mean=0.15, momentum_std=released_kw.pop("momentum_std", 0.15), samples=40, topk=10,
            maxnorm=released_kw.pop("maxnorm", 0.05), generator=_gen(3), history=history, **released_kw,
        )  # fmt: skip
    cfg = CEMConfig.official(samples=40, iterations=4, **options)
    plan = CEM(cfg).plan(PredictorWorldModel(predictor), z0, s0, zg, generator=_gen(3))
    assert len(history) == len(plan.history) == 4
    for (mean, std), ours in zip(history, plan.history):
        assert torch.equal(mean, ours["mean"]) and torch.equal(std, ours["std"])
    assert torch.equal(ref, plan.actions)


def test_released_port_pose_update_matches_torch_pose():
    released = _released()
    pose = torch.tensor([[[0.58, -0.002, 0.2476, -3.0666, 0.0305, -1.9128, 0.3]]], dtype=torch.float64).repeat(5, 1, 1)
    action = torch.randn(5, 1, 7, generator=_gen(2), dtype=torch.float64) * 0.1
    torch.testing.assert_close(released.released_compute_new_pose(pose, action), compute_new_pose(pose, action), rtol=0, atol=1e-12)


# -- planners reach the known optimum -----------------------------------------------------------------------
REACH_H2 = [[0.04, -0.03, 0.05, 0, 0, 0, 0.0], [0.03, 0.02, -0.01, 0, 0, 0, 0.0]]
REACH_H1_L1 = [[0.03, -0.02, 0.015, 0, 0, 0, 0.0]]  # |.|_1 = 0.065 < 0.075
REACH_ROT = [[0.04, -0.03, 0.05, 0.05, -0.03, 0.02, 0.0], [0.03, 0.02, -0.01, 0.0, 0.05, 0.0, 0.0]]

PLANNERS = {  # name: (planner class, config factory, default settings, target actions, tolerance on the pose)
    "cem_official": (CEM, CEMConfig.official, {}, REACH_H2, 2e-3),
    "cem_paper": (CEM, CEMConfig.paper, {}, REACH_H1_L1, 1e-3),
    "cem_rotation": (CEM, CEMConfig.official, {"search_rotation": True}, REACH_ROT, 5e-3),
    "mppi": (MPPI, MPPIConfig, {"horizon": 1, "maxnorm": 0.075, "constraint": "l1_ball"}, REACH_H1_L1, 1e-3),
    "icem": (ICEM, ICEMConfig, {"horizon": 2, "iterations": 15}, REACH_H2, 1e-2),
    "gradient": (GradientPlanner, GradientConfig, {"horizon": 2, "iterations": 60, "restarts": 4}, REACH_H2, 2e-3),
}


def _make(name: str, **overrides):
    cls, config, defaults, target, tol = PLANNERS[name]
    return cls(config(**{**defaults, **overrides})), target, tol


@pytest.mark.parametrize("name", PLANNERS)
def test_planner_reaches_the_goal_pose(name):
    planner, target, tol = _make(name)
    wm = PoseLinearWorldModel()
    z0, zg, goal_state = _problem(wm, target)
    plan = planner.plan(wm, z0, S0, zg, generator=_gen(0))
    assert isinstance(plan, Plan) and plan.actions.shape == (len(target), 7) and plan.actions.dtype == torch.float32
    reached = _apply(plan.actions)
    assert (reached[:6] - goal_state[:6]).abs().max() < tol, (plan.actions, goal_state)
    assert plan.energy < 0.01 and math.isfinite(plan.energy)
    assert plan.history, "per-iteration history missing"


@pytest.mark.parametrize("name", PLANNERS)
def test_same_seed_same_plan_bit_for_bit(name):
    wm = PoseLinearWorldModel()
    z0, zg, _ = _problem(wm, PLANNERS[name][3])
    a = _make(name, iterations=3)[0].plan(wm, z0, S0, zg, generator=_gen(7))
    b = _make(name, iterations=3)[0].plan(wm, z0, S0, zg, generator=_gen(7))
    c = _make(name, iterations=3)[0].plan(wm, z0, S0, zg, generator=_gen(8))
    assert torch.equal(a.actions, b.actions) and a.energy == b.energy
    assert not torch.equal(a.history[-1]["energies"], c.history[-1]["energies"])  # the seed is used


@pytest.mark.parametrize("name", PLANNERS)
@pytest.mark.parametrize("constraint", ["box", "l1_ball"])
def test_every_evaluated_sample_satisfies_the_constraints(name, constraint):
    planner, target, _ = _make(name, iterations=3, constraint=constraint)
    wm = PoseLinearWorldModel(record=True)
    z0, zg, _ = _problem(wm, [[0.3, -0.3, 0.3, 0.0, 0.0, 0.0, 1.0]] * len(target))  # goal far outside the bounds
    plan = planner.plan(wm, z0, S0, zg, generator=_gen(0))
    assert wm.calls
    for actions in wm.calls:
        check_actions(actions, planner.space)
    check_actions(plan.actions[None], planner.space)


def test_sum_energy_reaches_the_goal_early():
    wm = PoseLinearWorldModel()
    z0, zg, goal_state = _problem(wm, [[0.03, -0.02, 0.04, 0, 0, 0, 0.0]])  # reachable in one step
    plan = CEM(CEMConfig.official(energy="sum", iterations=15)).plan(wm, z0, S0, zg, generator=_gen(0))
    assert (_apply(plan.actions[:1])[:3] - goal_state[:3]).abs().max() < 2e-3
    assert plan.actions[1, :3].abs().max() < 2e-3


def test_close_gripper_and_gripper_rounding():
    wm = PoseLinearWorldModel()
    z0, zg, _ = _problem(wm, REACH_H2)
    plan = CEM(CEMConfig.official(close_gripper=1, samples=100)).plan(wm, z0, S0, zg, generator=_gen(0))
    g = plan.actions[:, 6]
    assert ((g == 0) | (g.abs() >= 0.25)).all()
    assert plan.history[-1]["mean"][1, 3] > 0.9  # forced dg = 1 pulls the step-1 gripper mean to 1


def test_open_gripper_pulls_the_plan_to_open():
    wm = PoseLinearWorldModel()
    z0, zg, goal_state = _problem(wm, REACH_H2)
    plan = CEM(CEMConfig.official(open_gripper=0, samples=100, iterations=15)).plan(wm, z0, S0, zg, generator=_gen(0))
    assert (plan.actions[:, 6] < -0.9).all()  # forced dg = -1 from step 0: the executed action opens
    assert (_apply(plan.actions)[:3] - goal_state[:3]).abs().max() < 5e-3  # xyz is still searched to the goal


def test_warm_start_shifts_the_previous_plan():
    wm = PoseLinearWorldModel()
    z0, zg, _ = _problem(wm, REACH_H2)
    planner = CEM(CEMConfig.official(warm_start=True, samples=100))
    plan = planner.plan(wm, z0, S0, zg, generator=_gen(0))
    mean, _ = planner.initial_distribution(z0.device)
    assert torch.equal(mean[0], plan.history[-1]["mean"][1]) and torch.equal(mean[1], torch.zeros(4))
    planner.reset()
    assert torch.equal(planner.initial_distribution(z0.device)[0], torch.zeros(2, 4))


def test_context_with_several_frames_needs_the_known_actions():
    wm = PoseLinearWorldModel(record=True)
    z0, zg, _ = _problem(wm, REACH_H2)
    s_prev = torch.tensor([[[0.49, 0.0, 0.3, 3.0, 0.1, -1.9, 0.0]]])
    z_ctx, s_ctx = torch.cat([wm.latent(s_prev), z0], 1), torch.cat([s_prev, S0], 1)
    known = torch.tensor([[[0.01, 0, 0, 0, 0, 0, 0]]])
    with pytest.raises(ValueError, match="context_actions"):
        CEM(CEMConfig.official(samples=20)).plan(wm, z_ctx, s_ctx, zg)
    plan = CEM(CEMConfig.official(samples=100)).plan(wm, z_ctx, s_ctx, zg, context_actions=known, generator=_gen(0))
    assert wm.calls[0].shape == (100, 3, 7) and torch.equal(wm.calls[0][:, 0], known[0].expand(100, 7))
    assert plan.energy < 0.01


def test_bad_inputs_raise_clear_errors():
    wm = PoseLinearWorldModel()
    z0, zg, _ = _problem(wm, REACH_H2)
    cem = CEM(CEMConfig.official(samples=20))
    with pytest.raises(ValueError, match="z0"):
        cem.plan(wm, z0[0], S0, zg)
    with pytest.raises(ValueError, match="s0"):
        cem.plan(wm, z0, S0[..., :6], zg)
    with pytest.raises(ValueError, match="z_goal"):
        cem.plan(wm, z0, S0, zg[:, :, :2])


def test_bf16_autocast_plans_close_to_fp32():
    wm = PoseLinearWorldModel()
    z0, zg, goal_state = _problem(wm, REACH_H1_L1)
    plan = CEM(CEMConfig.paper(dtype=torch.bfloat16)).plan(wm, z0, S0, zg, generator=_gen(0))
    assert (_apply(plan.actions)[:3] - goal_state[:3]).abs().max() < 5e-3


def test_gradient_planner_leaves_world_model_parameters_without_grad():
    predictor = ToyPredictor()
    wm = PredictorWorldModel(predictor)
    g = _gen(0)
    z0 = torch.nn.functional.layer_norm(torch.randn(1, 1, 4, 16, generator=g), (16,))
    zg = torch.nn.functional.layer_norm(torch.randn(1, 1, 4, 16, generator=g), (16,))
    plan = GradientPlanner(GradientConfig(iterations=5, restarts=2)).plan(wm, z0, S0, zg, generator=_gen(0))
    assert all(p.grad is None for p in predictor.parameters())
    assert plan.history[-1]["best_energy"] <= plan.history[0]["energies"][0]


def test_colored_noise_statistics():
    white = colored_noise(4000, 16, 2, beta=0.0, generator=_gen(0))
    pink = colored_noise(4000, 16, 2, beta=2.0, generator=_gen(0))
    assert white.shape == pink.shape == (4000, 16, 2)
    for noise, lo, hi in ((white, -0.05, 0.05), (pink, 0.5, 1.0)):
        assert abs(noise.std().item() - 1.0) < 0.1
        lag1 = (noise[:, 1:] * noise[:, :-1]).mean() / noise.var()
        assert lo < lag1 < hi, lag1
    assert torch.equal(colored_noise(3, 1, 4, 2.0, generator=_gen(1)), torch.randn(3, 1, 4, generator=_gen(1)))


@pytest.mark.parametrize("native", [False, True])
def test_auto_dtype_uses_bf16_only_where_the_cpu_has_it(native, monkeypatch):
    """``dtype="auto"`` plans exactly like the dtype it resolves to: bf16 on a CPU with AVX512-BF16/AMX, float32 on
    one without (where bf16 autocast is several times slower than fp32)."""
    from planners import native_low_precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    expected = torch.bfloat16 if native else None
    assert native_low_precision(torch.device("cpu")) == expected
    wm = PoseLinearWorldModel()
    z0, zg, _ = _problem(wm, REACH_H1_L1)
    auto = CEM(CEMConfig.paper(dtype="auto", samples=64, iterations=3)).plan(wm, z0, S0, zg, generator=_gen(0))
    fixed = CEM(CEMConfig.paper(dtype=expected, samples=64, iterations=3)).plan(wm, z0, S0, zg, generator=_gen(0))
    assert torch.equal(auto.actions, fixed.actions)
    with pytest.raises(ValueError, match="dtype"):
        CEMConfig.paper(dtype="fast")
