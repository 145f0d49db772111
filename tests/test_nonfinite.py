"""A NaN never reaches a motor: non-finite weights are refused at load, non-finite latents, goals and energies stop
every planner, and the robot loop turns that into a stop with nothing moved (issue "fail safe and fail early")."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from planners import (
    CEM,
    ICEM,
    MPPI,
    CEMConfig,
    GradientConfig,
    GradientPlanner,
    ICEMConfig,
    MPCAgent,
    MPPIConfig,
    NonFiniteError,
)
from vjepa2_ac import WorldModel
from vjepa2_ac.model.checkpoint import CheckpointError

PLANNERS = [CEM(CEMConfig.official(samples=8, topk=2, iterations=2)), MPPI(MPPIConfig(samples=8, iterations=2)),
            ICEM(ICEMConfig(samples=8, topk=2, iterations=2)), GradientPlanner(GradientConfig(iterations=2))]
IDS = ["cem", "mppi", "icem", "gradient"]


@pytest.fixture
def world_model(tiny_world_model) -> WorldModel:
    return copy.deepcopy(tiny_world_model).eval()


def _nan_weight(wm: WorldModel) -> None:
    with torch.no_grad():
        wm.predictor.predictor_embed.weight[0, 0] = float("nan")


def _inputs(wm: WorldModel):
    frames = np.random.default_rng(0).integers(0, 255, (1, 2, 64, 64, 3), dtype=np.uint8)
    z = wm.encode(frames)
    return z[:, :1], torch.tensor([[[0.5, 0.0, 0.3, 3.1, 0.0, 0.0, 0.0]]]), z[:, 1:]


# ---------------------------------------------------------------------------------------------- loading
def test_a_nan_weight_in_a_saved_model_is_refused_at_load_naming_the_tensor(world_model, tmp_path):
    _nan_weight(world_model)
    world_model.save_pretrained(tmp_path / "wm")
    with pytest.raises(CheckpointError, match=r"NaN or inf.*predictor_embed\.weight"):
        WorldModel.from_pretrained(tmp_path / "wm")


def test_a_nan_weight_in_an_official_state_dict_is_refused(official_small):
    from vjepa2_ac import ACPredictor, ACPredictorConfig

    sd = {k: v.clone() for k, v in official_small["checkpoint"]["predictor"].items()}
    name = next(k for k, v in sd.items() if v.is_floating_point() and v.ndim == 2)
    sd[name][0, 0] = float("inf")
    pred = ACPredictor(ACPredictorConfig(**official_small["predictor_config"]))
    before = copy.deepcopy(pred.state_dict())
    with pytest.raises(CheckpointError, match="NaN or inf"):
        pred.load_official_state_dict(sd)
    assert all(torch.equal(before[k], v) for k, v in pred.state_dict().items())  # nothing was loaded


# ---------------------------------------------------------------------------------------------- planners
@pytest.mark.parametrize("planner", PLANNERS, ids=IDS)
@pytest.mark.parametrize("which", ["z0", "s0", "z_goal"])
def test_every_planner_refuses_non_finite_inputs_naming_them(world_model, planner, which):
    z0, s0, z_goal = _inputs(world_model)
    bad = {"z0": z0, "s0": s0, "z_goal": z_goal}
    bad[which] = bad[which].clone()
    bad[which].view(-1)[3] = float("nan")
    with pytest.raises(NonFiniteError, match=which):
        planner.plan(world_model, bad["z0"], bad["s0"], bad["z_goal"], generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("planner", PLANNERS, ids=IDS)
def test_every_planner_refuses_to_plan_on_nan_energies(world_model, planner):
    """Corrupted predictor weights: every energy is NaN, so there is no plan (before: a finite action came out)."""
    z0, s0, z_goal = _inputs(world_model)
    _nan_weight(world_model)
    with pytest.raises(NonFiniteError, match="predicted NaN or inf latents"):
        planner.plan(world_model, z0, s0, z_goal, generator=torch.Generator().manual_seed(0))


def test_the_world_model_rejects_non_finite_latents(world_model):
    z0, s0, z_goal = _inputs(world_model)
    bad = z0.clone()
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="z0 contains NaN or inf"):
        world_model.rollout(bad.expand(4, -1, -1, -1), s0.expand(4, -1, -1), torch.zeros(4, 1, 7))
    with pytest.raises(ValueError, match="z_goal contains NaN or inf"):
        world_model.energy(z0, bad)
    assert torch.isfinite(world_model.energy(z0, z_goal)).all()


# ---------------------------------------------------------------------------------------------- agent and robot
def test_the_agent_refuses_a_nan_goal_and_a_nan_state(world_model):
    planner = CEM(CEMConfig.official(samples=8, topk=2, iterations=1))
    z0, s0, z_goal = _inputs(world_model)
    with pytest.raises(NonFiniteError, match="goal latent"):
        MPCAgent(world_model, planner, goal=torch.full_like(z_goal, float("nan")))
    agent = MPCAgent(world_model, planner, goal=z_goal)
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(NonFiniteError, match="state"):
        agent.act(frame, [0.5, 0.0, float("nan"), 3.1, 0.0, 0.0, 0.0])
    _nan_weight(world_model)
    with pytest.raises(NonFiniteError):
        agent.act(frame, s0[0, 0].numpy())
    assert agent.records == []  # no action was produced


def test_the_robot_loop_stops_and_records_why_when_the_plan_is_not_finite(world_model, tmp_path):
    from envs.robot import SafeDriver, SafetyLimits
    from envs.robot.testing import FakeCamera, FakeDriver
    from vjepa2_ac.agent import PlanningConfig, build_agent, run_robot_episode

    agent = build_agent(world_model, PlanningConfig(), "reach", {"final": np.zeros((64, 64, 3), np.uint8)},
                        samples=8, iterations=1)
    _nan_weight(world_model)  # e.g. a corrupted file loaded without checks
    driver = FakeDriver()
    with SafeDriver(driver, SafetyLimits(), camera=FakeCamera(), handle_signals=False) as robot:
        run = run_robot_episode(robot, agent, steps=3, episode_path=tmp_path / "ep.h5")
    assert not run.loop.ok and "NonFiniteError" in run.loop.stopped_by and run.loop.steps == 0
    assert driver.moves == [] and "stop" in driver.call_names()  # nothing moved; the arm was stopped
    assert run.path is None  # no step was recorded, so no episode file is kept


def test_robot_run_refuses_a_model_file_with_a_nan_weight_before_connecting(world_model, tmp_path):
    """Before: the corrupted model loaded, planned "energy nan" and moved the arm with exit code 0."""
    import argparse

    from vjepa2_ac.commands import robot as command

    _nan_weight(world_model)
    world_model.save_pretrained(tmp_path / "wm")
    parser = argparse.ArgumentParser()
    command.configure(parser)
    args = parser.parse_args(["run", "--driver", "sim", "--image-size", "64", "--model", str(tmp_path / "wm"),
                              "--steps", "1", "--dry-run", "--out", str(tmp_path / "runs")])
    with pytest.raises(SystemExit, match=r"--model: .*NaN or inf.*predictor_embed\.weight"):
        command.run(args)
    assert not (tmp_path / "runs").exists()  # nothing ran
