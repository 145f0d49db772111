"""The predictor's CPU inference kernels (vjepa2_ac.model.kernels): the same plans as before them, the same numbers
as the plain PyTorch ops, and the plain ops wherever a gradient, another device or torch.compile is involved."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from planners import CEM, CEMConfig, rollout_energy
from vjepa2_ac import ACPredictor, ACPredictorConfig
from vjepa2_ac.model import kernels
from vjepa2_ac.model.kernels import Linear, attention, fast_kernels

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_plan_reference import PLANNERS, context  # noqa: E402

needs_onednn = pytest.mark.skipif(not kernels.onednn_available(), reason="torch built without oneDNN")


@pytest.fixture(scope="module")
def bundled():
    from vjepa2_ac.agent import load_world_model

    torch.set_num_threads(1)
    wm, _, _ = load_world_model("vjepa2-ac-sim-small")
    return wm.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def reference():
    """Plans of the code before the kernels (tests/fixtures/README.md, plans_reference.pt)."""
    return torch.load(FIXTURES / "plans_reference.pt", weights_only=True)["bundled"]


def _replan(wm, ref):
    kw = dict(PLANNERS[ref["planner"]][0])
    preset = kw.pop("preset")
    dtype = None if ref["dtype"] == "fp32" else torch.bfloat16
    z0, s0 = context(wm, ref["case"])
    planner = CEM(getattr(CEMConfig, preset)(dtype=dtype, **kw))
    plan = planner.plan(wm, z0, s0, ref["z_goal"], generator=torch.Generator().manual_seed(100 + ref["case"]))
    return plan, z0, s0


def test_fp32_plans_are_the_same_bit_for_bit(bundled, reference):
    """Plans are means of elite samples: rounding differences in the energies (oneDNN vs MKL, ~1e-7 relative) do
    not change them; they stay the same under 1e-6 relative noise on every energy (checked when this was written)."""
    checked = 0
    for ref in reference:
        if ref["dtype"] != "fp32":
            continue
        plan, _, _ = _replan(bundled, ref)
        assert torch.equal(plan.actions, ref["actions"]), (ref["case"], ref["planner"])
        assert torch.equal(plan.history[-1]["mean"], ref["final_mean"]), (ref["case"], ref["planner"])
        assert plan.energy == pytest.approx(ref["energy"], rel=1e-5)
        checked += 1
    assert checked == 6


def test_bf16_plans_are_as_good_as_before(bundled, reference):
    """bf16 rounds differently (fused GELU, attention scores in bf16, AMX or AVX-512 accumulation): the plans' arm
    commands (translation; rotation is not searched) stay within 2 cm of the old bf16 plans (7 mm on the AMD CPU
    that made them, 3 mm on an Intel Xeon with AMX), their gripper commands within 0.1 of the [-1, 1] range (the
    energy barely depends on it, so CEM's mean wanders: 0.03-0.07 on the Xeon), and their fp32 energy is no worse
    than the old bf16 plan's."""
    for ref in reference:
        if ref["dtype"] != "bf16":
            continue
        plan, z0, s0 = _replan(bundled, ref)
        diff = (plan.actions - ref["actions"]).abs()
        assert diff[..., :6].max() < 0.02 and diff[..., 6].max() < 0.1, (ref["case"], ref["planner"], diff)

        def energy(actions, z0=z0, s0=s0, ref=ref):
            return float(rollout_energy(bundled, z0, s0, ref["z_goal"], actions[None]))

        assert energy(plan.actions) <= max(1.1 * energy(ref["actions"]), energy(ref["actions"]) + 1e-3)


def _tiny_predictor(**kw) -> ACPredictor:
    torch.manual_seed(0)
    cfg = ACPredictorConfig(img_size=64, patch_size=16, embed_dim=64, predictor_embed_dim=128, depth=2, num_heads=2,
                            **kw)
    return ACPredictor(cfg).eval()


@needs_onednn
@pytest.mark.parametrize("shape", [(5, 128), (3, 7, 128), (2, 3, 4, 128)])
def test_linear_matches_f_linear(shape):
    torch.manual_seed(0)
    layer = Linear(128, 96)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = F.linear(x, layer.weight, layer.bias)
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(layer(x, gelu=True), F.gelu(expected), rtol=1e-5, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = layer(x)
            plain = F.linear(x, layer.weight, layer.bias)
        assert fast.dtype == plain.dtype == torch.bfloat16
        torch.testing.assert_close(fast, plain, rtol=1.6e-2, atol=1e-2)  # bit-equal where F.linear uses oneDNN too
        with fast_kernels(False):
            assert torch.equal(layer(x), expected)


@needs_onednn
def test_linear_bf16_weight_cache_follows_the_parameters():
    torch.manual_seed(0)
    layer = Linear(16, 8)
    x = torch.randn(4, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = layer(x)
        layer.weight.mul_(2.0)  # in place: the cast must be redone
        after = layer(x)
        plain_after = F.linear(x, layer.weight, layer.bias)
        layer.weight = torch.nn.Parameter(torch.randn(8, 16))  # replaced
        replaced = layer(x)
        plain = F.linear(x, layer.weight, layer.bias)
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, plain_after, rtol=1.6e-2, atol=1e-2)
    torch.testing.assert_close(replaced, plain, rtol=1.6e-2, atol=1e-2)


def test_gradients_take_the_plain_ops():
    pred = _tiny_predictor().train()
    z = torch.randn(2, 2, 16, 64)
    actions = torch.randn(2, 2, 7, requires_grad=True)
    states = torch.randn(2, 2, 7)
    out = pred(z, actions, states)
    out.square().mean().backward()
    assert actions.grad is not None and pred.predictor_blocks[0].mlp.fc1.weight.grad is not None
    with fast_kernels(False):
        plain = pred(z, actions, states)
    assert torch.equal(out, plain)


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_predictor_matches_the_plain_ops(dtype):
    pred = _tiny_predictor().requires_grad_(False)
    z = torch.randn(3, 2, 16, 64)
    actions, states = torch.randn(3, 2, 7), torch.randn(3, 2, 7)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        fast = pred(z, actions, states).float()
        cache = pred.new_cache(2)
        stepped = torch.cat([pred(z[:, t:t + 1], actions[:, t:t + 1], states[:, t:t + 1], cache=cache)
                             for t in range(2)], dim=1).float()
        with fast_kernels(False):
            plain = pred(z, actions, states).float()
    tol = 1e-5 if dtype is None else 0.05 * plain.abs().max().item()
    torch.testing.assert_close(fast, plain, rtol=0, atol=tol)
    torch.testing.assert_close(stepped, plain, rtol=0, atol=tol)


def test_attention_bf16_path_and_fallbacks():
    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 2, 66, 64) for _ in range(3))
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
    with torch.no_grad():
        torch.testing.assert_close(attention(q, k, v), ref, rtol=0, atol=0)  # fp32: the SDPA kernel itself
        fast = attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
        assert fast.shape == (4, 66, 128) and fast.dtype == torch.bfloat16
        assert (fast.float() - ref).abs().max() < 0.05
        k2, v2 = torch.randn(4, 2, 132, 64).bfloat16(), torch.randn(4, 2, 132, 64).bfloat16()  # cached keys
        expected = F.scaled_dot_product_attention(q.bfloat16().float(), k2.float(), v2.float())
        assert (attention(q.bfloat16(), k2, v2).float() - expected.transpose(1, 2).flatten(2)).abs().max() < 0.05
        mask = torch.ones(66, 66, dtype=torch.bool).tril()
        masked = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask)
        sdpa = F.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), attn_mask=mask)
        assert torch.equal(masked, sdpa.transpose(1, 2).flatten(2))
