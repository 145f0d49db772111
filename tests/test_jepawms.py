"""The jepa-wms V-JEPA 2-AC checkpoints: its layout, the state-token-free predictor of the retrained
``vjepa2_ac_droid``, its sliding-window unroll and its L2 planning cost, against vectors made by running jepa-wms
(tests/fixtures/README.md, jepawms_ac_small.pt)."""

import pytest
import torch

from vjepa2_ac import ACPredictor, ACPredictorConfig, WorldModel
from vjepa2_ac.model.checkpoint import CheckpointError, predictor_layout, strip_official_prefixes
from vjepa2_ac.model.world_model import normalize_reps

ATOL = 1e-4  # the fixture's stated tolerance (float64 re-runs differ from its fp32 values by <= 1.3e-5)


@pytest.fixture(scope="module")
def vectors(fixtures_dir):
    return torch.load(fixtures_dir / "jepawms_ac_small.pt", weights_only=True)


def _config(entry: dict) -> ACPredictorConfig:
    c = entry["predictor_config"]
    return ACPredictorConfig(img_size=c["img_size"], patch_size=c["patch_size"], embed_dim=c["embed_dim"],
                             predictor_embed_dim=c["predictor_embed_dim"], depth=c["depth"], num_heads=c["num_heads"],
                             state_tokens=c["proprio_tokens"])


def _model(entry: dict) -> WorldModel:
    pred = ACPredictor(_config(entry))
    pred.load_official_state_dict(entry["checkpoint"]["predictor"])  # layout detected
    return WorldModel(None, pred.eval().requires_grad_(False))


def _states(entry: dict) -> torch.Tensor:
    """The fixture's states (prop), or zeros (noprop: the predictor has no state token; poses only propagate)."""
    return entry["states"] if "states" in entry else torch.zeros(*entry["actions"].shape)


@pytest.mark.parametrize("name", ["noprop", "prop"])
def test_layout_is_detected_and_loaded_strictly(vectors, name):
    entry = vectors[name]
    sd = strip_official_prefixes(entry["checkpoint"]["predictor"])
    assert predictor_layout(sd) == "jepa-wms"
    wm = _model(entry)
    assert wm.config.cond_tokens == 1 + entry["predictor_config"]["proprio_tokens"]
    assert hasattr(wm.predictor, "state_encoder") == (name == "prop")
    broken = dict(entry["checkpoint"]["predictor"])
    del broken["module.predictor_blocks.1.mlp.fc2.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): predictor_blocks.1.mlp.fc2.bias"):
        ACPredictor(_config(entry)).load_official_state_dict(broken)
    with pytest.raises(ValueError, match="layout must be one of"):
        ACPredictor(_config(entry)).load_official_state_dict(entry["checkpoint"]["predictor"], layout="jepa_wms")
    if name == "noprop":  # a jepa-wms file read as the official layout: the missing encoders are named
        with pytest.raises(CheckpointError, match="state_encoder"):
            ACPredictor(ACPredictorConfig(**{**_config(entry).to_dict(), "state_tokens": 1})
                        ).load_official_state_dict(entry["checkpoint"]["predictor"], layout="official")


@pytest.mark.parametrize("name", ["noprop", "prop"])
def test_teacher_forcing_matches_jepawms(vectors, name):
    entry = vectors[name]
    wm = _model(entry)
    with torch.no_grad():
        raw = wm.predictor(entry["latents"], entry["actions"], _states(entry))
        normed = wm.predict(entry["latents"], entry["actions"], _states(entry))
    torch.testing.assert_close(raw, entry["teacher_forced_raw"], rtol=0, atol=ATOL)
    torch.testing.assert_close(normed, entry["teacher_forced_normalized"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", ["noprop", "prop"])
def test_windowed_unroll_matches_jepawms(vectors, name):
    entry = vectors[name]
    wm = _model(entry)
    z0, s0 = entry["latents"][:, :1], _states(entry)[:, :1]
    with torch.no_grad():
        z, s = wm.rollout(z0, s0, entry["unroll_ctx1_actions"], context_window=2)
        full, _ = wm.rollout(z0, s0, entry["unroll_ctx1_actions"])
    torch.testing.assert_close(z, entry["unroll_ctx1_latents"][:, 1:], rtol=0, atol=ATOL)
    if "unroll_ctx1_proprio" in entry:
        torch.testing.assert_close(s, entry["unroll_ctx1_proprio"][:, 1:], rtol=0, atol=1e-5)
    torch.testing.assert_close(full[:, :2], z[:, :2], rtol=0, atol=1e-5)  # within the window both agree
    assert (full[:, 2] - z[:, 2]).abs().max() > 1e-3  # from horizon 3 on, the window drops the context frame


@pytest.mark.parametrize("name", ["noprop", "prop"])
@pytest.mark.parametrize("cost", ["l1", "l2"])
def test_planning_costs_match_jepawms(vectors, name, cost):
    entry = vectors[name]
    wm = _model(entry)
    wm.cost, wm.context_window = cost, 2  # what planners pick up
    candidates = entry["plan_candidates"]
    s0 = entry["plan_z_init_proprio"] if "plan_z_init_proprio" in entry else torch.zeros(1, 1, 7)
    with torch.no_grad():
        z, _ = wm.rollout(entry["plan_z_init_latent"].expand(8, -1, -1, -1), s0.expand(8, -1, -1), candidates)
        energy = wm.energy(z[:, -1:], entry["plan_goal_latent"])
    torch.testing.assert_close(z, entry["plan_unroll_latents"][:, 1:], rtol=0, atol=ATOL)
    torch.testing.assert_close(energy, entry[f"plan_cost_{cost.upper()}_alpha0"], rtol=0, atol=ATOL)


def test_state_free_predictor_keeps_the_cache_exact(vectors):
    """Without the state token the KV-cached rollout (and its shared first step) still equals the uncached one, to
    float rounding (amplified by the fixture's scaled-up weights: the same size with the state token)."""
    wm = _model(vectors["noprop"])
    g = torch.Generator().manual_seed(0)
    z0 = normalize_reps(torch.randn(1, 1, 16, 128, generator=g)).expand(6, -1, -1, -1)
    s0 = torch.zeros(6, 1, 7)
    actions = torch.randn(6, 3, 7, generator=g) * 0.05
    with torch.no_grad():
        cached, _ = wm.rollout(z0, s0, actions)
        plain, _ = wm.rollout(z0, s0, actions, use_cache=False)
    torch.testing.assert_close(cached, plain, rtol=0, atol=ATOL)


def test_from_official_checkpoint_reads_a_jepawms_file(vectors, tmp_path):
    entry = vectors["noprop"]
    path = tmp_path / "droid_vj2ac_noprop.pth.tar"
    torch.save(entry["checkpoint"], path)
    wm = WorldModel.from_official_checkpoint(path, load_encoder=False, predictor_config=None,
                                             context_window=2, cost="l2")
    assert wm.config.state_tokens == 0 and wm.cost == "l2" and wm.context_window == 2
    wm = WorldModel.from_official_checkpoint(path, load_encoder=False, layout="jepa-wms",
                                             predictor_config=_config(entry).to_dict())
    with torch.no_grad():
        raw = wm.predictor(entry["latents"], entry["actions"], _states(entry))
    torch.testing.assert_close(raw, entry["teacher_forced_raw"], rtol=0, atol=ATOL)
    with pytest.raises(CheckpointError, match="no 'encoder' entry"):
        WorldModel.from_official_checkpoint(path, predictor_config=_config(entry).to_dict())


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="state_tokens must be 0 or 1"):
        ACPredictorConfig(state_tokens=2)
    pred = ACPredictor(ACPredictorConfig(img_size=32, patch_size=16, embed_dim=16, predictor_embed_dim=64, depth=1,
                                         num_heads=1))
    with pytest.raises(ValueError, match="cost must be 'l1' or 'l2', got 'l3'"):
        WorldModel(None, pred, cost="l3")
    wm = WorldModel(None, pred)
    with pytest.raises(ValueError, match="context_window must be None or an int >= 1"):
        wm.rollout(torch.zeros(1, 1, 4, 16), torch.zeros(1, 1, 7), torch.zeros(1, 1, 7), context_window=0)


def test_the_encoder_can_come_from_a_vjepa2_checkpoint(vectors, official_small, tmp_path):
    """jepa-wms files hold no encoder: ``encoder=`` takes a V-JEPA 2 checkpoint file (``vitg.pt``'s layout)."""
    entry = vectors["noprop"]
    predictor_path, encoder_path = tmp_path / "noprop.pth.tar", tmp_path / "vitg.pt"
    torch.save(entry["checkpoint"], predictor_path)
    torch.save({"encoder": official_small["checkpoint"]["encoder"]}, encoder_path)
    wm = WorldModel.from_official_checkpoint(predictor_path, encoder=str(encoder_path),
                                             encoder_config=official_small["encoder_config"],
                                             predictor_config=_config(entry).to_dict())
    tokens = wm.encode(official_small["clip_normalized"][:1, :2])
    assert tokens.shape == (1, 2, 16, 128)
    torch.testing.assert_close(tokens, official_small["encoder_tokens"][:1, :2], rtol=0, atol=1e-4)
    torch.save({"nothing": 1}, encoder_path)
    with pytest.raises(CheckpointError, match="expected a V-JEPA 2 checkpoint with an 'encoder' entry"):
        WorldModel.from_official_checkpoint(predictor_path, encoder=str(encoder_path),
                                            predictor_config=_config(entry).to_dict())


def test_convert_writes_a_model_that_from_pretrained_loads(vectors, tmp_path, capsys):
    from vjepa2_ac.cli import main

    entry = vectors["noprop"]
    path = tmp_path / "droid_vj2ac_noprop.pth.tar"
    torch.save(entry["checkpoint"], path)
    out = tmp_path / "converted"
    assert main(["convert", str(path), "--out", str(out), "--predictor", '{"img_size": 64, "num_heads": 2}',
                 "--cost", "l2", "--context-window", "2", "--encoder", "facebook/vjepa2-vitg-fpc64-256"]) == 0
    assert "state tokens 0, cost l2, context window 2" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "predictor.safetensors"]
    wm = WorldModel.from_pretrained(out, load_encoder=False)
    assert wm.cost == "l2" and wm.context_window == 2 and wm.encoder is None
    with torch.no_grad():
        z, _ = wm.rollout(entry["latents"][:, :1], _states(entry)[:, :1], entry["unroll_ctx1_actions"])
    torch.testing.assert_close(z, entry["unroll_ctx1_latents"][:, 1:], rtol=0, atol=ATOL)  # the saved window
    assert main(["convert", str(path), "--out", str(out), "--predictor", "[1]"]) == 2
    assert "--predictor must be a JSON object" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    assert "missing.pt" in capsys.readouterr().err
