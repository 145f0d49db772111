"""Robot spaces other than DROID's Franka end effector: the description, pose propagation, the planners' searched
dims, episode files, training and planning end to end on a 6-joint arm and on an xyz + gripper robot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from planners import CEM, CEMConfig, MPCAgent, check_actions
from planners.constraints import ActionSpace
from vjepa2_ac import DROID_FRANKA, RobotSpace, WorldModel
from vjepa2_ac.data import ClipDataset, EpisodeFile, EpisodeWriter, write_episode
from vjepa2_ac.data.episode import state_deltas
from vjepa2_ac.model.pose import compute_new_pose, poses_to_diff
from vjepa2_ac.model.predictor import ACPredictor, ACPredictorConfig
from vjepa2_ac.training.ac_trainer import train
from vjepa2_ac.training.config import TrainConfig

torch.set_num_threads(1)

ARM6 = RobotSpace(name="arm6-joints", names=("j1", "j2", "j3", "j4", "j5", "j6", "gripper"),
                  joints=(0, 1, 2, 3, 4, 5), gripper=6, joint_limits=((-1.0, 1.0),) * 6)
XYZG = RobotSpace(name="xyz-gripper", names=("x", "y", "z", "gripper"), position=(0, 1, 2), gripper=3)
# DROID's numbers in another order (gripper first, rotation before position): the layout is the space's to say.
SHUFFLED = RobotSpace(name="shuffled-ee", names=("g", "roll", "pitch", "yaw", "x", "y", "z"),
                      gripper=0, rotation=(1, 2, 3), position=(4, 5, 6))
TO_SHUFFLED = [6, 3, 4, 5, 0, 1, 2]  # DROID index of each SHUFFLED dim


# ---------------------------------------------------------------------------------------------------- the space
def test_droid_space_is_the_official_pose_algebra_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(256, 7, generator=g, dtype=torch.float64)
    a = 0.3 * torch.randn(256, 7, generator=g, dtype=torch.float64)
    assert torch.equal(DROID_FRANKA.advance(s, a), compute_new_pose(s, a))
    assert torch.equal(DROID_FRANKA.diff(s, a), poses_to_diff(s, a))
    # the same numbers in another layout give the same motion
    assert torch.equal(SHUFFLED.advance(s[:, TO_SHUFFLED], a[:, TO_SHUFFLED]), compute_new_pose(s, a)[:, TO_SHUFFLED])
    np.testing.assert_allclose(state_deltas(s[:, TO_SHUFFLED].numpy(), SHUFFLED),
                               SHUFFLED.deltas(s[:, TO_SHUFFLED]).numpy(), atol=1e-12)


def test_joint_space_adds_and_clips_to_limits_and_inverts():
    s = torch.tensor([[0.9, -0.2, 0.0, 0.5, -0.95, 0.1, 0.5]])
    a = torch.tensor([[0.3, 0.1, -0.2, 0.0, -0.1, 0.0, 0.8]])
    out = ARM6.advance(s, a)
    torch.testing.assert_close(out, torch.tensor([[1.0, -0.1, -0.2, 0.5, -1.0, 0.1, 1.0]]))
    inside = torch.tensor([[0.1, 0.2, 0.3, -0.4, 0.5, -0.6, 0.2]])
    torch.testing.assert_close(ARM6.advance(s, ARM6.diff(s, inside)), inside)


def test_space_round_trips_and_rejects_bad_descriptions():
    for space in (DROID_FRANKA, ARM6, XYZG, SHUFFLED):
        assert RobotSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    with pytest.raises(ValueError, match=r"exactly one of .*\(not in any: \['z'\]\)"):
        RobotSpace(name="r", names=("x", "y", "z"), position=(0, 1))
    with pytest.raises(ValueError, match=r"in two: \['x'\]"):
        RobotSpace(name="r", names=("x", "y"), position=(0, 1), gripper=0)
    with pytest.raises(ValueError, match="rotation must be \\(\\) or 3 indices"):
        RobotSpace(name="r", names=("a", "b"), rotation=(0, 1))
    with pytest.raises(ValueError, match="one \\(low, high\\) per joint"):
        RobotSpace(name="r", names=("a", "b"), joints=(0, 1), joint_limits=((0, 1),))
    with pytest.raises(ValueError, match="low < high"):
        RobotSpace(name="r", names=("a",), joints=(0,), joint_limits=((1, 0),))
    with pytest.raises(ValueError, match="unknown RobotSpace fields \\['limits'\\]"):
        RobotSpace.from_dict({**XYZG.to_dict(), "limits": 1})


# ---------------------------------------------------------------------------------------------------- planners
def test_action_space_follows_the_robot():
    droid = ActionSpace()
    assert droid.dims == (0, 1, 2, 6) and ActionSpace(search_rotation=True).dims == tuple(range(7))
    arm = ActionSpace(robot=ARM6, joint_maxnorm=0.05, gripper_max=0.5, close_gripper=1)
    assert arm.dims == (0, 1, 2, 3, 4, 5, 6) and [n for n, _ in arm.groups()] == ["joints", "gripper"]
    x = arm.project(torch.full((5, 2, 7), 0.9))
    assert x[..., :6].max() == 0.05 and x[..., 6].max() == 0.5
    full = arm.to_full(x)
    assert full.shape == (5, 2, 7) and torch.all(full[:, 1, 6] == 1.0)
    check_actions(full, arm)
    shuffled = ActionSpace(robot=SHUFFLED, maxnorm=0.05)
    assert shuffled.dims == (4, 5, 6, 0)  # position then gripper, at the space's indices
    full = shuffled.to_full(torch.tensor([[[0.01, 0.02, 0.03, 0.4]]]))
    assert torch.equal(full, torch.tensor([[[0.4, 0.0, 0.0, 0.0, 0.01, 0.02, 0.03]]]))
    with pytest.raises(ValueError, match="search_rotation needs rotation dims; robot space arm6-joints"):
        ActionSpace(robot=ARM6, search_rotation=True)
    with pytest.raises(ValueError, match="need a gripper"):
        ActionSpace(robot=RobotSpace(name="xy", names=("x", "y"), position=(0, 1)), close_gripper=0)
    with pytest.raises(ValueError, match="joint deltas exceed 0.05"):
        check_actions(torch.full((1, 1, 7), 0.2), arm)


def test_model_and_inputs_must_agree_on_the_space():
    cfg = ACPredictorConfig(img_size=32, patch_size=16, embed_dim=16, predictor_embed_dim=16, depth=1, num_heads=2,
                            num_frames=8, robot=XYZG)
    assert cfg.action_embed_dim == 4 and ACPredictorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert "robot" not in ACPredictorConfig().to_dict()  # the released config's fields only
    with pytest.raises(ValueError, match=r"action_embed_dim \(7\) must equal the robot space's dims"):
        ACPredictorConfig(action_embed_dim=7, robot=XYZG)
    with pytest.raises(ValueError, match="action_embed_dim=5 needs ACPredictorConfig.robot"):
        WorldModel(None, ACPredictor(ACPredictorConfig(img_size=32, patch_size=16, embed_dim=16,
                                                       predictor_embed_dim=16, depth=1, num_heads=2,
                                                       action_embed_dim=5)))
    wm = WorldModel(None, ACPredictor(cfg)).eval()
    z = torch.zeros(1, 1, 4, 16)
    with pytest.raises(ValueError, match=r"s0 must have shape \[1, 1, 4\] \(robot space xyz-gripper \[x, y, z, "):
        wm.rollout(z, torch.zeros(1, 1, 7), torch.zeros(1, 1, 4))
    with pytest.raises(ValueError, match=r"s0 must have shape \[1, 1, 4\]"):
        CEM(CEMConfig(samples=8, topk=2, iterations=1)).plan(wm, z, torch.zeros(1, 1, 7), z)
    with pytest.raises(ValueError, match="state must have shape \\[4\\]"):
        MPCAgent(wm, CEM(CEMConfig(samples=8, topk=2, iterations=1)), goal=z).act(
            np.zeros((32, 32, 3), np.uint8), np.zeros(7))


def test_episode_files_keep_the_space(tmp_path):
    states = np.random.default_rng(0).uniform(-0.5, 0.5, (5, 7))
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    path = write_episode(tmp_path / "a.h5", frames, states, space=ARM6, metadata={"control_hz": 4.0})
    with EpisodeFile(path) as ep:
        assert ep.space == ARM6
        np.testing.assert_array_equal(ep.states(), states)
        np.testing.assert_allclose(ep.actions(), np.diff(states, axis=0), atol=1e-7)
    with pytest.raises(ValueError, match=r"state must have shape \[4\] \(robot space xyz-gripper"):
        EpisodeWriter(tmp_path / "c.h5", space=XYZG).add_step(frames[0], states[0])
    write_episode(tmp_path / "b.h5", frames, states[:, :4], space=XYZG, metadata={"control_hz": 4.0})
    with pytest.raises(ValueError, match="mixes robot spaces"):
        ClipDataset(tmp_path, frames_per_clip=2)


# ---------------------------------------------------------------------------------------------------- end to end
def square_frames(uv: np.ndarray, grip: np.ndarray, size: int = 32) -> np.ndarray:
    """Frames with a square at ``uv`` in [-1, 1]^2 whose colour shows the gripper (a learnable toy camera)."""
    frames = np.full((len(uv), size, size, 3), 40, dtype=np.uint8)
    pos = np.clip(((uv + 1) / 2 * (size - 8)).round().astype(int), 0, size - 8)
    for t, ((u, v), g) in enumerate(zip(pos, grip, strict=True)):
        frames[t, v:v + 8, u:u + 8] = (230, int(60 + 190 * g), 90)
    return frames


def camera(space: RobotSpace, states: np.ndarray) -> np.ndarray:
    """What the toy camera sees: the square follows x, y (xyz robot) or two joint pairs (the arm)."""
    if space is XYZG:
        uv = states[:, :2] / 0.4
    else:
        uv = np.stack([0.6 * states[:, 0] + 0.4 * states[:, 1], 0.6 * states[:, 2] + 0.4 * states[:, 3]], 1)
    return square_frames(uv, states[:, space.gripper])


def random_walks(space: RobotSpace, root, episodes: int = 8, steps: int = 24, step: float = 0.08):
    rng = np.random.default_rng(0)
    for e in range(episodes):
        s = torch.zeros(1, space.dim, dtype=torch.float64)
        s[0, :] = torch.from_numpy(rng.uniform(-0.3, 0.3, space.dim))
        s[0, space.gripper] = 0.0
        states = [s]
        for _ in range(steps - 1):
            a = torch.from_numpy(rng.normal(0, step, (1, space.dim)))
            a[0, space.gripper] = rng.choice([0.0, 0.0, 0.5, -0.5])
            states.append(space.advance(states[-1], a))
        states = torch.cat(states).numpy()
        if space is XYZG:
            states[:, :3] = np.clip(states[:, :3], -0.4, 0.4)
        write_episode(root / f"episode_{e:06d}.h5", camera(space, states), states, space=space,
                      metadata={"control_hz": 4.0})


@pytest.mark.parametrize("space", [ARM6, XYZG], ids=lambda s: s.name)
def test_train_and_plan_on_another_robot(space, encoder_dir, tmp_path):
    random_walks(space, tmp_path / "data")
    cfg = TrainConfig(encoder=str(encoder_dir), predictor=dict(predictor_embed_dim=32, depth=2, num_heads=2,
                                                               num_frames=16),
                      frames_per_clip=4, batch_size=8, total_steps=120, clips_per_epoch=32, lr=2e-3, start_lr=2e-3,
                      warmup_steps=0, anneal_steps=0, ckpt_every=0, log_every=1, seed=0, val_fraction=0.0)
    model_dir = train(cfg, [tmp_path / "data"], tmp_path / "run", progress=False)  # the space comes from the data
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10]), losses
    wm = WorldModel.from_pretrained(model_dir).eval()
    assert wm.space == space and wm.config.action_embed_dim == space.dim

    # rollouts propagate states with the space's own rule (joint limits, gripper clip), not DROID's
    start = np.zeros((1, space.dim))
    goal = start.copy()
    goal[0, 0] = 0.3 if space is XYZG else 0.5
    z0, zg = (wm.encode(torch.from_numpy(camera(space, x))[None]) for x in (start, goal))
    s0 = torch.full((1, 1, space.dim), 0.95)
    a = torch.full((1, 2, space.dim), 0.1)
    _, states = wm.rollout(z0, s0, a)
    first = space.advance(s0, a[:, :1])
    assert torch.equal(states, torch.cat([first, space.advance(first, a[:, 1:])], 1))
    assert states[0, 0, space.gripper] == 1.0 and (space is XYZG or states[0, 0, 0] == 1.0)  # clipped

    # plan in the space: constrained actions of its width, better than standing still under the model
    planner = CEM(CEMConfig(samples=64, topk=8, iterations=4, horizon=1, maxnorm=0.1, joint_maxnorm=0.15))
    plan = planner.plan(wm, z0, torch.zeros(1, 1, space.dim), zg, generator=torch.Generator().manual_seed(0))
    assert plan.actions.shape == (1, space.dim) and planner.space.robot == space
    check_actions(plan.actions[None], planner.space)
    z_still, _ = wm.rollout(z0, torch.zeros(1, 1, space.dim), torch.zeros(1, 1, space.dim))
    assert plan.energy <= float(wm.energy(z_still, zg)[0])

    # closed loop through MPCAgent, recorded in the space's episode layout
    agent = MPCAgent(wm, planner, goal=camera(space, goal)[0], seed=0)
    state = np.zeros(space.dim)
    with EpisodeWriter(tmp_path / "loop.h5", space=agent.space) as writer:
        for _ in range(3):
            action = agent.act(camera(space, state[None])[0], state)
            assert action.shape == (space.dim,)
            writer.add_step(camera(space, state[None])[0], state, action)
            state = space.advance(torch.from_numpy(state), torch.from_numpy(action).double()).numpy()
        writer.add_step(camera(space, state[None])[0], state)
    assert agent.actions.shape == (3, space.dim)
    with EpisodeFile(tmp_path / "loop.h5") as ep:
        assert ep.space == space and ep.states().shape == (4, space.dim)
