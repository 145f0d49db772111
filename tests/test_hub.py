"""Hub-native models: WorldModel.from_pretrained on a hub repo id through huggingface_hub's cache (offline here) and
push_to_hub (against a stand-in for the hub API)."""

import shutil

import pytest
import torch

from vjepa2_ac import WorldModel
from vjepa2_ac.model.world_model import default_card

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache_with(model_dir, cache_dir, repo_id: str, revision: str = "main"):
    """Lay ``model_dir`` out as huggingface_hub's cache holds a downloaded snapshot of ``repo_id``."""
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / revision).write_text(COMMIT)


def test_from_pretrained_reads_a_hub_repo_from_the_cache(tiny_world_model, tmp_path):
    saved = tiny_world_model.save_pretrained(tmp_path / "saved")
    cache = tmp_path / "hub"
    _cache_with(saved, cache, "someone/tiny-wm")
    wm = WorldModel.from_pretrained("someone/tiny-wm", cache_dir=cache, local_files_only=True)
    for a, b in zip(wm.predictor.state_dict().values(), tiny_world_model.predictor.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert wm.encoder is not None
    with pytest.raises(OSError, match="cannot fetch world model 'someone/tiny-wm'.*offline"):
        WorldModel.from_pretrained("someone/tiny-wm", cache_dir=cache, revision="v2", local_files_only=True)
    with pytest.raises(OSError, match="cannot fetch world model 'someone/other'"):
        WorldModel.from_pretrained("someone/other", cache_dir=cache, local_files_only=True)


def test_push_to_hub_uploads_the_saved_model_with_a_card(tiny_world_model, monkeypatch):
    import huggingface_hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kw):
            calls["create"] = (repo_id, kw)

        def upload_folder(self, folder_path, repo_id, **kw):
            from pathlib import Path

            folder = Path(folder_path)
            calls["files"] = sorted(p.name for p in folder.iterdir())
            calls["card"] = (folder / "README.md").read_text()
            calls["upload"] = (repo_id, kw)
            return "https://huggingface.co/someone/tiny-wm/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = tiny_world_model.push_to_hub("someone/tiny-wm", token="hf_x", private=True)
    assert url.endswith("/commit/abc") and calls["token"] == "hf_x"
    assert calls["create"] == ("someone/tiny-wm", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls["files"] == ["README.md", "config.json", "encoder", "predictor.safetensors"]
    card = calls["card"]
    assert card == default_card("someone/tiny-wm") and card.startswith("---\nlicense: mit\nlibrary_name: vjepa2-ac\n")
    assert "pipeline_tag: robotics" in card and 'WorldModel.from_pretrained("someone/tiny-wm")' in card
