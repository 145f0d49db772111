"""The latent decoder (a tool for looking, never on the planning path), ``vjepa2-ac train-decoder`` and
``vjepa2-ac imagine``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa2_ac.cli import main
from vjepa2_ac.model.decoder import (
    LatentDecoder,
    LatentDecoderConfig,
    decoder_dir,
    load_decoder,
    target_images,
)

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "vjepa2_ac" / "models" / "vjepa2-ac-sim-small"
# Mean pixel L1 ([0, 1] units) of the shipped decoder on a pick-place reset frame: measured 0.0100 (seeds 7, 123,
# 5000); the bound leaves a 1.5x margin.
SHIPPED_RECON_L1 = 0.015
TINY = dict(embed_dim=16, grid=(2, 2), image_size=16, channels=(16, 8, 8, 8))
TINY_CHANNELS = ["8", "8", "8", "8", "8"]  # the tiny world model: 64 px, 4x4 tokens -> 4 doublings
ACTIONS = "[[0.02, 0, 0, 0, 0, 0, 0], [0, 0.02, -0.01, 0, 0, 0, 0]]"


def tiny_decoder(seed: int = 0, **overrides) -> LatentDecoder:
    torch.manual_seed(seed)
    return LatentDecoder(LatentDecoderConfig(**{**TINY, **overrides})).eval()


@pytest.fixture(scope="module")
def tiny_model_dir(save_tiny_model, tiny_world_model):
    """The tiny world model (64 px, 4x4 tokens of 64 dims) with a planning.json and a tiny random decoder."""
    from vjepa2_ac.agent import PhaseSpec, PlanningConfig, TaskPlan

    path = save_tiny_model(PlanningConfig(camera="workspace", image_size=64,
                                          planner={"samples": 8, "topk": 2, "iterations": 1},
                                          tasks={"reach": TaskPlan(3, [PhaseSpec("final")])}))
    torch.manual_seed(0)
    LatentDecoder(LatentDecoderConfig.for_world_model(tiny_world_model, channels=(8,) * 5)).save_pretrained(
        path / "decoder")
    return path


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Three short episodes of smooth random 64 px frames in our HDF5 layout."""
    from vjepa2_ac.data.episode import write_episode

    root = tmp_path_factory.mktemp("decoder_data")
    rng = np.random.default_rng(0)
    for e in range(3):
        coarse = rng.integers(0, 256, size=(5, 4, 4, 3)).astype(np.uint8)
        frames = coarse.repeat(16, axis=1).repeat(16, axis=2)  # [5, 64, 64, 3]
        states = np.zeros((5, 7), np.float32)
        states[:, 0] = np.linspace(0.3, 0.4, 5)
        write_episode(root / f"ep{e}.h5", frames, states, metadata={"control_hz": 4.0})
    return root


# ---------------------------------------------------------------------------------------------- the module
def test_shapes_and_range():
    dec = tiny_decoder()
    out = dec(torch.randn(3, 4, 16) * 10)
    assert out.shape == (3, 3, 16, 16) and out.min() >= 0 and out.max() <= 1
    assert dec(torch.randn(2, 5, 4, 16)).shape == (2, 5, 3, 16, 16)  # leading dims kept
    assert dec.decode(torch.randn(2, 4, 16)).dtype == np.uint8
    with pytest.raises(ValueError, match=r"latents must be \[B, N=4, D=16\]"):
        dec(torch.randn(3, 5, 16))
    with pytest.raises(ValueError, match="channels needs 4 widths"):
        LatentDecoderConfig(**{**TINY, "channels": (8, 8)})
    with pytest.raises(ValueError, match="power of 2"):
        LatentDecoderConfig(**{**TINY, "image_size": 24})


def test_config_for_the_world_model(tiny_world_model):
    cfg = LatentDecoderConfig.for_world_model(tiny_world_model)
    assert (cfg.embed_dim, cfg.grid, cfg.image_size, cfg.channels) == (64, (4, 4), 64, (192, 128, 64, 32, 16))


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    dec = tiny_decoder()
    z = torch.randn(2, 4, 16)
    dec.save_pretrained(tmp_path / "model" / "decoder")
    assert sorted(p.name for p in (tmp_path / "model" / "decoder").iterdir()) == ["config.json", "decoder.safetensors"]
    for loaded in (LatentDecoder.from_pretrained(tmp_path / "model" / "decoder"),
                   load_decoder(tmp_path / "model" / "decoder"), load_decoder(tmp_path / "model")):
        assert loaded.config == dec.config
        assert torch.equal(loaded(z), dec(z))
    with pytest.raises(FileNotFoundError, match="has no decoder.*train-decoder"):
        load_decoder(tmp_path)
    assert decoder_dir("vjepa2-ac-sim-small") == BUNDLED / "decoder"


def test_target_images_match_the_encoder_view():
    frames = np.zeros((2, 80, 64, 3), np.uint8)
    frames[:, 8:72] = 255  # the centre square is white, the rows cropped away are black
    x = target_images(frames, 32)
    assert x.shape == (2, 3, 32, 32) and torch.allclose(x, torch.ones_like(x))


def test_a_tiny_decoder_overfits_a_few_frames():
    from vjepa2_ac.commands.train_decoder import decoder_loss

    torch.manual_seed(0)
    dec = tiny_decoder().train()
    z = torch.randn(4, 4, 16)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    target = torch.stack([torch.stack([xx, yy, (xx * yy) ** (i + 1)]) for i in range(4)])  # [4, 3, 16, 16]
    target[1, :, 4:12, 4:12] = 1.0
    opt = torch.optim.Adam(dec.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        loss, l1 = decoder_loss(dec(z), target, 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(l1.detach()))
    assert losses[-1] < 0.35 * losses[0], losses[::10]


def test_planning_never_imports_the_decoder():
    for package in ("planners", "vjepa2_ac/agent"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            modules = set()
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Import):
                    modules.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    modules.add(node.module)
            assert not [m for m in modules if "decoder" in m], path
            assert "LatentDecoder" not in text and "load_decoder" not in text, path


# ---------------------------------------------------------------------------------------------- train-decoder
def _train(data: Path, model: Path, out: Path, *extra: str) -> int:
    return main(["train-decoder", "--data", str(data), "--model", str(model), "--out", str(out), "--steps", "6",
                 "--batch-size", "4", "--channels", *TINY_CHANNELS, "--save-every", "3", "--log-every", "3",
                 "--threads", "1", *extra])


def test_train_decoder_writes_a_loadable_decoder_and_resumes_exactly(tiny_dataset, save_tiny_model, tmp_path,
                                                                     monkeypatch, capsys):
    from safetensors.torch import load_file

    import vjepa2_ac.commands.train_decoder as command
    from vjepa2_ac.agent import PlanningConfig

    model = save_tiny_model(PlanningConfig(image_size=64))
    assert _train(tiny_dataset, model, tmp_path / "a", "--install") == 0
    dec = load_decoder(model)  # --install put it next to the model's config.json
    assert dec.config.grid == (4, 4) and dec.config.image_size == 64
    result = json.loads((tmp_path / "a" / "result.json").read_text())
    assert result["steps"] == 6 and 0 < result["train_l1"] < 1 and result["val_frames"] == 0
    reference = load_file(tmp_path / "a" / "decoder" / "decoder.safetensors")
    assert all(torch.equal(v, load_file(decoder_dir(model) / "decoder.safetensors")[k]) for k, v in reference.items())

    real_save = command._checkpoint

    def save_then_stop(path, payload):  # killed right after the first checkpoint (step 3 of 6)
        real_save(path, payload)
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "_checkpoint", save_then_stop)
    assert _train(tiny_dataset, model, tmp_path / "b") == 130
    monkeypatch.setattr(command, "_checkpoint", real_save)
    assert not (tmp_path / "b" / "decoder").exists()
    assert main(["train-decoder", "--out", str(tmp_path / "b"), "--resume", "--threads", "1"]) == 0
    resumed = load_file(tmp_path / "b" / "decoder" / "decoder.safetensors")
    assert resumed.keys() == reference.keys() and all(torch.equal(resumed[k], reference[k]) for k in reference)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6]

    capsys.readouterr()
    assert main(["train-decoder", "--out", str(tmp_path / "b"), "--resume", "--steps", "9"]) == 2
    assert "--steps differs from the run's" in capsys.readouterr().err
    assert _train(tiny_dataset, model, tmp_path / "b") == 2  # a run is there: --resume or another --out
    assert "pass --resume" in capsys.readouterr().err
    assert _train(tmp_path / "missing", model, tmp_path / "c") == 2
    assert "--data" in capsys.readouterr().err and not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------------------------- imagine
def test_imagine_actions_end_to_end(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["imagine", "--task", "reach", "--seed", "1", "--actions", ACTIONS, "--out", str(out),
                 "--model", str(tiny_model_dir), "--threads", "1"]) == 0
    assert (out / "imagine.png").stat().st_size > 1000 and (out / "imagine.mp4").stat().st_size > 1000
    report = json.loads((out / "imagine.json").read_text())
    assert report["mode"] == "actions" and report["steps"] == 2 and np.array(report["actions"]).shape == (2, 7)
    for key in ("latent_l1_one_step", "latent_l1_open_loop", "latent_l1_no_change", "pixel_l1_one_step"):
        assert len(report[key]) == 2 and all(np.isfinite(report[key])), key
    assert report["latent_l1_one_step"][0] == pytest.approx(report["latent_l1_open_loop"][0], abs=1e-5)
    assert len(report["decoder_recon_l1"]) == 3 and list(report["goals"]) == ["final"]

    actions = tmp_path / "actions.npy"  # the same actions from a file give the same report
    np.save(actions, np.array(json.loads(ACTIONS), np.float32))
    assert main(["imagine", "--task", "reach", "--seed", "1", "--actions", str(actions), "--out",
                 str(tmp_path / "npy"), "--model", str(tiny_model_dir), "--threads", "1"]) == 0
    again = json.loads((tmp_path / "npy" / "imagine.json").read_text())
    assert again["latent_l1_one_step"] == report["latent_l1_one_step"]


def test_imagine_plan_records_the_plans(tiny_model_dir, tmp_path):
    out = tmp_path / "plan"
    assert main(["imagine", "--task", "reach", "--plan", "--steps", "1", "--out", str(out),
                 "--model", str(tiny_model_dir), "--threads", "1"]) == 0
    report = json.loads((out / "imagine.json").read_text())
    assert report["mode"] == "plan" and len(report["plans"]) == 1 and len(report["plan_energies"]) == 1
    assert np.array(report["plans"][0]).shape[1] == 7 and (out / "imagine.png").is_file()


@pytest.mark.parametrize(("argv", "named"), [
    (["--actions", "[[0.1, 0.2, 0.3]]"], "--actions: expected a list of 7-vectors"),
    (["--actions", "missing_actions.npy"], "--actions"),
    (["--actions", ACTIONS, "--task", "fly"], "--task: unknown task 'fly'"),
    (["--actions", ACTIONS, "--object", "banana"], "--object: unknown object 'banana'"),
    (["--actions", ACTIONS, "--steps", "5"], "--steps 5 exceeds the 2 actions"),
    ([], "--actions FILE_OR_JSON or --plan"),
])
def test_imagine_bad_input_is_one_line_naming_the_argument(argv, named, tiny_model_dir, tmp_path, capsys):
    rc = main(["imagine", "--task", "reach", "--out", str(tmp_path / "out"), "--model", str(tiny_model_dir),
               "--threads", "1", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and named in err and len(err.strip().splitlines()) == 1, err


def test_imagine_refuses_a_model_without_decoder_and_an_unwritable_out(tiny_model_dir, save_tiny_model, tmp_path,
                                                                       capsys):
    from vjepa2_ac.agent import PlanningConfig

    bare = save_tiny_model(PlanningConfig(image_size=64))
    assert main(["imagine", "--task", "reach", "--actions", ACTIONS, "--out", str(tmp_path / "o"),
                 "--model", str(bare)]) == 2
    err = capsys.readouterr().err
    assert f"--model {bare} has no decoder" in err and "vjepa2-ac train-decoder" in err

    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["imagine", "--task", "reach", "--actions", ACTIONS, "--out", str(blocker / "sub"),
                 "--model", str(tiny_model_dir)]) == 2
    assert "--out" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- shipped decoder
def test_the_shipped_decoder_is_small_loads_and_reconstructs_a_sim_frame():
    from vjepa2_ac.agent import load_world_model, make_env

    weights = BUNDLED / "decoder" / "decoder.safetensors"
    assert weights.is_file() and weights.stat().st_size <= 5 * 2**20
    assert (BUNDLED / "decoder" / "README.md").is_file()
    torch.set_num_threads(1)
    wm, planning, _ = load_world_model("vjepa2-ac-sim-small")
    dec = load_decoder("vjepa2-ac-sim-small")
    assert dec.config.image_size == wm.encoder.crop_size and dec.config.num_tokens == wm.tokens_per_frame
    env = make_env(planning, "pick-place")
    try:
        obs, _ = env.reset(seed=123)
    finally:
        env.close()
    with torch.no_grad():
        recon = dec(wm.encode(obs["pixels"][None])[0])
    l1 = float((recon - target_images(obs["pixels"], dec.config.image_size)).abs().mean())
    assert l1 < SHIPPED_RECON_L1, l1
