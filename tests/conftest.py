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
