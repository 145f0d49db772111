"""AC post-training: official losses and schedule, loss decrease, bit-exact resume, atomic checkpoints, latent
cache, fine-tuning init, and torchrun (2 processes, gloo) == 1 process."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vjepa2_ac.data import write_episode
from vjepa2_ac.model.predictor import ACPredictor, ACPredictorConfig
from vjepa2_ac.model.world_model import WorldModel, normalize_reps
from vjepa2_ac.training import ac_trainer
from vjepa2_ac.training.ac_trainer import ac_losses, train
from vjepa2_ac.training.config import TrainConfig
from vjepa2_ac.training.latent_cache import LatentCache, encode_dataset
from vjepa2_ac.training.schedule import WSDSchedule, param_groups, set_lr

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------------- fixtures
def square_frames(states: np.ndarray, size: int = 32) -> np.ndarray:
    """Frames with a bright square whose position follows the end-effector x, y (learnable dynamics)."""
    T = len(states)
    frames = np.full((T, size, size, 3), 40, dtype=np.uint8)
    pos = np.clip(((states[:, :2] + 0.3) / 0.6 * (size - 8)).round().astype(int), 0, size - 8)
    for t in range(T):
        frames[t, pos[t, 1]:pos[t, 1] + 8, pos[t, 0]:pos[t, 0] + 8] = (230, 200, 90)
    return frames


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("episodes")
    rng = np.random.default_rng(0)
    for e in range(6):
        T = 16 + 2 * e
        states = np.zeros((T, 7))
        states[:, :2] = np.clip(np.cumsum(rng.normal(0, 0.05, (T, 2)), 0), -0.3, 0.3)
        states[:, 2] = 0.3
        states[:, 3:6] = np.cumsum(rng.normal(0, 0.05, (T, 3)), 0)
        states[:, 6] = rng.uniform(0, 1, T)
        write_episode(root / f"episode_{e:06d}.h5", square_frames(states), states, metadata={"control_hz": 4.0})
    return root


def small_config(encoder_dir: Path, **kw) -> TrainConfig:
    base = dict(encoder=str(encoder_dir) if encoder_dir else None, predictor=dict(predictor_embed_dim=32, depth=2, num_heads=2, num_frames=16),
                frames_per_clip=4, batch_size=4, total_steps=6, clips_per_epoch=8, lr=1e-3, start_lr=1e-4,
                warmup_steps=2, anneal_steps=2, ckpt_every=3, log_every=1, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def predictor_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "predictor.safetensors"))


# ---------------------------------------------------------------------------------------------------- objective
def official_forward_predictions(predictor, h, actions, states, auto_steps=2):
    """Reference for the official objective (facts §4.2), written out plainly on the flattened ``[B, T*N, D]``
    layout: teacher forcing from frames 0..T-2 predicts frames 1..T-1; the rollout restarts from ``[h_0, z_tf_1]``
    with ground-truth states and appends one prediction per step; both terms are the mean |error| against the true
    next frames, added with equal weights. Returns (total, teacher forcing, rollout)."""
    B, T, N, D = h.shape
    frames = h.flatten(1, 2)

    def predict(z, a, s):
        out = predictor(z, a, s)
        return torch.nn.functional.layer_norm(out, (D,))

    tf = predict(frames[:, : (T - 1) * N], actions, states[:, : T - 1])
    context = torch.cat([frames[:, :N], tf[:, :N]], dim=1)
    rollout = [tf[:, :N]]
    for n in range(1, auto_steps):
        nxt = predict(context, actions[:, : n + 1], states[:, : n + 1])[:, -N:]
        rollout.append(nxt)
        context = torch.cat([context, nxt], dim=1)
    ar = torch.cat(rollout, dim=1)
    loss_tf = (tf - frames[:, N:]).abs().mean()
    loss_ar = (ar - frames[:, N : N + ar.shape[1]]).abs().mean()
    return loss_tf + loss_ar, loss_tf, loss_ar


@pytest.mark.parametrize("auto_steps", [1, 2, 3])
def test_losses_match_official_reference(auto_steps):
    torch.manual_seed(0)
    pred = ACPredictor(ACPredictorConfig(img_size=32, patch_size=16, embed_dim=24, predictor_embed_dim=32, depth=2,
                                         num_heads=2, num_frames=16))
    with torch.no_grad():  # make actions and states matter
        pred.action_encoder.weight.mul_(20)
        pred.state_encoder.weight.mul_(20)
    B, T = 3, 5
    h = normalize_reps(torch.randn(B, T, 4, 24))
    actions, states = torch.randn(B, T - 1, 7) * 0.1, torch.randn(B, T, 7) * 0.1
    ours = ac_losses(pred, h, actions, states, auto_steps=auto_steps)
    ours["loss"].backward()
    grads = {n: p.grad.clone() for n, p in pred.named_parameters() if p.grad is not None}
    assert len(grads) == len(list(pred.parameters())) - 2  # all but the unused extrinsics encoder
    pred.zero_grad()
    ref, ref_tf, ref_ar = official_forward_predictions(pred, h, actions, states, auto_steps)
    ref.backward()
    torch.testing.assert_close(ours["loss"], ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours["loss_tf"], ref_tf, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours["loss_ar"], ref_ar, rtol=0, atol=1e-6)
    for n, p in pred.named_parameters():
        if n in grads:
            torch.testing.assert_close(grads[n], p.grad, rtol=1e-5, atol=1e-7, msg=n)
    # the rollout term really is a rollout: it differs from teacher forcing on frames 1..auto_steps
    if auto_steps >= 2:
        assert not torch.allclose(ours["loss_ar"], ac_losses(pred, h, actions, states, auto_steps=1)["loss_ar"])


def test_losses_reject_bad_shapes():
    pred = ACPredictor(ACPredictorConfig(img_size=32, patch_size=16, embed_dim=24, predictor_embed_dim=32, depth=1,
                                         num_heads=2, num_frames=16))
    h = torch.randn(2, 4, 4, 24)
    with pytest.raises(ValueError, match="auto_steps"):
        ac_losses(pred, h, torch.zeros(2, 3, 7), torch.zeros(2, 4, 7), auto_steps=4)
    with pytest.raises(ValueError, match="actions must be"):
        ac_losses(pred, h, torch.zeros(2, 4, 7), torch.zeros(2, 4, 7))


def test_activation_checkpointing_same_gradients():
    torch.manual_seed(1)
    cfg = ACPredictorConfig(img_size=32, patch_size=16, embed_dim=24, predictor_embed_dim=32, depth=2, num_heads=2,
                            num_frames=16)
    a, b = ACPredictor(cfg), ACPredictor(cfg)
    b.load_state_dict(a.state_dict())
    ac_trainer.enable_activation_checkpointing(b)
    h = normalize_reps(torch.randn(2, 4, 4, 24))
    acts, states = torch.randn(2, 3, 7), torch.randn(2, 4, 7)
    la, lb = ac_losses(a, h, acts, states)["loss"], ac_losses(b, h, acts, states)["loss"]
    la.backward()
    lb.backward()
    assert torch.equal(la, lb)
    assert list(a.state_dict()) == list(b.state_dict())
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-8, msg=n)


# ---------------------------------------------------------------------------------------------------- optimisation
def test_schedule_matches_official_wsd():
    def official_lr(k, warmup, anneal, total, start_lr, ref_lr, final_lr=0.0):
        """Facts §4.3: the learning rate at the k-th scheduler step (k = 1, 2, ...): linear warm-up from start_lr,
        constant ref_lr, then a linear anneal to final_lr over the last ``anneal`` steps."""
        if k < warmup:
            return start_lr + k / max(1, warmup) * (ref_lr - start_lr)
        if k < total - anneal:
            return ref_lr
        return ref_lr + (k - (total - anneal)) / max(1, anneal) * (final_lr - ref_lr)

    ours = WSDSchedule(lr=4.25e-4, total_steps=945, warmup_steps=45, anneal_steps=45, start_lr=7.5e-5)
    for k in range(945):  # our step k is the scheduler's (k + 1)-th call
        assert ours(k) == pytest.approx(official_lr(k + 1, 45, 45, 945, 7.5e-5, 4.25e-4), abs=1e-15)
    assert ours(0) > 7.5e-5 and ours(500) == 4.25e-4 and ours(944) == pytest.approx(0.0, abs=1e-12)


def test_param_groups_official_weight_decay_split():
    pred = ACPredictor(ACPredictorConfig(img_size=32, patch_size=16, embed_dim=24, predictor_embed_dim=32, depth=1,
                                         num_heads=2, num_frames=16))
    decay, no_decay = param_groups(pred, 0.04)
    names = {id(p): n for n, p in pred.named_parameters()}
    assert decay["weight_decay"] == 0.04 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 and "bias" not in names[id(p)] for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(pred.parameters()))
    assert any("norm" in names[id(p)] for p in no_decay["params"])


def test_param_groups_lr_scale_and_set_lr():
    """``lr_scale`` puts a submodule in its own groups (same weight-decay split) and set_lr multiplies its rate."""
    pred = ACPredictor(ACPredictorConfig(img_size=32, patch_size=16, embed_dim=24, predictor_embed_dim=32, depth=1,
                                         num_heads=2, num_frames=16))
    groups = param_groups(pred, 0.04, {"action_encoder": 50.0})
    scaled = [g for g in groups if "lr_scale" in g]
    assert len(groups) == 4 and all(g["lr_scale"] == 50.0 for g in scaled)
    assert {id(p) for g in scaled for p in g["params"]} == {id(p) for p in pred.action_encoder.parameters()}
    assert sorted(g["weight_decay"] for g in scaled) == [0.0, 0.04]  # weight decays, bias does not
    assert sum(len(g["params"]) for g in groups) == len(list(pred.parameters()))
    opt = torch.optim.AdamW(groups, lr=1.0)
    set_lr(opt, 1e-3)
    assert sorted({g["lr"] for g in opt.param_groups}) == [1e-3, pytest.approx(5e-2)]
    # one Adam step moves the scaled weights 50x as far (Adam steps are ~lr, whatever the gradient's size)
    before = {n: p.detach().clone() for n, p in pred.named_parameters()}
    for p in pred.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    move = {n: (p.detach() - before[n]).abs().max().item() for n, p in pred.named_parameters()}
    assert move["action_encoder.bias"] == pytest.approx(50 * move["state_encoder.bias"], rel=1e-3)
    with pytest.raises(ValueError, match="match no trainable parameter"):
        param_groups(pred, 0.04, {"action_encoderr": 2.0})
    with pytest.raises(ValueError, match="must be a number > 0"):
        param_groups(pred, 0.04, {"action_encoder": 0.0})
    with pytest.raises(ValueError, match="lr_scale"):
        TrainConfig(lr_scale={"action_encoder": -1})


def test_config_yaml_round_trip_and_errors(tmp_path):
    cfg = TrainConfig(batch_size=16, betas=(0.8, 0.9), predictor={"depth": 3})
    path = cfg.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(path) == cfg
    (tmp_path / "bad.yaml").write_text("batch_sise: 3\n")
    with pytest.raises(ValueError, match="batch_sise"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(total_steps=10, warmup_steps=8, anneal_steps=5)
    with pytest.raises(ValueError, match="auto_steps"):
        TrainConfig(frames_per_clip=2, auto_steps=2)
    for name in ("ac_small_cpu.yaml", "ac_vitg_droid.yaml", "bundled/ac_sim_small.yaml",
                 "bundled/ac_sim_small_stage2.yaml"):
        TrainConfig.from_yaml(REPO / "configs" / name)
    stage2 = TrainConfig.from_yaml(REPO / "configs" / "bundled" / "ac_sim_small_stage2.yaml")
    assert stage2.init == "runs/ac_v3/model" and stage2.loss_exp == 2.0  # continues stage 1's predictor


def test_official_recipe_config():
    cfg = TrainConfig.from_yaml(REPO / "configs" / "ac_vitg_droid.yaml")
    assert (cfg.frames_per_clip, cfg.fps, cfg.auto_steps, cfg.loss_exp) == (8, 4.0, 2, 1.0)
    assert (cfg.batch_size, cfg.total_steps, cfg.warmup_steps, cfg.anneal_steps) == (256, 94500, 4500, 4500)
    assert (cfg.start_lr, cfg.lr, cfg.final_lr, cfg.weight_decay) == (7.5e-5, 4.25e-4, 0.0, 0.04)
    assert cfg.betas == (0.9, 0.999) and cfg.eps == 1e-8 and cfg.dtype == "bfloat16" and cfg.grad_clip is None
    assert cfg.encoder == "facebook/vjepa2-vitg-fpc64-256" and cfg.predictor == {}


# ---------------------------------------------------------------------------------------------------- loop
def test_loss_decreases_and_model_loads(dataset, encoder_dir, tmp_path):
    cfg = small_config(encoder_dir, total_steps=40, warmup_steps=0, anneal_steps=0, lr=2e-3, clips_per_epoch=16,
                       val_fraction=0.2, val_clips=8, val_every=20, ckpt_every=0)
    model_dir = train(cfg, [dataset], tmp_path / "run", progress=False)
    rows = [m for m in metrics(tmp_path / "run") if "loss" in m]
    first = np.mean([m["loss"] for m in rows[:4]])
    last = np.mean([m["loss"] for m in rows[-4:]])
    assert last < 0.8 * first, (first, last)
    val = [m for m in metrics(tmp_path / "run") if "val_loss" in m]
    assert [m["step"] for m in val] == [20, 40] and all(math.isfinite(m["val_loss"]) for m in val)
    wm = WorldModel.from_pretrained(model_dir)
    assert wm.encoder is not None and wm.config.depth == 2
    frames = torch.from_numpy(square_frames(np.zeros((2, 7)))).unsqueeze(0)
    z = wm.encode(frames)
    assert wm.predict(z, torch.zeros(1, 2, 7), torch.zeros(1, 2, 7)).shape == z.shape
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()


def test_resume_is_bit_exact(dataset, encoder_dir, tmp_path, monkeypatch):
    cfg = small_config(encoder_dir, grad_accum_steps=2, val_fraction=0.2, val_clips=4)
    full = train(cfg, [dataset], tmp_path / "full", progress=False)

    class Interrupted(Exception):
        pass

    real_save = ac_trainer.save_checkpoint

    def save_then_die(path, payload):
        real_save(path, payload)
        if payload["step"] == 3:  # mid-epoch (2 steps per epoch)
            raise Interrupted

    monkeypatch.setattr(ac_trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        train(cfg, [dataset], tmp_path / "cut", progress=False)
    monkeypatch.setattr(ac_trainer, "save_checkpoint", real_save)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, [dataset], tmp_path / "cut", progress=False)
    torch.manual_seed(12345)  # the resumed run must not depend on the process's RNG state
    resumed = train(None, [dataset], tmp_path / "cut", resume=True, progress=False)
    a, b = predictor_weights(full), predictor_weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [m["step"] for m in metrics(tmp_path / "cut") if "loss" in m]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [m["loss"] for m in metrics(tmp_path / "cut") if "loss" in m] == \
        [m["loss"] for m in metrics(tmp_path / "full") if "loss" in m]
    with pytest.raises(ValueError, match="differs"):
        train(small_config(encoder_dir, lr=5e-3), [dataset], tmp_path / "cut", resume=True, progress=False)


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from vjepa2_ac.training import checkpointing
    from vjepa2_ac.training.ac_trainer import train
    from vjepa2_ac.training.config import TrainConfig

    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync_then_maybe_die(fd):
        real_fsync(fd)
        calls["n"] += 1
        if calls["n"] == 3:  # checkpoint 1: file (1) + directory (2); checkpoint 2: its temp file is written
            os.kill(os.getpid(), signal.SIGKILL)

    checkpointing.os.fsync = fsync_then_maybe_die
    train(TrainConfig.from_yaml(sys.argv[1]), [sys.argv[2]], sys.argv[3], progress=False)
""")


def test_killed_during_checkpoint_write_keeps_previous_checkpoint(dataset, encoder_dir, tmp_path):
    cfg = small_config(encoder_dir, ckpt_every=2)
    cfg.to_yaml(tmp_path / "cfg.yaml")
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "cfg.yaml"), str(dataset), str(run)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    ckpt_dir = run / "checkpoints"
    assert [p.name for p in ckpt_dir.iterdir() if not p.name.startswith(".")] == ["latest.pt"]
    assert any(p.name.startswith(".latest.pt.") for p in ckpt_dir.iterdir())  # the unfinished write
    ckpt = torch.load(ckpt_dir / "latest.pt", weights_only=True)
    assert ckpt["step"] == 2
    model = train(None, [dataset], run, resume=True, progress=False)
    reference = train(cfg, [dataset], tmp_path / "reference", progress=False)
    a, b = predictor_weights(model), predictor_weights(reference)
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------------- latent cache
def test_latent_cache_gives_the_same_training(dataset, encoder_dir, tmp_path):
    from vjepa2_ac.model.encoder import Encoder

    enc = Encoder.from_pretrained(encoder_dir)
    cache = encode_dataset([dataset], enc, tmp_path / "cache", progress=False)
    lc = LatentCache(cache)
    assert len(lc) == 6 and lc.tokens_per_frame == 4 and lc.embed_dim == 32
    from vjepa2_ac.data import load_episode

    ep = load_episode(dataset / "episode_000002.h5")
    frames = ep.frames["front"]
    idx = np.array([1, 4, 7, 10])
    z, s = lc.read(2, idx)
    expected = normalize_reps(enc(frames[idx][None]).float())[0]
    torch.testing.assert_close(torch.from_numpy(z), expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(s, ep.states[idx])
    # re-running skips finished episodes (files untouched)
    mtimes = {p: p.stat().st_mtime_ns for p in (cache / "episodes").iterdir()}
    encode_dataset([dataset], enc, cache, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (cache / "episodes").iterdir()} == mtimes

    cfg = small_config(encoder_dir, total_steps=4, val_fraction=0.2, val_clips=4)
    from_frames = train(cfg, [dataset], tmp_path / "frames", progress=False)
    from_cache = train(cfg, [cache], tmp_path / "cached", progress=False)
    a, b = predictor_weights(from_frames), predictor_weights(from_cache)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6, msg=k)
    la = [m for m in metrics(tmp_path / "frames")]
    lb = [m for m in metrics(tmp_path / "cached")]
    for x, y in zip(la, lb):
        assert x.keys() == y.keys()
        for key in ("loss", "val_loss"):
            if key in x:
                assert x[key] == pytest.approx(y[key], abs=1e-5)
    # the model trained from the cache points at (here: copies) the encoder it was built with
    wm = WorldModel.from_pretrained(from_cache)
    assert wm.encoder is not None
    torch.testing.assert_close(wm.encode(frames[idx][None]), expected[None], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="mixes"):
        train(cfg, [cache, dataset], tmp_path / "mixed", progress=False)


# ---------------------------------------------------------------------------------------------------- init
def test_init_from_own_and_official_checkpoints(dataset, encoder_dir, tmp_path, official_small):
    # own model: with lr 0 the weights do not move
    first = train(small_config(encoder_dir, total_steps=2, warmup_steps=0, anneal_steps=0, ckpt_every=0), [dataset], tmp_path / "a", progress=False)
    frozen = small_config(encoder_dir, total_steps=2, lr=0.0, start_lr=0.0, warmup_steps=0, anneal_steps=0,
                          ckpt_every=0)
    second = train(frozen, [dataset], tmp_path / "b", init=str(first), progress=False)
    a, b = predictor_weights(first), predictor_weights(second)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="differ"):
        train(small_config(encoder_dir, predictor=dict(depth=3)), [dataset], tmp_path / "c", init=str(first),
              progress=False)

    # official layout: predictor read from the file, encoder converted from it
    ckpt = tmp_path / "official.pt"
    torch.save(official_small["checkpoint"], ckpt)
    pc = official_small["predictor_config"]
    from vjepa2_ac.model.encoder import Encoder

    enc_dir = Encoder.from_official_state_dict(official_small["checkpoint"]["encoder"],
                                               official_small["encoder_config"]).save_pretrained(tmp_path / "enc")
    cfg = small_config(enc_dir, predictor=dict(num_heads=pc["num_heads"], img_size=64), frames_per_clip=3,
                       total_steps=1, lr=0.0, start_lr=0.0, warmup_steps=0, anneal_steps=0, ckpt_every=0)
    out = train(cfg, [dataset], tmp_path / "d", init=str(ckpt), progress=False)
    wm = WorldModel.from_pretrained(out)
    z = official_small["encoder_tokens"]
    got = wm.predict(z, official_small["actions"], official_small["states"])
    torch.testing.assert_close(got, official_small["predictor_out_normalized"], rtol=1e-4, atol=1e-4)


def test_bad_inputs_raise_clear_errors(dataset, encoder_dir, tmp_path):
    with pytest.raises(ValueError, match="divisible"):
        train(small_config(encoder_dir, batch_size=6, grad_accum_steps=4), [dataset], tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        train(small_config(encoder_dir, clips_per_epoch=None, batch_size=8), [dataset], tmp_path / "y",
              progress=False)
    with pytest.raises(ValueError, match="no encoder"):
        train(small_config(None), [dataset], tmp_path / "z", progress=False)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        train(None, [dataset], tmp_path / "none", resume=True, progress=False)


# ---------------------------------------------------------------------------------------------------- CLI, torchrun
def test_cli_train_and_encode_commands(dataset, encoder_dir, tmp_path):
    import argparse

    from vjepa2_ac.commands import encode_dataset as encode_cmd
    from vjepa2_ac.commands import train as train_cmd

    small_config(encoder_dir).to_yaml(tmp_path / "cfg.yaml")
    p = argparse.ArgumentParser()
    encode_cmd.configure(p)
    assert encode_cmd.run(p.parse_args(["--data", str(dataset), "--encoder", str(encoder_dir), "--out",
                                        str(tmp_path / "cache"), "--no-progress", "--dtype", "bfloat16"])) == 0
    p = argparse.ArgumentParser()
    train_cmd.configure(p)
    args = p.parse_args(["--data", str(tmp_path / "cache"), "--config", str(tmp_path / "cfg.yaml"), "--out",
                         str(tmp_path / "run"), "--no-progress", "--set", "total_steps=2", "--set", "ckpt_every=0",
                         "--set", "warmup_steps=0", "--set", "anneal_steps=0"])
    assert train_cmd.run(args) == 0
    assert TrainConfig.from_yaml(tmp_path / "run" / "config.yaml").total_steps == 2
    assert WorldModel.from_pretrained(tmp_path / "run" / "model").encoder is not None


def test_torchrun_two_processes_equal_one(dataset, encoder_dir, tmp_path):
    """``torchrun --nproc_per_node 2`` (gloo, CPU) with the same global batch gives the weights of one process."""
    cfg = small_config(encoder_dir, total_steps=4, grad_accum_steps=2, ckpt_every=2, val_fraction=0.2, val_clips=4)
    cfg.to_yaml(tmp_path / "cfg.yaml")
    single = train(cfg, [dataset], tmp_path / "single", progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = ["torchrun", "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000), "-m",
           "vjepa2_ac.commands.train", "--data", str(dataset), "--config", str(tmp_path / "cfg.yaml"),
           "--out", str(tmp_path / "ddp"), "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = predictor_weights(single), predictor_weights(tmp_path / "ddp" / "model")
    for k in a:
        x, y = a[k], b[k]
        if k.endswith("attn.qkv.bias"):
            # The key bias adds q.b_k to every score of a query: softmax cancels it, so its gradient is zero up to
            # rounding and Adam turns that noise into lr-sized steps that differ with the reduction order. It
            # has no effect on any output; compare the query and value biases only.
            c = x.shape[0] // 3
            x, y = torch.cat([x[:c], x[2 * c:]]), torch.cat([y[:c], y[2 * c:]])
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6, msg=k)
    ma, mb = metrics(tmp_path / "single"), metrics(tmp_path / "ddp")
    assert [m["step"] for m in ma] == [m["step"] for m in mb]
    for x, y in zip(ma, mb):
        for key in ("loss", "val_loss"):
            if key in x:
                assert x[key] == pytest.approx(y[key], abs=1e-5)


# ---------------------------------------------------------------------------------------------------- fail safe
@contextlib.contextmanager
def interrupted_at_first_checkpoint(monkeypatch):
    """The training run inside is killed (``KeyboardInterrupt``) right after writing its first checkpoint."""
    real_save = ac_trainer.save_checkpoint

    def save_then_die(path, payload):
        real_save(path, payload)
        raise KeyboardInterrupt

    monkeypatch.setattr(ac_trainer, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        yield
    monkeypatch.setattr(ac_trainer, "save_checkpoint", real_save)


def test_resume_of_an_init_run_restores_init_and_data(dataset, encoder_dir, tmp_path, monkeypatch):
    """A run started with --init (no encoder in its config) resumes with nothing but --resume, bit-exactly; a
    different --init / --data / config on resume is refused naming the setting and both values."""
    first = train(small_config(encoder_dir, total_steps=1, warmup_steps=0, anneal_steps=0, ckpt_every=0),
                  [dataset], tmp_path / "first", progress=False)
    cfg = small_config(None, total_steps=4, warmup_steps=0, anneal_steps=0, ckpt_every=2)
    full = train(cfg, [dataset], tmp_path / "full", init=str(first), progress=False)
    with interrupted_at_first_checkpoint(monkeypatch):
        train(cfg, [dataset], tmp_path / "cut", init=str(first), progress=False)
    assert TrainConfig.from_yaml(tmp_path / "cut" / "config.yaml").init == str(first)
    with pytest.raises(ValueError, match=r"--init differs .*run: '.*first/model', given: '.*full/model'"):
        train(None, None, tmp_path / "cut", resume=True, init=str(full), progress=False)
    with pytest.raises(ValueError, match=r"--data differs .*first"):
        train(None, [tmp_path / "first"], tmp_path / "cut", resume=True, progress=False)
    with pytest.raises(ValueError, match=r"lr \(run: 0.001, given: 0.005\)"):
        train(small_config(None, total_steps=4, warmup_steps=0, anneal_steps=0, ckpt_every=2, lr=5e-3), None,
              tmp_path / "cut", resume=True, progress=False)
    # the original config (init: null) and --init may be given again
    resumed = train(cfg, [dataset], tmp_path / "cut", resume=True, init=str(first), progress=False)
    a, b = predictor_weights(full), predictor_weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def run_cli(module, argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser()
    module.configure(p)
    return module.run(p.parse_args([str(a) for a in argv]))


def test_cli_resume_needs_only_out(dataset, encoder_dir, tmp_path, monkeypatch):
    from vjepa2_ac.commands import train as train_cmd

    small_config(encoder_dir, total_steps=2, warmup_steps=0, anneal_steps=0, ckpt_every=1).to_yaml(tmp_path / "c.yaml")
    with interrupted_at_first_checkpoint(monkeypatch):
        run_cli(train_cmd, ["--data", dataset, "--config", tmp_path / "c.yaml", "--out", tmp_path / "run",
                            "--no-progress"])
    with pytest.raises(SystemExit, match=r"^train: --resume: --init differs from the run's \(run: None, given: 'x'\)$"):
        run_cli(train_cmd, ["--out", tmp_path / "run", "--resume", "--init", "x", "--no-progress"])
    assert run_cli(train_cmd, ["--out", tmp_path / "run", "--resume", "--no-progress"]) == 0
    assert (tmp_path / "run" / "model" / "predictor.safetensors").is_file()


def test_cli_user_errors_are_one_line_and_leave_no_empty_out(dataset, encoder_dir, tmp_path):
    from vjepa2_ac.commands import encode_dataset as encode_cmd
    from vjepa2_ac.commands import pretrain_encoder as pretrain_cmd
    from vjepa2_ac.commands import train as train_cmd

    good = small_config(encoder_dir, total_steps=2, warmup_steps=0, anneal_steps=0)
    good.to_yaml(tmp_path / "good.yaml")
    (tmp_path / "unknown.yaml").write_text("batch_sise: 3\n")
    (tmp_path / "bad_value.yaml").write_text("batch_size: -1\n")
    (tmp_path / "not_yaml.yaml").write_text("batch_size: [1\n")
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "new" / "run"
    cases = [
        (["--data", tmp_path / "missing", "--config", tmp_path / "good.yaml"], r"--data .*missing: no such file"),
        (["--data", dataset, "--val-data", tmp_path / "gone", "--config", tmp_path / "good.yaml"], r"--val-data .*gone"),
        (["--data", dataset, "--config", tmp_path / "nope.yaml"], r"--config .*nope.yaml: no such file"),
        (["--data", dataset, "--config", tmp_path / "unknown.yaml"], r"--config .*unknown.yaml: .*batch_sise"),
        (["--data", dataset, "--config", tmp_path / "bad_value.yaml"], r"--config .*bad_value.yaml: .*batch_size"),
        (["--data", dataset, "--config", tmp_path / "not_yaml.yaml"], r"--config .*not_yaml.yaml: "),
        (["--data", dataset, "--config", tmp_path / "good.yaml", "--set", "lr=-1"], r"--set: .*lr"),
        (["--data", dataset, "--config", tmp_path / "good.yaml", "--init", tmp_path / "no_model"],
         r"--init .*no_model"),
        (["--data", dataset, "--config", tmp_path / "good.yaml", "--set", "batch_size=6", "--set",
          "grad_accum_steps=4"], r".*divisible"),  # fails inside train(), after --out was created
        (["--config", tmp_path / "good.yaml"], r"--data is required"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit, match=rf"^train: {message}") as err:
            run_cli(train_cmd, [*argv, "--out", out, "--no-progress"])
        assert "\n" not in str(err.value.code), argv
        assert not (tmp_path / "new").exists(), argv  # nothing created, or removed again
    with pytest.raises(SystemExit, match=r"^train: --out .*a_file/run: not writable"):
        run_cli(train_cmd, ["--data", dataset, "--config", tmp_path / "good.yaml", "--out", tmp_path / "a_file" / "run"])
    with pytest.raises(SystemExit, match=r"^train: --out .*a_file: not a directory"):
        run_cli(train_cmd, ["--data", dataset, "--config", tmp_path / "good.yaml", "--out", tmp_path / "a_file"])
    # an existing --out is never removed
    (tmp_path / "kept").mkdir()
    with pytest.raises(SystemExit, match="divisible"):
        run_cli(train_cmd, ["--data", dataset, "--config", tmp_path / "good.yaml", "--out", tmp_path / "kept",
                            "--set", "batch_size=6", "--set", "grad_accum_steps=4"])
    assert (tmp_path / "kept").is_dir()

    with pytest.raises(SystemExit, match=r"^encode-dataset: --encoder .*no_encoder"):
        run_cli(encode_cmd, ["--data", dataset, "--encoder", tmp_path / "no_encoder", "--out", out])
    with pytest.raises(SystemExit, match=r"^encode-dataset: --data .*missing: no such file"):
        run_cli(encode_cmd, ["--data", tmp_path / "missing", "--encoder", encoder_dir, "--out", out])
    with pytest.raises(SystemExit, match=r"^pretrain-encoder: --config .*unknown.yaml: .*batch_sise"):
        run_cli(pretrain_cmd, ["--data", dataset, "--config", tmp_path / "unknown.yaml", "--out", out])
    (tmp_path / "pre.yaml").write_text("batch_size: 6\ngrad_accum_steps: 4\ntotal_steps: 2\n")
    with pytest.raises(SystemExit, match=r"^pretrain-encoder: .*divisible"):
        run_cli(pretrain_cmd, ["--data", dataset, "--config", tmp_path / "pre.yaml", "--out", out, "--no-progress"])
    assert not (tmp_path / "new").exists()


def test_set_overrides_reach_into_mappings_and_merge():
    from vjepa2_ac.commands.train import apply_overrides
    from vjepa2_ac.training.config import TrainConfig

    base = TrainConfig.from_dict({"predictor": {"predictor_embed_dim": 128, "depth": 4, "num_heads": 2},
                                  "lr_scale": {"action_encoder": 50}})
    cfg = apply_overrides(TrainConfig, base, ["predictor.depth=2", "total_steps=7"])
    assert cfg.predictor == {"predictor_embed_dim": 128, "depth": 2, "num_heads": 2} and cfg.total_steps == 7
    cfg = apply_overrides(TrainConfig, base, ["predictor={depth: 3, predict_residual: true}"])
    assert cfg.predictor == {"predictor_embed_dim": 128, "depth": 3, "num_heads": 2, "predict_residual": True}
    cfg = apply_overrides(TrainConfig, base, ["lr_scale.state_encoder=10"])
    assert cfg.lr_scale == {"action_encoder": 50, "state_encoder": 10}
    assert base.predictor["depth"] == 4  # the base config is not touched
    for overrides, message in [(["predictor.dept=2"], r"unknown ACPredictorConfig fields \['dept'\]"),
                               (["lr.x=1"], r"--set lr.x=1: lr is not a mapping"),
                               (["nope.x=1"], r"unknown TrainConfig key 'nope'"),
                               (["predictor.=1"], r"KEY may be dotted"),
                               (["predictor"], r"expects KEY=VALUE")]:
        with pytest.raises(SystemExit, match=message):
            apply_overrides(TrainConfig, base, overrides)


def _main_first_worker(rank: int, world: int, port: int, marker: str) -> None:
    import time

    import torch.distributed as dist

    from vjepa2_ac.training.distributed import main_process_first

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        with main_process_first():
            if rank == 0:
                time.sleep(0.5)  # a slow download: the others must not start before it ends
                Path(marker).write_text("done")
            elif not Path(marker).is_file():
                raise AssertionError(f"rank {rank} entered before rank 0 finished")
    finally:
        dist.destroy_process_group()


def test_main_process_first_lets_rank_0_fetch_before_the_others(tmp_path):
    import socket

    import torch.multiprocessing as mp

    from vjepa2_ac.training.distributed import main_process_first

    with main_process_first():  # no process group: just the block
        pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_main_first_worker, args=(3, port, str(tmp_path / "marker")), nprocs=3, join=True)
