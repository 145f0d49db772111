"""Shared pytest setup: headless rendering and single-threaded torch (the CI machine has ~1 core of throughput)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def official_small() -> dict:
    """The official-code test vectors (see tests/fixtures/README.md)."""
    import torch

    return torch.load(FIXTURES / "official_ac_small.pt", weights_only=True)


@pytest.fixture(scope="session")
def tiny_world_model():
    """A tiny random WorldModel (64 px, patch 16, one encoder layer, one predictor block) for end-to-end tests."""
    import torch
    from transformers import VJEPA2Config

    from vjepa2_ac import ACPredictor, ACPredictorConfig, Encoder, WorldModel

    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        enc = Encoder(VJEPA2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=1, crop_size=64,
                                   patch_size=16))
        pred = ACPredictor(ACPredictorConfig(img_size=64, patch_size=16, embed_dim=64, predictor_embed_dim=32,
                                             depth=1, num_heads=2))
    return WorldModel(enc, pred)


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory) -> Path:
    """A tiny random encoder (32 px, patch 16, one layer) saved in HF layout, for training tests."""
    import torch
    from transformers import VJEPA2Config

    from vjepa2_ac.model.encoder import Encoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        cfg = VJEPA2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, crop_size=32, patch_size=16,
                           pred_hidden_size=16, pred_num_hidden_layers=1, pred_num_attention_heads=2)
        return Encoder(cfg).save_pretrained(tmp_path_factory.mktemp("enc") / "encoder")


@pytest.fixture(scope="session")
def save_tiny_model(tmp_path_factory, tiny_world_model):
    """``save_tiny_model(planning)`` -> a directory with the tiny world model and ``planning`` as its planning.json
    (what ``--model DIR`` and ``load_world_model(DIR)`` read)."""

    def save(planning) -> Path:
        path = tmp_path_factory.mktemp("tiny_wm")
        tiny_world_model.save_pretrained(path)
        planning.save(path)
        return path

    return save
