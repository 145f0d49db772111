"""MPCAgent: receding-horizon loop on an analytic world model (the "camera" encodes the pose exactly)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planners import CEM, CEMConfig, MPCAgent
from planners.analytic import PoseLinearWorldModel
from vjepa2_ac.pose import compute_new_pose

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
    assert agent.records == [] and agent.goal_index == 0
    _run(agent, 3)
    assert np.array_equal(first, agent.actions)


def test_subgoals_switch_after_fixed_step_counts():
    wm = PoseLinearWorldModel()
    subgoals = [PoseLinearWorldModel.render(_goal(o)).numpy() for o in ([0.05, 0, 0], [0.05, 0.05, 0], [0, 0.05, 0])]
    agent = MPCAgent(wm, CEM(CEMConfig.official(samples=30, iterations=2)), subgoals=subgoals, switch_after=[2, 3, 2])
    _run(agent, 8)
    assert [r.goal_index for r in agent.records] == [0, 0, 1, 1, 1, 2, 2, 2]


def test_each_subgoal_plans_with_its_own_planner():
    wm = PoseLinearWorldModel()
    subgoals = [PoseLinearWorldModel.render(_goal(o)).numpy() for o in ([0.05, 0, 0], [0.05, 0.05, 0])]
    free, closing = CEM(CEMConfig.official(samples=30, iterations=3)), CEM(CEMConfig.official(samples=30, iterations=3,
                                                                                              close_gripper=0))
    agent = MPCAgent(wm, [free, closing], subgoals=subgoals, switch_after=[2])
    assert agent.planner is free
    _run(agent, 4)
    assert agent.planner is closing and [r.goal_index for r in agent.records] == [0, 0, 1, 1]
    grip = agent.actions[:, 6]
    assert np.all(grip[2:] > 0.95)  # released close_gripper: dg forced to 1, the CEM mean converges to it
    assert np.all(np.abs(grip[:2]) < 0.95)  # the goal's gripper is unchanged: the free planner does not close
    with pytest.raises(ValueError, match="one per sub-goal"):
        MPCAgent(wm, [free], subgoals=subgoals, switch_after=[2])


def test_subgoals_switch_on_energy_threshold():
    wm = PoseLinearWorldModel()
    g0, g1 = _goal([0.04, 0.0, 0.0]), _goal([0.04, 0.04, 0.0])
    agent = MPCAgent(
        wm,
        CEM(CEMConfig.paper(samples=100)),
        subgoals=[PoseLinearWorldModel.render(g).numpy() for g in (g0, g1)],
        switch_energy=0.01,
    )
    final = _run(agent, 5)
    indices = [r.goal_index for r in agent.records]
    assert indices[0] == 0 and indices[-1] == 1 and indices == sorted(indices)
    switch = indices.index(1)
    assert agent.records[switch - 1].plan_energy < 0.01  # the previous plan reached sub-goal 0
    assert (final[:3] - g1[:3]).abs().max() < 3e-3


def test_bad_arguments_raise():
    wm = PoseLinearWorldModel()
    img = PoseLinearWorldModel.render(START).numpy()
    planner = CEM(CEMConfig.official(samples=20))
    with pytest.raises(ValueError, match="exactly one"):
        MPCAgent(wm, planner)
    with pytest.raises(ValueError, match="exactly one"):
        MPCAgent(wm, planner, goal=img, subgoals=[img])
    with pytest.raises(ValueError, match="switch_after"):
        MPCAgent(wm, planner, subgoals=[img, img, img], switch_after=[4])
    with pytest.raises(ValueError, match="at most one"):
        MPCAgent(wm, planner, subgoals=[img, img], switch_after=[4], switch_energy=0.1)
    with pytest.raises(ValueError, match="goal image"):
        MPCAgent(wm, planner, goal=img.astype(np.float32))
    agent = MPCAgent(wm, planner, goal=img)
    with pytest.raises(ValueError, match="state"):
        agent.act(img, np.zeros(6))
    with pytest.raises(ValueError, match="frame"):
        agent.act(img[0], START.numpy())


def test_fallback_plans_after_n_steps_on_the_final_goal_and_reset_restores_the_first_planner():
    wm = PoseLinearWorldModel()
    subgoals = [PoseLinearWorldModel.render(_goal(o)).numpy() for o in ([0.05, 0, 0], [0.05, 0.05, 0])]
    first = CEM(CEMConfig.official(samples=30, iterations=2, horizon=1))
    late = CEM(CEMConfig.official(samples=30, iterations=2, horizon=2))
    agent = MPCAgent(wm, first, subgoals=subgoals, switch_after=[2], fallback=late, fallback_after=3)
    assert agent.planner is first and not agent.in_fallback
    _run(agent, 7)
    # 2 steps on sub-goal 0, then 3 on the final goal with the first planner, then the fallback
    assert [r.goal_index for r in agent.records] == [0, 0, 1, 1, 1, 1, 1]
    assert [r.fallback for r in agent.records] == [False] * 5 + [True] * 2
    assert [r.plan.actions.shape[0] for r in agent.records] == [1] * 5 + [2] * 2  # the fallback's horizon
    agent.reset()
    assert agent.planner is first and not agent.in_fallback


def test_fallback_arguments_are_checked():
    wm = PoseLinearWorldModel()
    img = PoseLinearWorldModel.render(START).numpy()
    planner = CEM(CEMConfig.official(samples=20))
    with pytest.raises(ValueError, match="both fallback"):
        MPCAgent(wm, planner, goal=img, fallback=planner)
    with pytest.raises(ValueError, match="both fallback"):
        MPCAgent(wm, planner, goal=img, fallback_after=3)
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match="fallback_after must be an int >= 1"):
            MPCAgent(wm, planner, goal=img, fallback=planner, fallback_after=bad)
