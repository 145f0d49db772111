"""Encoder pretraining: 3D multi-block masks, a context encoder that really drops masked tokens (RoPE positions
kept), the predictor over HF submodules, EMA, loss decrease, HF-layout result, bit-exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import VJEPA2Config, VJEPA2Model

from vjepa2_ac.data import write_episode
from vjepa2_ac.training import pretrain as pretrain_module
from vjepa2_ac.training.config import PretrainConfig
from vjepa2_ac.training.pretrain import (
    JEPAObjective,
    MaskSpec,
    context_encoder_forward,
    ema_update,
    mask_indices,
    multiblock_masks,
    predictor_forward,
    pretrain,
    sample_multiblock,
)

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, crop_size=32, patch_size=8,
            pred_hidden_size=16, pred_num_hidden_layers=1, pred_num_attention_heads=2)


def tiny_model(seed: int = 0, **kw) -> VJEPA2Model:
    torch.manual_seed(seed)
    model = VJEPA2Model(VJEPA2Config(**{**TINY, **kw}))
    with torch.no_grad():  # sharpen attention so that positions and context visibly matter
        for layer in model.encoder.layer:
            layer.attention.query.weight.mul_(8)
            layer.attention.key.weight.mul_(8)
    return model.eval()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("episodes")
    rng = np.random.default_rng(0)
    for e in range(4):
        T = 12
        states = np.zeros((T, 7))
        pos = rng.integers(0, 24, (T, 2))
        frames = np.full((T, 32, 32, 3), 30, dtype=np.uint8)
        for t in range(T):
            frames[t, pos[t, 0]:pos[t, 0] + 8, pos[t, 1]:pos[t, 1] + 8] = (220, 180, 60)
        write_episode(root / f"episode_{e:06d}.h5", frames, states, metadata={"control_hz": 4.0})
    return root


# ---------------------------------------------------------------------------------------------------- masks
@pytest.mark.parametrize("grid", [(1, 4, 4), (2, 8, 8), (4, 6, 10)])
def test_multiblock_masks(grid):
    T, H, W = grid
    for spec in (MaskSpec(8, (0.15, 0.15)), MaskSpec(2, (0.7, 0.7)), MaskSpec(3, (0.1, 0.4), (0.5, 2.0))):
        masked = sample_multiblock(spec, grid, 16, torch.Generator().manual_seed(1))
        assert masked.any(1).all() and (~masked).any(1).all()  # every sample has context and targets
        per_time = masked.view(16, T, H * W)
        assert (per_time == per_time[:, :1]).all()  # blocks span every time slot
        ctx, tgt = mask_indices(masked)
        assert ctx.shape == (16, int((~masked).sum(1).min())) and tgt.shape == (16, int(masked.sum(1).min()))
        for m, c, t in zip(masked, ctx, tgt):
            assert (c.diff() > 0).all() and (t.diff() > 0).all()  # increasing, no duplicates
            assert not m[c].any() and m[t].all()  # context visible, targets masked
            assert torch.equal(c, (~m).nonzero()[:, 0][:len(c)])  # cut keeps the first ones (official)
        again = multiblock_masks(spec, grid, 16, torch.Generator().manual_seed(1))
        assert torch.equal(again[0], ctx) and torch.equal(again[1], tgt)
    # block size from the spec: one 50% block on a 8x8 grid masks 32 tokens (h*w = round(sqrt(32))^2 = 36 max)
    one = sample_multiblock(MaskSpec(1, (0.5, 0.5), (1.0, 1.0)), (1, 8, 8), 4, torch.Generator().manual_seed(0))
    assert (one.sum(1) == 36).all()


def test_mask_spec_validation():
    with pytest.raises(ValueError, match="spatial_scale"):
        MaskSpec.from_dict({"num_blocks": 2, "spatial_scale": [0.5, 1.5]})
    with pytest.raises(ValueError, match="unknown"):
        MaskSpec.from_dict({"blocks": 2})
    assert MaskSpec.from_dict({"num_blocks": 4, "spatial_scale": 0.2}).spatial_scale == (0.2, 0.2)


# ---------------------------------------------------------------------------------------------------- forwards
@pytest.mark.parametrize("frames", [1, 4])
def test_context_of_all_tokens_equals_full_encoder(frames):
    model = tiny_model()
    x = torch.randn(2, frames, 3, 32, 32)
    full = model.encoder(x).last_hidden_state
    N = full.shape[1]
    keep = torch.arange(N).expand(2, N)
    torch.testing.assert_close(context_encoder_forward(model.encoder, x, keep), full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(context_encoder_forward(model.encoder, x, None), full, rtol=0, atol=0)


def test_context_encoder_drops_masked_tokens_but_keeps_positions():
    model = tiny_model()
    x = torch.randn(1, 1, 3, 32, 32)  # 4x4 token grid, one time slot
    keep = torch.tensor([[0, 1, 2, 4, 5, 6, 8, 9, 10]])  # token 15 (bottom-right patch) is masked
    out = context_encoder_forward(model.encoder, x, keep)
    x2 = x.clone()
    x2[..., 24:32, 24:32] += 5.0  # change only the pixels of masked token 15
    assert torch.equal(context_encoder_forward(model.encoder, x2, keep), out)
    # ...whereas HF's context_mask path lets the masked token leak into the context (why it is not used)
    leak_a = model(x, context_mask=[keep], target_mask=[torch.tensor([[15]])]).masked_hidden_state
    leak_b = model(x2, context_mask=[keep], target_mask=[torch.tensor([[15]])]).masked_hidden_state
    assert not torch.allclose(leak_a, leak_b, atol=1e-4)
    # positions are kept: the same kept tokens at other grid positions give another output
    shifted = torch.tensor([[0, 2, 3, 5, 7, 11, 12, 13, 15]])  # other relative geometry, same order
    x3 = torch.zeros_like(x)
    for src, dst in zip(keep[0].tolist(), shifted[0].tolist()):  # move each kept patch's pixels to the new slot
        sr, sc, dr, dc = src // 4 * 8, src % 4 * 8, dst // 4 * 8, dst % 4 * 8
        x3[..., dr:dr + 8, dc:dc + 8] = x[..., sr:sr + 8, sc:sc + 8]
    moved = context_encoder_forward(model.encoder, x3, shifted)
    # same tokens, same order, other grid positions: only RoPE can tell them apart (with position ids taken from
    # the token order, as a naive gather would give, both outputs would be equal)
    assert not torch.allclose(moved, out, atol=1e-3)


def test_predictor_forward_matches_hf_predictor():
    model = tiny_model(pred_num_mask_tokens=4)
    with torch.no_grad():
        model.predictor.embeddings.mask_tokens.normal_()
    x = torch.randn(2, 1, 3, 32, 32)
    ctx = torch.tensor([[0, 1, 2, 3, 8, 9], [4, 5, 6, 7, 12, 13]])
    tgt = torch.tensor([[10, 11, 15], [0, 1, 14]])
    z = context_encoder_forward(model.encoder, x, ctx)
    full = torch.zeros(2, 16, z.shape[-1]).scatter(1, ctx[..., None].expand_as(z), z)
    hf = model.predictor(full, [ctx], [tgt]).last_hidden_state  # HF forward: mask token 1
    torch.testing.assert_close(predictor_forward(model.predictor, z, ctx, tgt, mask_index=1), hf, rtol=1e-5,
                               atol=1e-6)
    assert not torch.allclose(predictor_forward(model.predictor, z, ctx, tgt, mask_index=0), hf, atol=1e-4)


def test_objective_and_ema():
    model = tiny_model()
    x = torch.randn(2, 1, 3, 32, 32)
    h = torch.nn.functional.layer_norm(model.encoder(x).last_hidden_state, (32,))
    masks = [multiblock_masks(MaskSpec(4, (0.15, 0.15)), (1, 4, 4), 2, torch.Generator().manual_seed(0)),
             multiblock_masks(MaskSpec(1, (0.5, 0.5)), (1, 4, 4), 2, torch.Generator().manual_seed(1))]
    losses = JEPAObjective(model)(x, h, masks)
    ctx, tgt = masks[1]
    z = context_encoder_forward(model.encoder, x, ctx)
    pred = predictor_forward(model.predictor, z, ctx, tgt, mask_index=1)
    ref1 = (pred - torch.gather(h, 1, tgt[..., None].expand(-1, -1, 32))).abs().mean()
    torch.testing.assert_close(losses["loss_mask1"], ref1)
    torch.testing.assert_close(losses["loss"], (losses["loss_mask0"] + losses["loss_mask1"]) / 2)

    target, online = tiny_model(1).encoder, tiny_model(2).encoder
    expected = {k: 0.9 * v + 0.1 * online.state_dict()[k] for k, v in target.state_dict().items()}
    ema_update(target, online, 0.9)
    for k, v in target.state_dict().items():
        torch.testing.assert_close(v, expected[k])


# ---------------------------------------------------------------------------------------------------- loop
def small_config(**kw) -> PretrainConfig:
    base = dict(model=dict(TINY), batch_size=4, total_steps=6, clips_per_epoch=8, lr=1e-3, ckpt_every=3, log_every=1,
                ema=(0.9, 0.99), seed=5,
                masks=[{"num_blocks": 4, "spatial_scale": 0.15}, {"num_blocks": 1, "spatial_scale": 0.5}])
    base.update(kw)
    return PretrainConfig(**base)


def test_pretrain_learns_and_saves_hf_layout(dataset, tmp_path):
    from vjepa2_ac.model.encoder import Encoder

    cfg = small_config(total_steps=30, clips_per_epoch=16, lr=2e-3, ckpt_every=0, frames_per_clip=2)
    model_dir = pretrain(cfg, [dataset], tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first, last = np.mean([r["loss"] for r in rows[:3]]), np.mean([r["loss"] for r in rows[-3:]])
    assert last < 0.8 * first, (first, last)
    assert rows[0]["momentum"] == pytest.approx(0.9) and rows[-1]["momentum"] > 0.98
    enc = Encoder.from_pretrained(model_dir)
    hf = VJEPA2Model.from_pretrained(model_dir)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=True)
    for k, v in enc.encoder.state_dict().items():  # the saved encoder is the EMA target encoder
        assert torch.equal(v, ckpt["target_encoder"][k])
        assert torch.equal(v, hf.encoder.state_dict()[k])
    for k, v in hf.predictor.state_dict().items():
        assert torch.equal(v, ckpt["model"][f"predictor.{k}"])
    frames = torch.zeros(1, 2, 32, 32, 3, dtype=torch.uint8)
    assert enc(frames).shape == (1, 2, 16, 32)


def test_pretrain_resume_is_bit_exact(dataset, tmp_path, monkeypatch):
    cfg = small_config(grad_accum_steps=2)
    full = pretrain(cfg, [dataset], tmp_path / "full", progress=False)

    class Interrupted(Exception):
        pass

    real_save = pretrain_module.save_checkpoint

    def save_then_die(path, payload):
        real_save(path, payload)
        raise Interrupted

    monkeypatch.setattr(pretrain_module, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        pretrain(cfg, [dataset], tmp_path / "cut", progress=False)
    monkeypatch.setattr(pretrain_module, "save_checkpoint", real_save)
    torch.manual_seed(999)
    resumed = pretrain(None, [dataset], tmp_path / "cut", resume=True, progress=False)
    from safetensors.torch import load_file

    a, b = load_file(str(full / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_config_errors(dataset, tmp_path):
    for name in ("encoder_small_cpu.yaml", "bundled/encoder_sim_small.yaml"):
        PretrainConfig.from_yaml(REPO / "configs" / name)
    with pytest.raises(ValueError, match="multiple of tubelet_size"):
        pretrain(small_config(frames_per_clip=3), [dataset], tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="mask tokens"):
        pretrain(small_config(model={**TINY, "pred_num_mask_tokens": 1}), [dataset], tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="unknown VJEPA2Config"):
        pretrain(small_config(model={**TINY, "hidden": 3}), [dataset], tmp_path / "c", progress=False)
