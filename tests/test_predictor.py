"""ACPredictor against the official code's test vectors (tests/fixtures/official_ac_small.pt)."""

import pytest
import torch

from vjepa2_ac.model.checkpoint import CheckpointError
from vjepa2_ac.model.predictor import ACPredictor, ACPredictorConfig, build_rope_tables

ATOL = 1e-4


@pytest.fixture(scope="module")
def predictor(official_small):
    p = ACPredictor(ACPredictorConfig(**official_small["predictor_config"])).eval()
    p.load_official_state_dict(official_small["checkpoint"]["predictor"])
    return p


def test_default_config_matches_released_parameter_count():
    with torch.device("meta"):
        p = ACPredictor(ACPredictorConfig())
    assert sum(t.numel() for t in p.parameters()) == 305_220_992
    assert len(p.state_dict()) == 300
    assert p.config.tokens_per_step == 258 and p.config.max_steps == 32


@torch.no_grad()
def test_forward_matches_official(predictor, official_small):
    d = official_small
    out = predictor(d["encoder_tokens"], d["actions"], d["states"])
    torch.testing.assert_close(out, d["predictor_out"], atol=ATOL, rtol=0)
    flat = predictor(d["encoder_tokens"].flatten(1, 2), d["actions"], d["states"])  # official layout
    assert flat.shape == (3, 64, 128)
    torch.testing.assert_close(flat.view_as(out), out, atol=0, rtol=0)


@torch.no_grad()
def test_kv_cache_equals_full_forward(predictor, official_small):
    d = official_small
    full = predictor(d["encoder_tokens"], d["actions"], d["states"])
    for capacity in (4, None):  # preallocated buffers and concatenation
        cache = predictor.new_cache(capacity)
        steps = [predictor(d["encoder_tokens"][:, t:t + 1], d["actions"][:, t:t + 1], d["states"][:, t:t + 1],
                           cache=cache) for t in range(4)]
        torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)
    cache = predictor.new_cache(4)  # prefill 2 steps, then 2 more at once
    first = predictor(d["encoder_tokens"][:, :2], d["actions"][:, :2], d["states"][:, :2], cache=cache)
    rest = predictor(d["encoder_tokens"][:, 2:], d["actions"][:, 2:], d["states"][:, 2:], cache=cache)
    torch.testing.assert_close(torch.cat([first, rest], 1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("capacity", [2, None])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_shared_context_first_step_equals_the_batched_forward(predictor, official_small, capacity, dtype):
    """One frame shared by B action rows (planning): computing its shared tokens once gives the batched result,
    fills the cache identically, and keeps gradients with respect to the actions."""
    d = official_small
    B = 5
    z = d["encoder_tokens"][:1, :1]
    s = d["states"][:1, :1]
    a = (d["actions"][:1, :1] + 0.05 * torch.randn(B, 1, 7, generator=torch.Generator().manual_seed(0)))
    a.requires_grad_(True)
    z2 = d["encoder_tokens"][:1, 1:2].expand(B, -1, -1, -1)
    a2, s2 = d["actions"][:1, 1:2].expand(B, -1, -1), d["states"][:1, 1:2].expand(B, -1, -1)
    results = []
    for shared in (True, False):
        cache = predictor.new_cache(capacity)
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            if shared:
                first = predictor(z, a, s, cache=cache)
            else:
                first = predictor(z.expand(B, -1, -1, -1), a, s.expand(B, -1, -1), cache=cache)
            second = predictor(z2, a2, s2, cache=cache)
        grad, = torch.autograd.grad((first.float().sum() + second.float().sum()), a)
        results.append((first.detach().float(), second.detach().float(), grad, cache.keys[0].detach().float()))
    tol = 1e-5 if dtype is None else 0.1
    for got, want in zip(results[0], results[1]):
        torch.testing.assert_close(got, want, atol=tol * max(1.0, want.abs().max().item()), rtol=0)
    assert first.shape == (B, 1, *d["encoder_tokens"].shape[2:])


@torch.no_grad()
def test_block_causality_is_bit_exact(predictor, official_small):
    d = official_small
    z, a, s = d["encoder_tokens"].clone(), d["actions"].clone(), d["states"].clone()
    ref = predictor(z, a, s)
    for t in range(1, 4):
        z2, a2, s2 = z.clone(), a.clone(), s.clone()
        z2[:, t:] += torch.randn_like(z2[:, t:])
        a2[:, t:] += 1.0
        s2[:, t:] -= 0.5
        out = predictor(z2, a2, s2)
        assert torch.equal(out[:, :t], ref[:, :t]), f"changing step {t} changed earlier outputs"
        assert not torch.allclose(out[:, t], ref[:, t])


def test_rope_tables_reproduce_the_tiled_angle_quirk():
    cos, sin = build_rope_tables(3, 4, 2, 64, dtype=torch.float64)
    d = 20
    theta = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
    # element j of the temporal chunk of step 2 uses angle 2 * theta[j mod 10] (tiled, not interleaved)
    expected = torch.cos(2 * theta.repeat(2))
    torch.testing.assert_close(cos[2, 0, :d], expected)
    torch.testing.assert_close(cos[2, 5, :d], expected)  # patch tokens share the temporal angles
    assert torch.all(cos[:, :2, d:] == 1) and torch.all(sin[:, :2, d:] == 0)  # cond tokens: temporal only
    assert torch.all(cos[:, :, 60:] == 1) and torch.all(sin[:, :, 60:] == 0)  # dims 60-63 never rotated
    # patch token (h=1, w=3) -> index 2 + 1*4 + 3 in the step
    torch.testing.assert_close(cos[0, 2 + 7, d:2 * d], torch.cos(1 * theta.repeat(2)))
    torch.testing.assert_close(cos[0, 2 + 7, 2 * d:3 * d], torch.cos(3 * theta.repeat(2)))


@pytest.mark.parametrize("prefix", ["module.", "module.backbone.", "backbone.", ""])
def test_prefix_variants_load(official_small, prefix):
    sd = {prefix + k.replace("module.", ""): v for k, v in official_small["checkpoint"]["predictor"].items()}
    p = ACPredictor(ACPredictorConfig(**official_small["predictor_config"]))
    p.load_official_state_dict(sd)
    key = "predictor_blocks.1.attn.qkv.weight"
    assert torch.equal(p.state_dict()[key], official_small["checkpoint"]["predictor"]["module." + key])


def test_bad_checkpoints_are_named_and_nothing_is_half_loaded(official_small):
    cfg = ACPredictorConfig(**official_small["predictor_config"])
    good = official_small["checkpoint"]["predictor"]
    p = ACPredictor(cfg)
    before = {k: v.clone() for k, v in p.state_dict().items()}
    missing = {k: v for k, v in good.items() if "fc2.bias" not in k}
    with pytest.raises(CheckpointError, match=r"missing keys \(2\).*predictor_blocks.0.mlp.fc2.bias"):
        p.load_official_state_dict(missing)
    shaped = dict(good)
    shaped["module.predictor_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match=r"predictor_proj.weight: expected \(128, 128\), got \(3, 3\)"):
        p.load_official_state_dict(shaped)
    extra = dict(good)
    extra["module.surprise"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected keys.*surprise"):
        p.load_official_state_dict(extra)
    for k, v in p.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} was modified by a failed load"


def test_bad_inputs(predictor, official_small):
    d = official_small
    z, a, s = d["encoder_tokens"], d["actions"], d["states"]
    with pytest.raises(ValueError, match="actions must have shape"):
        predictor(z, a[..., :6], s)
    with pytest.raises(ValueError, match="states must have shape"):
        predictor(z, a, s[:, :3])
    with pytest.raises(ValueError, match="N=16 tokens per frame and D=128"):
        predictor(z[:, :, :15], a, s)
    with pytest.raises(ValueError, match="exceed the predictor's maximum of 8"):
        predictor(z.repeat(1, 3, 1, 1), a.repeat(1, 3, 1), s.repeat(1, 3, 1))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ACPredictorConfig(predictor_embed_dim=100, num_heads=3)
    with pytest.raises(ValueError, match="use_rope=False is not supported"):
        ACPredictorConfig(use_rope=False)


def test_extrinsics_token_and_non_causal_variants():
    cfg = ACPredictorConfig(img_size=32, patch_size=16, num_frames=8, embed_dim=16, predictor_embed_dim=32, depth=1,
                            num_heads=2, use_extrinsics=True)
    p = ACPredictor(cfg).eval()
    z, a, s, e = torch.randn(2, 3, 4, 16), torch.randn(2, 3, 7), torch.randn(2, 3, 7), torch.randn(2, 3, 6)
    assert p(z, a, s, e).shape == (2, 3, 4, 16)
    with pytest.raises(ValueError, match="extrinsics must have shape"):
        p(z, a, s)
    nc = ACPredictor(ACPredictorConfig(**{**cfg.to_dict(), "is_frame_causal": False, "use_extrinsics": False}))
    nc.eval()
    out = nc(z, a, s)
    z2 = z.clone()
    z2[:, 2] += 1
    assert not torch.allclose(nc(z2, a, s)[:, 0], out[:, 0])  # full attention: the future leaks back


def test_predict_residual_starts_as_copy_and_keeps_cache_and_shared_step_exact(official_small):
    """``predict_residual`` (not official): output = input frame + change; a fresh predictor copies the current
    frame, and the cached, shared-context and full forwards stay equal. It round-trips through the config."""
    d = official_small
    cfg = ACPredictorConfig(**{**official_small["predictor_config"], "predict_residual": True})
    assert ACPredictorConfig.from_dict(cfg.to_dict()) == cfg
    torch.manual_seed(0)
    pred = ACPredictor(cfg).eval()
    z, a, s = d["encoder_tokens"], d["actions"], d["states"]
    with torch.no_grad():
        torch.testing.assert_close(pred(z, a, s), z, atol=0, rtol=0)  # zero-initialised projection: a copy
        torch.nn.init.normal_(pred.predictor_proj.weight, std=0.02)
        full = pred(z, a, s)
        assert (full - z).abs().mean() > 1e-3
        base = ACPredictor(ACPredictorConfig(**official_small["predictor_config"])).eval()
        base.load_state_dict(pred.state_dict())
        torch.testing.assert_close(full, base(z, a, s) + z, atol=1e-6, rtol=0)
        cache = pred.new_cache(4)
        steps = [pred(z[:, t:t + 1], a[:, t:t + 1], s[:, t:t + 1], cache=cache) for t in range(4)]
        torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)
        B = 3
        shared = pred(z[:1, :1], a[:1, :1].expand(B, -1, -1), s[:1, :1], cache=pred.new_cache(2))
        torch.testing.assert_close(shared, full[:1, :1].expand(B, -1, -1, -1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="predict_residual"):
        ACPredictorConfig(predict_residual=1)
