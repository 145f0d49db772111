"""Every example runs (tiny model, tiny settings) or, for the released-weights one, fails offline with one line."""

from __future__ import annotations

import ast
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from vjepa2_ac.agent import PlanningConfig, TaskPlan
from vjepa2_ac.agent.planning import PhaseSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# the library's packages, its declared dependencies and the standard library
PUBLIC_MODULES = {"vjepa2_ac", "planners", "envs", "torch", "transformers", "numpy", "scipy", "safetensors",
                  "huggingface_hub", "gymnasium", "mujoco", "pybullet", "h5py", "tqdm", "yaml", "av",
                  "pyarrow", "matplotlib", "PIL", *sys.stdlib_module_names}


@pytest.fixture(scope="module")
def tiny_model_dir(save_tiny_model):
    phases = [PhaseSpec("grasped", 1), PhaseSpec("lifted", 1), PhaseSpec("placed")]
    return save_tiny_model(PlanningConfig(camera="workspace", image_size=64,
                                          planner={"samples": 16, "topk": 4, "iterations": 2},
                                          tasks={"pick-place": TaskPlan(3, phases)}))


def run_example(name: str, argv: list[str], monkeypatch, cwd: Path) -> None:
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [name, *argv])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")


def test_plan_reach(tiny_model_dir, tmp_path, monkeypatch, capsys):
    run_example("plan_reach.py", ["--model", str(tiny_model_dir), "--steps", "2"], monkeypatch, tmp_path)
    out = capsys.readouterr().out
    assert "step  1 (phase 0):" in out and "s per action" in out


def test_pick_and_place(tiny_model_dir, tmp_path, monkeypatch, capsys):
    run_example("pick_and_place.py", ["--model", str(tiny_model_dir), "--out", "pp"], monkeypatch, tmp_path)
    assert "phase 3 (placed)" in capsys.readouterr().out  # the phases reached the last one
    assert (tmp_path / "pp" / "pick_and_place.png").is_file()
    assert any((tmp_path / "pp" / f"pick_and_place.{ext}").is_file() for ext in ("mp4", "gif"))


def test_energy_landscape(tiny_model_dir, tmp_path, monkeypatch, capsys):
    run_example("energy_landscape.py", ["--model", str(tiny_model_dir), "--grid", "3", "--out", "l.png"],
                monkeypatch, tmp_path)
    assert (tmp_path / "l.png").stat().st_size > 10_000 and "ground truth" in capsys.readouterr().out


def test_examples_say_clearly_when_the_model_is_missing(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="plan_reach.py: .*no world model directory"):
        run_example("plan_reach.py", ["--model", str(tmp_path / "missing")], monkeypatch, tmp_path)


def test_released_weights_example_fails_offline_with_one_clear_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VJEPA2_AC_CACHE": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(EXAMPLES / "released_weights_gpu.py"), "--allow-cpu"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "cannot load the released weights" in proc.stderr and "facebook/vjepa2-vitg-fpc64-256" in proc.stderr


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_examples_compile_and_use_public_modules_only(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    assert ast.get_docstring(tree), f"{path.name} needs a docstring saying how to run it"
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                assert name.split(".")[0] in PUBLIC_MODULES, f"{path.name} imports {name}"
                private = [p for p in name.split(".") if p.startswith("_") and p != "__future__"]
                assert not private, f"{path.name} imports the private module {name}"


def test_real_robot_loop_on_the_sim_renders_the_models_view(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from vjepa2_ac.data import EpisodeFile

    out = tmp_path / "ep.h5"
    run_example("real_robot_loop.py", ["--model", str(tiny_model_dir), "--steps", "2", "--samples", "8", "--dry-run",
                                       "--out", str(out)], monkeypatch, tmp_path)
    assert "episode saved to" in capsys.readouterr().out
    with EpisodeFile(out) as ep:
        assert ep.frames().shape == (3, 64, 64, 3)  # the planning.json's image size (the env default is 256)
