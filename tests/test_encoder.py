"""Frozen V-JEPA 2 encoder wrapper: official-code numbers, preprocessing, loading, saving, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import VJEPA2Config

from vjepa2_ac.model.checkpoint import CheckpointError
from vjepa2_ac.model.encoder import KNOWN_ENCODERS, Encoder, vjepa2_config_from_official
from vjepa2_ac.model.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess

torch.set_num_threads(1)


def _strip(sd: dict) -> dict:
    return {k.replace("module.", "").replace("backbone.", ""): v for k, v in sd.items()}


@pytest.fixture(scope="module")
def official_sd(official_small) -> dict:
    """The fixture's encoder state dict without prefixes (official key names)."""
    return _strip(official_small["checkpoint"]["encoder"])


@pytest.fixture(scope="module")
def enc(official_small) -> Encoder:
    return Encoder.from_official_state_dict(official_small["checkpoint"]["encoder"], official_small["encoder_config"])


@pytest.fixture
def tiny() -> Encoder:
    torch.manual_seed(0)
    cfg = VJEPA2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=1, crop_size=32, patch_size=16)
    return Encoder(cfg)


# ---------------------------------------------------------------- numbers of the official code
def test_tokens_match_official(enc, official_small):
    z = enc(official_small["clip_normalized"])
    assert z.shape == (3, 4, 16, 128) and z.dtype == torch.float32
    torch.testing.assert_close(z, official_small["encoder_tokens_raw"], atol=1e-5, rtol=0)


def test_eager_attention_matches_official(official_small):
    e = Encoder.from_official_state_dict(official_small["checkpoint"]["encoder"], official_small["encoder_config"],
                                         attn_implementation="eager")
    torch.testing.assert_close(e(official_small["clip_normalized"]), official_small["encoder_tokens_raw"],
                               atol=1e-5, rtol=0)


def test_preprocess_reproduces_fixture_clip(official_small):
    frames = official_small["frames_uint8"]  # 2 real 256x256 frames; clip 0 is frames [0, 1, 0, 1] at 64 px
    x = preprocess(frames[[0, 1, 0, 1]], crop_size=64)
    assert x.shape == (1, 4, 3, 64, 64) and x.dtype == torch.float32
    torch.testing.assert_close(x[0], official_small["clip_normalized"][0], atol=1e-6, rtol=0)


def test_uint8_frames_give_official_tokens(enc, official_small):
    frames = official_small["frames_uint8"]
    z = enc(frames)  # [T, H, W, 3] -> [1, T, N, D]
    assert z.shape == (1, 2, 16, 128)
    torch.testing.assert_close(z[0], official_small["encoder_tokens_raw"][0, :2], atol=1e-5, rtol=0)
    torch.testing.assert_close(enc(frames[0].numpy()), z[:, :1], atol=1e-6, rtol=0)  # [H, W, 3] numpy


def test_chunking_does_not_change_results(enc, official_small):
    full = enc(official_small["clip_normalized"])
    try:
        enc.max_batch_frames = 5  # 12 frames -> chunks 5, 5, 2
        torch.testing.assert_close(enc(official_small["clip_normalized"]), full, atol=1e-6, rtol=0)
        enc.max_batch_frames = 0
        with pytest.raises(ValueError, match="max_batch_frames"):
            enc(official_small["clip_normalized"])
    finally:
        enc.max_batch_frames = 64


def test_frames_are_encoded_independently(enc, official_small):
    clip = official_small["clip_normalized"]
    z = enc(clip)
    z_single = enc(clip[1:2, 2:3])
    torch.testing.assert_close(z_single[0, 0], z[1, 2], atol=1e-6, rtol=0)


# ---------------------------------------------------------------- preprocessing
def test_preprocess_centre_crop_and_resize():
    g = torch.Generator().manual_seed(0)
    frame = torch.randint(0, 256, (3, 30, 47, 3), dtype=torch.uint8, generator=g)  # landscape, odd margins
    x = preprocess(frame, crop_size=16)
    side, left = 30, (47 - 30) // 2
    ref = frame[:, :, left : left + side].permute(0, 3, 1, 2).float()
    ref = F.interpolate(ref, size=(16, 16), mode="bilinear", align_corners=False) / 255.0
    ref = (ref - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert x.shape == (1, 3, 3, 16, 16)
    torch.testing.assert_close(x[0], ref, atol=0, rtol=0)
    portrait = frame.transpose(1, 2).contiguous()  # 47 x 30: crop rows 8..38
    torch.testing.assert_close(preprocess(portrait, 16)[0], preprocess(portrait[:, 8:38], 16)[0], atol=0, rtol=0)


def test_preprocess_identity_size_is_exact_normalisation():
    frame = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    x = preprocess(frame, crop_size=8)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    ref = (torch.from_numpy(frame).permute(2, 0, 1).float() / 255.0 - mean) / std
    assert x.shape == (1, 1, 3, 8, 8)
    torch.testing.assert_close(x[0, 0], ref, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("frames", "exc", "match"),
    [
        (np.zeros((4, 4, 3), np.float32), TypeError, "uint8"),
        (np.zeros((4, 4), np.uint8), ValueError, r"\[H, W, 3\]"),
        (np.zeros((1, 1, 1, 4, 4, 3), np.uint8), ValueError, r"\[B, T, H, W, 3\]"),
        (np.zeros((2, 4, 4, 4), np.uint8), ValueError, "3 colour channels"),
        (np.zeros((0, 4, 4, 3), np.uint8), ValueError, "empty"),
        ([[1, 2, 3]], TypeError, "numpy array or torch tensor"),
    ],
)
def test_preprocess_rejects_bad_frames(frames, exc, match):
    with pytest.raises(exc, match=match):
        preprocess(frames, crop_size=16)


def test_preprocess_rejects_bad_crop_size():
    with pytest.raises(ValueError, match="crop_size"):
        preprocess(np.zeros((4, 4, 3), np.uint8), crop_size=0)


# ---------------------------------------------------------------- forward validation
@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: torch.zeros(1, 2, 3, 64, 64, dtype=torch.int32), TypeError, "uint8"),
        (lambda: torch.zeros(2, 3, 64, 64), ValueError, r"\[B, T, 3, 64, 64\]"),
        (lambda: torch.zeros(1, 2, 4, 64, 64), ValueError, r"\[B, T, 3, 64, 64\]"),
        (lambda: torch.zeros(1, 2, 64, 64, 3), ValueError, "uint8 is required"),
        (lambda: torch.zeros(1, 2, 3, 128, 128), ValueError, "crop_size"),
        (lambda: torch.zeros(0, 2, 3, 64, 64), ValueError, "empty"),
        (lambda: torch.zeros(1, 2, 3, 64, 64).index_fill_(3, torch.tensor([5]), float("nan")), ValueError, "NaN"),
        (lambda: torch.zeros(1, 0, 64, 64, 3, dtype=torch.uint8), ValueError, "empty"),
        (lambda: torch.zeros(1, 2, 64, 64, 4, dtype=torch.uint8), ValueError, "3 colour channels"),
        (lambda: "frames", TypeError, "numpy array or torch tensor"),
    ],
)
def test_forward_rejects_bad_input(enc, make, exc, match):
    with pytest.raises(exc, match=match):
        enc(make())


# ---------------------------------------------------------------- frozen
def test_frozen_eval_no_grad(enc, official_small):
    assert all(not p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())
    x = official_small["clip_normalized"][:1, :1].clone().requires_grad_(True)
    z = enc(x)
    assert not z.requires_grad and z.grad_fn is None


def test_properties(enc):
    assert (enc.embed_dim, enc.patch_size, enc.crop_size, enc.grid_size, enc.tokens_per_frame) == (128, 16, 64, 4, 16)
    assert enc.dtype == torch.float32 and enc.device == torch.device("cpu")
    assert isinstance(enc.config, VJEPA2Config)


def test_bf16_and_out_dtype(official_small):
    e = Encoder.from_official_state_dict(official_small["checkpoint"]["encoder"], official_small["encoder_config"],
                                         dtype=torch.bfloat16)
    assert e.dtype == torch.bfloat16
    z = e(official_small["clip_normalized"][:1], out_dtype=torch.float32)
    assert z.dtype == torch.float32
    torch.testing.assert_close(z, official_small["encoder_tokens_raw"][:1], atol=0.15, rtol=0)
    assert e(official_small["frames_uint8"][:1]).dtype == torch.bfloat16


# ---------------------------------------------------------------- official state dict
@pytest.mark.parametrize("prefix", ["", "module.", "backbone.", "module.backbone."])
def test_prefix_variants_load(official_sd, official_small, prefix):
    e = Encoder.from_official_state_dict({prefix + k: v for k, v in official_sd.items()},
                                         official_small["encoder_config"])
    torch.testing.assert_close(e(official_small["clip_normalized"][:1]), official_small["encoder_tokens_raw"][:1],
                               atol=1e-5, rtol=0)


def test_pos_embed_is_ignored_and_config_object_accepted(official_sd, official_small):
    cfg = vjepa2_config_from_official(official_small["encoder_config"])
    e = Encoder.from_official_state_dict({**official_sd, "pos_embed": torch.zeros(1, 16, 128)}, cfg)
    torch.testing.assert_close(e(official_small["clip_normalized"][:1]), official_small["encoder_tokens_raw"][:1],
                               atol=1e-5, rtol=0)


def test_qkv_split_order(official_sd, official_small):
    e = Encoder.from_official_state_dict(official_sd, official_small["encoder_config"])
    qkv = official_sd["blocks.1.attn.qkv.weight"]
    attn = e.encoder.layer[1].attention
    for i, lin in enumerate((attn.query, attn.key, attn.value)):
        assert torch.equal(lin.weight, qkv[128 * i : 128 * (i + 1)])
    assert torch.equal(e.encoder.layernorm.bias, official_sd["norm.bias"])


def test_missing_key_is_named(official_sd, official_small):
    sd = dict(official_sd)
    del sd["blocks.1.mlp.fc2.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): blocks\.1\.mlp\.fc2\.bias"):
        Encoder.from_official_state_dict(sd, official_small["encoder_config"])


def test_wrong_shape_is_named(official_sd, official_small):
    sd = {**official_sd, "blocks.0.attn.qkv.weight": torch.zeros(3 * 128, 64)}
    with pytest.raises(CheckpointError, match=r"blocks\.0\.attn\.qkv\.weight: expected \(384, 128\), got \(384, 64\)"):
        Encoder.from_official_state_dict(sd, official_small["encoder_config"])


def test_unexpected_key_is_named(official_sd, official_small):
    sd = {**official_sd, "blocks.2.norm1.weight": torch.ones(128)}  # a block the config does not have
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): blocks\.2\.norm1\.weight"):
        Encoder.from_official_state_dict(sd, official_small["encoder_config"])


def test_wrong_config_reports_every_problem(official_sd, official_small):
    cfg = {**official_small["encoder_config"], "depth": 3, "embed_dim": 256, "num_heads": 4}
    with pytest.raises(CheckpointError, match="missing keys") as info:
        Encoder.from_official_state_dict(official_sd, cfg)
    assert "blocks.2." in str(info.value) and "mis-shaped" in str(info.value)


def test_whole_checkpoint_and_non_tensor_rejected(official_sd, official_small):
    with pytest.raises(CheckpointError, match=r"checkpoint\['encoder'\]"):
        Encoder.from_official_state_dict(official_small["checkpoint"], official_small["encoder_config"])
    with pytest.raises(CheckpointError, match="norm.weight is not a floating-point tensor"):
        Encoder.from_official_state_dict({**official_sd, "norm.weight": [1.0] * 128}, official_small["encoder_config"])


def test_official_config_conversion(official_small):
    cfg = vjepa2_config_from_official(official_small["encoder_config"])
    assert (cfg.crop_size, cfg.patch_size, cfg.tubelet_size, cfg.hidden_size, cfg.num_hidden_layers,
            cfg.num_attention_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.layer_norm_eps) == (
        64, 16, 2, 128, 2, 2, 4.0, True, 1e-6)
    base = official_small["encoder_config"]
    with pytest.raises(ValueError, match="RoPE-only"):
        vjepa2_config_from_official({**base, "use_rope": False})
    with pytest.raises(ValueError, match="square"):
        vjepa2_config_from_official({**base, "img_size": (64, 96)})
    with pytest.raises(ValueError, match="lacks"):
        vjepa2_config_from_official({k: v for k, v in base.items() if k != "depth"})
    with pytest.raises(ValueError, match="no VJEPA2Config counterpart"):
        vjepa2_config_from_official({**base, "use_silu": True})
    assert vjepa2_config_from_official({**base, "img_size": [64, 64], "use_sdpa": True}).crop_size == 64


# ---------------------------------------------------------------- released architectures (meta device)
def _encoder_params(name: str) -> int:
    with torch.device("meta"):
        e = Encoder(Encoder.config_for(name))
    assert all(p.is_meta for p in e.parameters())
    return sum(p.numel() for p in e.parameters())


def test_vitg_param_count_matches_release():
    assert _encoder_params("facebook/vjepa2-vitg-fpc64-256") == 1_012_173_952
    assert _encoder_params("vjepa2-ac-vitg") == 1_012_173_952
    cfg = Encoder.config_for("facebook/vjepa2-vitg-fpc64-384")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.crop_size) == (1408, 40, 22, 384)
    assert int(cfg.hidden_size * cfg.mlp_ratio) == 6144


def test_known_configs():
    assert round(_encoder_params("facebook/vjepa2-vitl-fpc64-256") / 1e6, 1) == 303.9
    assert round(_encoder_params("facebook/vjepa2-vith-fpc64-256") / 1e6, 1) == 631.6
    assert set(KNOWN_ENCODERS) >= {"facebook/vjepa2-vitl-fpc64-256", "facebook/vjepa2-vitg-fpc64-256"}
    with pytest.raises(ValueError, match="unknown encoder"):
        Encoder.config_for("facebook/vjepa2-vitx")


# ---------------------------------------------------------------- save / load
def test_save_load_round_trip_bit_exact(enc, official_small, tmp_path):
    out = enc.save_pretrained(tmp_path / "enc")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp dir cleaned up
    back = Encoder.from_pretrained(out)
    assert back.name_or_path == str(out) and enc.name_or_path is None
    for (k, a), (k2, b) in zip(enc.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    clip = official_small["clip_normalized"]
    assert torch.equal(back(clip), enc(clip))
    assert not any(p.requires_grad for p in back.parameters()) and not back.training


def test_saved_dir_loads_in_transformers(enc, official_small, tmp_path):
    from transformers import VJEPA2Model
    from transformers.utils import logging

    enc.save_pretrained(tmp_path)
    logging.set_verbosity_error()  # the unused mask predictor is reported MISSING
    try:
        model = VJEPA2Model.from_pretrained(tmp_path).eval()
    finally:
        logging.set_verbosity_warning()
    x = official_small["clip_normalized"][0].unsqueeze(1)  # [T, 1, 3, S, S]
    with torch.no_grad():
        z = model.encoder(x).last_hidden_state
    torch.testing.assert_close(z, enc(official_small["clip_normalized"])[0], atol=1e-6, rtol=0)


def test_save_overwrites_existing_dir_and_bf16(official_small, tmp_path):
    e = Encoder.from_official_state_dict(official_small["checkpoint"]["encoder"], official_small["encoder_config"],
                                         dtype=torch.bfloat16)
    (tmp_path / "model.safetensors.index.json").write_text("{}")  # stale index must not shadow the new weights
    (tmp_path / "notes.txt").write_text("kept")
    e.save_pretrained(tmp_path)
    back = Encoder.from_pretrained(tmp_path)
    assert back.dtype == torch.bfloat16 and (tmp_path / "notes.txt").read_text() == "kept"
    assert torch.equal(back(official_small["frames_uint8"]), e(official_small["frames_uint8"]))
    assert Encoder.from_pretrained(tmp_path, dtype=torch.float32).dtype == torch.float32
    with pytest.raises(FileExistsError):
        e.save_pretrained(tmp_path / "notes.txt")


def test_config_overrides(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    e = Encoder.from_pretrained(tmp_path, crop_size=64)
    assert (e.crop_size, e.tokens_per_frame) == (64, 16)
    assert e(np.zeros((2, 70, 90, 3), np.uint8)).shape == (1, 2, 16, 64)
    with pytest.raises(TypeError, match="unknown config override"):
        Encoder.from_pretrained(tmp_path, crop_sise=64)


def test_sharded_and_classification_layouts(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    src = tiny.save_pretrained(tmp_path / "src")
    sd = load_file(src / "model.safetensors")
    keys = sorted(sd)
    shard = tmp_path / "sharded"
    shard.mkdir()
    shutil.copy(src / "config.json", shard)
    half = len(keys) // 2
    weight_map = {}
    for i, part in enumerate((keys[:half], keys[half:])):
        name = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({("vjepa2." + k): sd[k] for k in part} | {f"pooler.w{i}": torch.zeros(1)}, shard / name)
        weight_map.update({("vjepa2." + k): name for k in part})
    (shard / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    x = torch.randint(0, 256, (1, 2, 32, 32, 3), dtype=torch.uint8)
    assert torch.equal(Encoder.from_pretrained(shard)(x), tiny(x))


def test_bad_directories(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    with pytest.raises(OSError, match="no config.json"):
        Encoder.from_pretrained(tmp_path)
    d = tiny.save_pretrained(tmp_path / "d")
    sd = load_file(d / "model.safetensors")
    del sd["encoder.layernorm.bias"]
    sd["encoder.layer.0.mlp.fc1.weight"] = torch.zeros(3, 64)
    save_file(sd, d / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"encoder\.layernorm\.bias") as info:
        Encoder.from_pretrained(d)
    assert "encoder.layer.0.mlp.fc1.weight: expected (256, 64), got (3, 64)" in str(info.value)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(OSError, match="cannot read"):
        Encoder.from_pretrained(d)
    (d / "model.safetensors").unlink()
    with pytest.raises(OSError, match="no model.safetensors"):
        Encoder.from_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "model_type": "vit"}))
    with pytest.raises(ValueError, match="model_type 'vit'"):
        Encoder.from_pretrained(d)


# ---------------------------------------------------------------- hub ids (offline: a fake HF cache)
def _fake_hub_cache(cache: Path, repo_id: str, src: Path) -> None:
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "1" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    shutil.copytree(src, folder / "snapshots" / commit)


def test_hub_id_loads_from_cache(tiny, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    _fake_hub_cache(tmp_path / "cache", "someone/tiny-vjepa2", tiny.save_pretrained(tmp_path / "src"))
    e = Encoder.from_pretrained("someone/tiny-vjepa2", cache_dir=tmp_path / "cache")
    assert e.name_or_path == "someone/tiny-vjepa2"
    x = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    assert torch.equal(e(x), tiny(x))


def test_unreachable_hub_id_raises_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError, match=r"'facebook/vjepa2-vitg-fpc64-256'.*local directory") as info:
        Encoder.from_pretrained("facebook/vjepa2-vitg-fpc64-256", cache_dir=tmp_path)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(OSError, match="neither an existing local directory nor a hub id"):
        Encoder.from_pretrained(tmp_path / "no" / "such" / "dir")


def test_constructor_validates_config():
    with pytest.raises(TypeError, match="VJEPA2Config"):
        Encoder({"hidden_size": 64})
    with pytest.raises(ValueError, match="multiple of patch_size"):
        Encoder(VJEPA2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=1, crop_size=40))
    with pytest.raises(ValueError, match="attn_implementation"):
        Encoder(VJEPA2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=1), attn_implementation="flex")
