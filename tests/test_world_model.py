"""WorldModel: rollouts, energy, official checkpoint loading, save/load, bad input."""

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch

from vjepa2_ac.model.checkpoint import CheckpointError
from vjepa2_ac.model.predictor import ACPredictor, ACPredictorConfig
from vjepa2_ac.model.world_model import WorldModel, infer_predictor_config, normalize_reps

ATOL = 1e-4


@pytest.fixture(scope="module")
def wm(official_small):
    p = ACPredictor(ACPredictorConfig(**official_small["predictor_config"])).eval()
    p.load_official_state_dict(official_small["checkpoint"]["predictor"])
    return WorldModel(None, p)


def context(d, samples):
    z0 = d["encoder_tokens"][0:1, 0:1].expand(samples, -1, -1, -1)
    s0 = d["states_real"][0].view(1, 1, 7).expand(samples, -1, -1)
    goal = d["encoder_tokens"][0:1, 1:2]
    return z0, s0, goal


@torch.no_grad()
def test_teacher_forcing_matches_official(wm, official_small):
    d = official_small
    out = wm.predict(d["encoder_tokens"], d["actions"], d["states"])
    torch.testing.assert_close(out, d["predictor_out_normalized"], atol=ATOL, rtol=0)
    torch.testing.assert_close(normalize_reps(d["encoder_tokens_raw"]), d["encoder_tokens"], atol=1e-5, rtol=0)


@torch.no_grad()
def test_one_step_energy_landscape_matches_official(wm, official_small):
    d = official_small
    actions = d["landscape_actions"][:, None]
    z0, s0, goal = context(d, len(actions))
    zr, sr = wm.rollout(z0, s0, actions)
    energy = wm.energy(zr, goal)
    torch.testing.assert_close(energy, d["landscape_energy"], atol=ATOL, rtol=0)
    torch.testing.assert_close(sr[:, 0], d["landscape_next_poses"], atol=ATOL, rtol=0)
    assert energy.argmin() == d["landscape_energy"].argmin()


@pytest.mark.parametrize("use_cache", [True, False])
@torch.no_grad()
def test_two_step_rollouts_match_official(wm, official_small, use_cache):
    d = official_small
    z0, s0, goal = context(d, len(d["rollout_actions"]))
    zr, sr = wm.rollout(z0, s0, d["rollout_actions"], use_cache=use_cache)
    assert zr.shape == (8, 2, 16, 128) and sr.shape == (8, 2, 7)
    torch.testing.assert_close(zr, d["rollout_latents"][:, 1:], atol=ATOL, rtol=0)
    torch.testing.assert_close(sr, d["rollout_poses"][:, 1:], atol=ATOL, rtol=0)
    torch.testing.assert_close(wm.energy(zr[:, -1:], goal), d["rollout_energy"], atol=ATOL, rtol=0)


@torch.no_grad()
def test_cached_rollout_equals_full_recompute_with_longer_context(wm, official_small):
    d = official_small
    z0, s0 = d["encoder_tokens"][:, :2], d["states"][:, :2]  # T0 = 2 context frames
    actions = torch.cat([d["actions"], torch.randn(3, 1, 7) * 0.05], 1)  # 1 known + 4 new -> H = 4
    cached = wm.rollout(z0, s0, actions)
    full = wm.rollout(z0, s0, actions, use_cache=False)
    assert cached[0].shape == (3, 4, 16, 128)
    torch.testing.assert_close(cached[0], full[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(cached[1], full[1], atol=0, rtol=0)
    chunked = wm.rollout(z0, s0, actions, chunk_size=2)
    torch.testing.assert_close(chunked[0], cached[0], atol=1e-5, rtol=0)


@torch.no_grad()
def test_memory_budget_chunks_and_gives_same_result(official_small):
    d = official_small
    p = ACPredictor(ACPredictorConfig(**official_small["predictor_config"])).eval()
    p.load_official_state_dict(d["checkpoint"]["predictor"])
    per_sample = WorldModel(None, p).rollout_bytes_per_sample(2)
    budget = WorldModel(None, p, memory_budget_mb=3 * per_sample / 2**20)
    assert budget.auto_chunk_size(8, 2) == 3
    z0, s0, goal = context(d, 8)
    a = budget.rollout(z0, s0, d["rollout_actions"])[0]
    b = WorldModel(None, p).rollout(z0, s0, d["rollout_actions"])[0]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_rollout_is_differentiable_in_actions(wm, official_small):
    d = official_small
    z0, s0, goal = context(d, 4)
    actions = (d["rollout_actions"][:4].clone()).requires_grad_(True)
    zr, _ = wm.rollout(z0, s0, actions)
    wm.energy(zr[:, -1:], goal).sum().backward()
    assert actions.grad is not None and torch.isfinite(actions.grad).all() and actions.grad.abs().sum() > 0


@torch.no_grad()
def test_bf16_autocast_rollout_is_close(wm, official_small):
    d = official_small
    actions = d["landscape_actions"][:, None]
    z0, s0, goal = context(d, len(actions))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        zr, sr = wm.rollout(z0, s0, actions)
        energy = wm.energy(zr, goal)
    assert zr.dtype == torch.float32 and sr.dtype == torch.float32
    torch.testing.assert_close(energy, d["landscape_energy"], atol=1e-2, rtol=0)
    torch.testing.assert_close(sr[:, 0], d["landscape_next_poses"], atol=1e-6, rtol=0)


def test_energy_shapes(wm):
    z = torch.randn(5, 1, 16, 128)
    g = torch.randn(1, 1, 16, 128)
    e = wm.energy(z, g)
    assert e.shape == (5,)
    torch.testing.assert_close(e, (z - g).abs().mean(dim=(1, 2, 3)))
    torch.testing.assert_close(wm.energy(z, g.expand(5, -1, -1, -1)), e)
    from vjepa2_ac.model.world_model import latent_distance

    torch.testing.assert_close(latent_distance(z, g, rows_per_chunk=2), e)
    with pytest.raises(ValueError, match="one frame per sample"):
        wm.energy(torch.randn(5, 2, 16, 128), g)
    with pytest.raises(ValueError, match="does not match"):
        wm.energy(z, torch.randn(3, 1, 16, 128))


def test_bad_rollout_inputs(wm, official_small):
    d = official_small
    z0, s0, _ = context(d, 2)
    good = torch.zeros(2, 2, 7)
    with pytest.raises(ValueError, match=r"z0 must be latents \[B, T, N=16, D=128\]"):
        wm.rollout(z0[..., :64], s0, good)
    with pytest.raises(ValueError, match=r"s0 must have shape \[2, 1, 7\]"):
        wm.rollout(z0, s0[..., :6], good)
    with pytest.raises(ValueError, match="actions must be"):
        wm.rollout(z0, s0, torch.zeros(2, 2, 6))
    bad = good.clone()
    bad[1, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="actions contains NaN or inf"):
        wm.rollout(z0, s0, bad)
    s_bad = s0.clone()
    s_bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="s0 contains NaN or inf"):
        wm.rollout(z0, s_bad, good)
    with pytest.raises(ValueError, match="exceeds the predictor's 8 time steps"):
        wm.rollout(z0, s0, torch.zeros(2, 9, 7))
    with pytest.raises(RuntimeError, match="no encoder"):
        wm.encode(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))


# ------------------------------------------------------------------------------------------- checkpoints


def test_official_checkpoint_latent_only(tmp_path, official_small):
    path = tmp_path / "ac.pt"
    torch.save(official_small["checkpoint"], path)
    wm = WorldModel.from_official_checkpoint(path, predictor_config=official_small["predictor_config"],
                                             load_encoder=False)
    with torch.no_grad():
        out = wm.predict(official_small["encoder_tokens"], official_small["actions"], official_small["states"])
    torch.testing.assert_close(out, official_small["predictor_out_normalized"], atol=ATOL, rtol=0)
    assert not any(p.requires_grad for p in wm.predictor.parameters())


def test_infer_predictor_config_from_weights(official_small):
    from vjepa2_ac.model.checkpoint import strip_official_prefixes

    cfg = infer_predictor_config(strip_official_prefixes(official_small["checkpoint"]["predictor"]),
                                 num_heads=2, img_size=64, num_frames=16)
    assert cfg == ACPredictorConfig(**official_small["predictor_config"])


def test_truncated_and_missing_checkpoint_files(tmp_path, official_small):
    path = tmp_path / "ac.pt"
    torch.save(official_small["checkpoint"], path)
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt.*truncated or corrupt"):
        WorldModel.from_official_checkpoint(tmp_path / "cut.pt", load_encoder=False)
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        WorldModel.from_official_checkpoint(tmp_path / "nope.pt", load_encoder=False)
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="expected a dict with a 'predictor' entry"):
        WorldModel.from_official_checkpoint(tmp_path / "other.pt", load_encoder=False)
    bad = {"predictor": dict(official_small["checkpoint"]["predictor"])}
    del bad["predictor"]["module.predictor_norm.bias"]
    torch.save(bad, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="missing keys.*predictor_norm.bias"):
        WorldModel.from_official_checkpoint(tmp_path / "missing.pt", load_encoder=False,
                                            predictor_config=official_small["predictor_config"])


def test_unreachable_url_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VJEPA2_AC_CACHE", str(tmp_path))
    with pytest.raises(ConnectionError, match=r"cannot download http://127\.0\.0\.1:9/vjepa2-ac-vitg\.pt"):
        WorldModel.from_official_checkpoint("http://127.0.0.1:9/vjepa2-ac-vitg.pt", load_encoder=False)
    assert not list(tmp_path.iterdir()), "a failed download left files behind"


@pytest.fixture
def file_server(monkeypatch):
    """``serve(payload) -> (base url, hits)``: a local HTTP server with byte ranges; huggingface_hub online."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    servers = []

    def serve(payload: bytes):
        hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                start = int(self.headers.get("Range", "bytes=0-").split("=")[1].split("-")[0])
                hits.append((self.path, start))
                body = payload[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", hits

    yield serve
    for server in servers:
        server.shutdown()


def test_url_download_is_atomic_and_cached(tmp_path, official_small, file_server):
    from vjepa2_ac.model.checkpoint import resolve_file

    src = tmp_path / "src.pt"
    torch.save(official_small["checkpoint"], src)
    payload = src.read_bytes()
    base, hits = file_server(payload)
    url, cache = f"{base}/files/vjepa2-ac-small.pt", tmp_path / "cache"
    local = resolve_file(url, cache_dir=cache)
    assert local == cache / "vjepa2-ac-small.pt" and local.read_bytes() == payload
    assert resolve_file(url, cache_dir=cache) == local and len(hits) == 1  # second call uses the cache
    assert [p.name for p in cache.iterdir()] == ["vjepa2-ac-small.pt"]


def test_url_download_resumes_checks_sha256_and_respects_offline_mode(tmp_path, file_server, monkeypatch):
    import hashlib

    import huggingface_hub.constants

    from vjepa2_ac.model.checkpoint import resolve_file

    payload = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256(payload).hexdigest()
    base, hits = file_server(payload)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "a.pt.part").write_bytes(payload[:300_000])  # what an interrupted download left
    local = resolve_file(f"{base}/a.pt", cache_dir=cache, sha256=digest)
    assert local.read_bytes() == payload and hits == [("/a.pt", 300_000)]  # resumed, not restarted
    assert sorted(p.name for p in cache.iterdir()) == ["a.pt", "a.pt.sha256"]
    assert resolve_file(f"{base}/a.pt", cache_dir=cache, sha256=digest) == local  # checked once, then trusted

    base, _ = file_server(payload[:-1] + b"x")  # a corrupted server
    with pytest.raises(CheckpointError, match=f"SHA-256 .* is not the expected {digest} \\(the download was deleted"):
        resolve_file(f"{base}/b.pt", cache_dir=cache, sha256=digest)
    assert not (cache / "b.pt").exists()
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits"):
        resolve_file(f"{base}/b.pt", cache_dir=cache, sha256="abc")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert resolve_file(f"{base}/a.pt", cache_dir=cache) == local  # cached files need no network
    with pytest.raises(ConnectionError, match="offline mode \\(HF_HUB_OFFLINE\\)"):
        resolve_file(f"{base}/c.pt", cache_dir=cache)


def test_save_and_load_latent_only_round_trip(tmp_path, wm, official_small):
    wm.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "predictor.safetensors"]
    loaded = WorldModel.from_pretrained(tmp_path / "model")
    for k, v in wm.predictor.state_dict().items():
        assert torch.equal(loaded.predictor.state_dict()[k], v)
    wm.save_pretrained(tmp_path / "model")  # overwriting an existing directory works
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp dirs left behind"
    (tmp_path / "model" / "predictor.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        WorldModel.from_pretrained(tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="no world model directory"):
        WorldModel.from_pretrained(tmp_path / "does-not-exist")


# ------------------------------------------------------------------------------------------- with the encoder


@pytest.fixture(scope="module")
def full_wm(tmp_path_factory, official_small):
    path = tmp_path_factory.mktemp("ckpt") / "vjepa2-ac-small.pt"
    torch.save({**official_small["checkpoint"], "target_encoder": official_small["checkpoint"]["encoder"],
                "opt": {"state": {}}}, path)
    return WorldModel.from_official_checkpoint(path, encoder_config=official_small["encoder_config"],
                                               predictor_config=official_small["predictor_config"])


@torch.no_grad()
def test_official_checkpoint_encode_and_predict(full_wm, official_small):
    d = official_small
    z = full_wm.encode(d["clip_normalized"])
    torch.testing.assert_close(z, d["encoder_tokens"], atol=ATOL, rtol=0)
    # uint8 camera frames take the official robot preprocessing (centre crop, bilinear resize, ImageNet norm)
    z_uint8 = full_wm.encode(d["frames_uint8"])
    assert z_uint8.shape == (1, 2, 16, 128)
    torch.testing.assert_close(z_uint8[0], d["encoder_tokens"][0, :2], atol=ATOL, rtol=0)
    pred = full_wm.predict(z, d["actions"], d["states"])
    torch.testing.assert_close(pred, d["predictor_out_normalized"], atol=ATOL, rtol=0)


@torch.no_grad()
def test_encode_then_plan_one_step_from_frames(full_wm, official_small):
    d = official_small
    z = full_wm.encode(d["frames_uint8"])  # [1, 2, N, D]: context frame and goal frame
    A = d["landscape_actions"][:, None]
    zr, _ = full_wm.rollout(z[:, :1].expand(len(A), -1, -1, -1), d["states_real"][0].view(1, 1, 7).expand(len(A), -1, -1), A)
    torch.testing.assert_close(full_wm.energy(zr, z[:, 1:]), d["landscape_energy"], atol=ATOL, rtol=0)


def test_save_and_load_with_encoder(tmp_path, full_wm, official_small):
    full_wm.save_pretrained(tmp_path / "wm")
    loaded = WorldModel.from_pretrained(tmp_path / "wm")
    frames = official_small["frames_uint8"]
    torch.testing.assert_close(loaded.encode(frames), full_wm.encode(frames), atol=0, rtol=0)
    assert not any(p.requires_grad for p in loaded.parameters())
    latent_only = WorldModel.from_pretrained(tmp_path / "wm", load_encoder=False)
    assert latent_only.encoder is None


def test_encoder_predictor_mismatch_is_refused(full_wm):
    other = ACPredictor(ACPredictorConfig(img_size=32, patch_size=16, num_frames=4, embed_dim=128,
                                          predictor_embed_dim=64, depth=1, num_heads=1))
    with pytest.raises(ValueError, match="tokens per frame"):
        WorldModel(full_wm.encoder, other)


def test_atomic_directory_permissions_and_failure(tmp_path):
    import os
    import stat

    from vjepa2_ac.atomic import atomic_directory

    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("1")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0o700
    assert stat.S_IMODE((tmp_path / "out" / "a.txt").stat().st_mode) == 0o666 & ~umask
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out") as tmp:
        (tmp / "b.txt").write_text("2")
        raise RuntimeError("crash mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp dir left, old content intact
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.txt"]


@pytest.mark.slow
@torch.no_grad()
def test_compiled_predictor_gives_the_eager_rollout(tiny_world_model):
    """``compile_predictor`` (torch.compile of the blocks) changes speed, not results."""
    import copy

    wm = tiny_world_model
    g = torch.Generator().manual_seed(0)
    z0 = normalize_reps(torch.randn(1, 1, wm.tokens_per_frame, wm.embed_dim, generator=g)).expand(6, -1, -1, -1)
    s0 = torch.zeros(6, 1, 7)
    actions = 0.05 * torch.randn(6, 2, 7, generator=g)
    eager = wm.rollout(z0, s0, actions)
    compiled = copy.deepcopy(wm).compile_predictor()
    assert compiled is not wm
    for _ in range(2):  # first call compiles, the second reuses the compiled graphs
        got = compiled.rollout(z0, s0, actions)
        torch.testing.assert_close(got[0], eager[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(got[1], eager[1], atol=0, rtol=0)


def test_saved_world_model_files_have_normal_permissions(tiny_world_model, tmp_path):
    """safetensors writes 0o600 and mkdtemp 0o700: a saved model must still be readable by others (shipping)."""
    import os
    import stat

    umask = os.umask(0o022)
    try:
        out = tiny_world_model.save_pretrained(tmp_path / "wm")
    finally:
        os.umask(umask)
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert modes["predictor.safetensors"] == 0o644 and modes["encoder/model.safetensors"] == 0o644
    assert modes["encoder"] == 0o755 and modes["."] == 0o755
