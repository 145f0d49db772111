"""MPCAgent: receding-horizon loop on an analytic world model (the "camera" encodes the pose exactly)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planners import CEM, CEMConfig, MPCAgent, Phase
from planners.analytic import PoseLinearWorldModel
from vjepa2_ac.model.pose import compute_new_pose

torch.set_num_threads(1)

START = torch.tensor([0.5, 0.0, 0.3, 3.0, 0.1, -1.9, 0.0])


class CountingWorldModel(PoseLinearWorldModel):
    def __init__(self) -> None:
        super().__init__()
        self.encoded_frames = 0

    def encode(self, frames):
        self.encoded_frames += int(np.prod(torch.as_tensor(frames).shape[:-3]))
        return super().encode(frames)


def _run(agent: MPCAgent, steps: int, state: torch.Tensor = START) -> torch.Tensor:
    for _ in range(steps):
        frame = PoseLinearWorldModel.render(state).numpy()
        action = agent.act(frame, state.numpy())
        assert action.shape == (7,) and action.dtype == np.float32
        state = compute_new_pose(state.double(), torch.from_numpy(action).double()).float()
    return state


def _goal(offset: list[float]) -> torch.Tensor:
    return START + torch.tensor([*offset, 0.0, 0.0, 0.0, 0.0])


def test_agent_reaches_an_image_goal_and_records_every_step():
    wm = CountingWorldModel()
    goal = _goal([0.12, -0.08, 0.1])  # needs several steps of at most 0.05 per axis
    agent = MPCAgent(wm, CEM(CEMConfig.paper(samples=100)), goal=PoseLinearWorldModel.render(goal).numpy())
    assert wm.encoded_frames == 1
    final = _run(agent, 6)
    assert (final[:3] - goal[:3]).abs().max() < 3e-3
    assert wm.encoded_frames == 1 + 6  # the goal once, then one frame per step
    assert len(agent.records) == len(agent.latencies) == len(agent.energies) == 6
    assert agent.actions.shape == (6, 7) and all(t > 0 for t in agent.latencies)
    assert agent.records[-1].frame_energy < agent.records[0].frame_energy
    stats = agent.stats()
    assert stats["steps"] == 6 and stats["latency_p90_s"] >= stats["latency_median_s"] > 0


def test_reset_replays_the_episode_bit_for_bit():
    wm = PoseLinearWorldModel()
    goal = wm.latent(_goal([0.05, 0.02, -0.03]))[None, None]  # latent goals are accepted too
    agent = MPCAgent(wm, CEM(CEMConfig.official(samples=50, warm_start=True)), goal=goal, seed=3)
    _run(agent, 3)
    first = agent.actions.copy()
    agent.reset()
    assert agent.records == [] and agent.phase_index == 0
    _run(agent, 3)
    assert np.array_equal(first, agent.actions)


def _img(offset: list[float]) -> np.ndarray:
    return PoseLinearWorldModel.render(_goal(offset)).numpy()


def test_phases_switch_after_their_step_counts():
    wm = PoseLinearWorldModel()
    cem = CEM(CEMConfig.official(samples=30, iterations=2))
    goals = [_img(o) for o in ([0.05, 0, 0], [0.05, 0.05, 0], [0, 0.05, 0])]
    agent = MPCAgent(wm, phases=[Phase(goals[0], cem, steps=2), Phase(goals[1], cem, steps=3), Phase(goals[2], cem)])
    _run(agent, 8)
    assert [r.phase for r in agent.records] == [0, 0, 1, 1, 1, 2, 2, 2]  # the last phase runs to the end


def test_each_phase_plans_with_its_own_planner():
    wm = PoseLinearWorldModel()
    goals = [_img(o) for o in ([0.05, 0, 0], [0.05, 0.05, 0])]
    free, closing = CEM(CEMConfig.official(samples=30, iterations=3)), CEM(CEMConfig.official(samples=30, iterations=3,
                                                                                              close_gripper=0))
    agent = MPCAgent(wm, phases=[Phase(goals[0], free, steps=2), Phase(goals[1], closing)])
    assert agent.planner is free
    _run(agent, 4)
    assert agent.planner is closing and [r.phase for r in agent.records] == [0, 0, 1, 1]
    grip = agent.actions[:, 6]
    assert np.all(grip[2:] > 0.95)  # released close_gripper: dg forced to 1, the CEM mean converges to it
    assert np.all(np.abs(grip[:2]) < 0.95)  # the goal's gripper is unchanged: the free planner does not close


def test_two_phases_on_one_goal_change_the_planner_and_reset_restores_the_first():
    """The look-ahead rule: horizon 1 for three actions, then horizon 2, on the same goal (encoded once)."""
    wm = CountingWorldModel()
    goal = _img([0.1, 0.05, 0])
    first = CEM(CEMConfig.official(samples=30, iterations=2, horizon=1))
    late = CEM(CEMConfig.official(samples=30, iterations=2, horizon=2))
    agent = MPCAgent(wm, phases=[Phase(goal, first, steps=3), Phase(goal, late)])
    assert wm.encoded_frames == 1 and agent.planner is first
    _run(agent, 5)
    assert [r.phase for r in agent.records] == [0, 0, 0, 1, 1]
    assert [r.plan.actions.shape[0] for r in agent.records] == [1, 1, 1, 2, 2]  # the second phase's horizon
    agent.reset()
    assert agent.planner is first and agent.phase_index == 0


def test_phases_switch_on_energy_threshold():
    wm = PoseLinearWorldModel()
    g0, g1 = _goal([0.04, 0.0, 0.0]), _goal([0.04, 0.04, 0.0])
    cem = CEM(CEMConfig.paper(samples=100))
    render = PoseLinearWorldModel.render
    agent = MPCAgent(wm, phases=[Phase(render(g0).numpy(), cem, switch_energy=0.01), Phase(render(g1).numpy(), cem)])
    final = _run(agent, 5)
    indices = [r.phase for r in agent.records]
    assert indices[0] == 0 and indices[-1] == 1 and indices == sorted(indices)
    switch = indices.index(1)
    assert agent.records[switch - 1].plan_energy < 0.01  # the previous plan reached the first goal
    assert (final[:3] - g1[:3]).abs().max() < 3e-3


def test_bad_arguments_raise():
    wm = PoseLinearWorldModel()
    img = PoseLinearWorldModel.render(START).numpy()
    planner = CEM(CEMConfig.official(samples=20))
    with pytest.raises(ValueError, match="planner=... and goal="):
        MPCAgent(wm, planner)
    with pytest.raises(ValueError, match="not both"):
        MPCAgent(wm, planner, goal=img, phases=[Phase(img, planner)])
    with pytest.raises(ValueError, match="must not be empty"):
        MPCAgent(wm, phases=[])
    with pytest.raises(ValueError, match="never ends"):
        MPCAgent(wm, phases=[Phase(img, planner), Phase(img, planner)])
    with pytest.raises(ValueError, match="last phase"):
        MPCAgent(wm, phases=[Phase(img, planner, steps=2), Phase(img, planner, steps=4)])
    with pytest.raises(ValueError, match="last phase"):
        MPCAgent(wm, phases=[Phase(img, planner, switch_energy=0.1)])
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match=r"phases\[0\].steps must be an int >= 1"):
            MPCAgent(wm, phases=[Phase(img, planner, steps=bad), Phase(img, planner)])
    for bad in (0.0, -1.0, "0.1", True):
        with pytest.raises(ValueError, match=r"phases\[0\].switch_energy"):
            MPCAgent(wm, phases=[Phase(img, planner, switch_energy=bad), Phase(img, planner)])
    with pytest.raises(ValueError, match="must be a planner"):
        MPCAgent(wm, phases=[Phase(img, "cem")])
    with pytest.raises(ValueError, match="must be a planners.Phase"):
        MPCAgent(wm, phases=[(img, planner)])
    with pytest.raises(ValueError, match="goal image"):
        MPCAgent(wm, planner, goal=img.astype(np.float32))
    agent = MPCAgent(wm, planner, goal=img)
    with pytest.raises(ValueError, match="state"):
        agent.act(img, np.zeros(6))
    with pytest.raises(ValueError, match="frame"):
        agent.act(img[0], START.numpy())
