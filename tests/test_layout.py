"""The package layering: each layer imports only those below it (read from the source, so lazy imports count too).

    vjepa2_ac.model     -> nothing of envs, planners or the application
    vjepa2_ac.data      -> model
    vjepa2_ac.training  -> model, data
    vjepa2_ac.agent     -> model, data, planners, envs
    vjepa2_ac.eval      -> the above and agent
    envs                -> no torch, no vjepa2_ac
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> top-level modules (or vjepa2_ac sub-packages) it must not import
FORBIDDEN = {
    "vjepa2_ac/model": {"envs", "planners", "vjepa2_ac.agent", "vjepa2_ac.eval", "vjepa2_ac.data",
                        "vjepa2_ac.training", "vjepa2_ac.commands"},
    "vjepa2_ac/data": {"planners", "vjepa2_ac.agent", "vjepa2_ac.eval", "vjepa2_ac.training", "vjepa2_ac.commands"},
    "vjepa2_ac/training": {"planners", "vjepa2_ac.agent", "vjepa2_ac.eval", "vjepa2_ac.commands"},
    "vjepa2_ac/agent": {"vjepa2_ac.eval", "vjepa2_ac.training", "vjepa2_ac.commands"},
    "vjepa2_ac/eval": {"vjepa2_ac.training", "vjepa2_ac.commands"},
    "envs": {"torch", "vjepa2_ac", "planners"},
    "planners": {"envs", "vjepa2_ac.agent", "vjepa2_ac.eval", "vjepa2_ac.commands"},
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def violates(module: str, forbidden: set[str]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_layer_imports_only_the_layers_below(package):
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        if "assets" in path.parts:  # asset tools (mesh decimation) are not part of the package's code
            continue
        hits = sorted(m for m in imported_modules(path) if violates(m, FORBIDDEN[package]))
        if hits:
            bad[str(path.relative_to(ROOT))] = hits
    assert not bad, f"{package} imports what lies above it: {bad}"


def test_the_flat_modules_are_gone_and_the_public_names_stay():
    old = ["encoder", "predictor", "world_model", "pose", "preprocess", "checkpoint", "bundled", "evaluation",
           "planning_config", "robot_loop", "plotting", "video"]
    assert not [name for name in old if (ROOT / "vjepa2_ac" / f"{name}.py").exists()]
    from planners import CEM, MPPI, CEMConfig, MPCAgent, MPPIConfig, Phase  # noqa: F401
    from vjepa2_ac import ACPredictor, ACPredictorConfig, Encoder, WorldModel  # noqa: F401


def test_task_names_have_one_spelling():
    """The registry is the only place task names are defined; the env ids and the CLI use its spelling."""
    import gymnasium

    from envs import ENV_IDS
    from envs.tasks import TASKS, task_spec
    from vjepa2_ac.commands.common import TASK_CHOICES

    assert tuple(TASKS) == TASK_CHOICES == ("reach", "grasp", "reach-with-object", "pick-place")
    for name, spec in TASKS.items():
        assert gymnasium.spec(spec.env_id).kwargs["task"] == name and ENV_IDS[spec.env_id][0] == name
    with pytest.raises(ValueError, match="did you mean 'pick-place'"):
        task_spec("pick_place")
    sources = [p for d in ("vjepa2_ac", "envs", "planners", "examples", "benchmarks") for p in (ROOT / d).rglob("*.py")]
    spelled = [str(p.relative_to(ROOT)) for p in sources if any(
        s in p.read_text(encoding="utf-8") for s in ('"pick_place"', '"reach_with_object"'))]
    assert spelled == [], f"the old task spellings appear in {spelled}"
