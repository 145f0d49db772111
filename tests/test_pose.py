import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from vjepa2_ac.model.pose import (
    compute_new_pose,
    euler_xyz_to_matrix,
    matrix_to_euler_xyz,
    poses_to_diff,
    states_to_actions,
)

angles = st.tuples(st.floats(-np.pi, np.pi), st.floats(-np.pi / 2, np.pi / 2), st.floats(-np.pi, np.pi))


def scipy_new_pose(pose: np.ndarray, action: np.ndarray) -> np.ndarray:
    """The released code's ``compute_new_pose`` for one sample (numpy + scipy)."""
    rot = Rotation.from_euler("xyz", action[3:6]) * Rotation.from_euler("xyz", pose[3:6])
    return np.concatenate([pose[:3] + action[:3], rot.as_euler("xyz"), np.clip(pose[6:] + action[6:], 0, 1)])


@settings(max_examples=200, deadline=None)
@given(angles)
def test_euler_round_trip_matches_scipy(e):
    e = np.array(e)
    m = euler_xyz_to_matrix(torch.tensor(e))
    np.testing.assert_allclose(m.numpy(), Rotation.from_euler("xyz", e).as_matrix(), atol=1e-12)
    back = matrix_to_euler_xyz(m).numpy()
    np.testing.assert_allclose(Rotation.from_euler("xyz", back).as_matrix(), m.numpy(), atol=1e-9)


def test_matrix_to_euler_matches_scipy_including_gimbal_lock():
    rng = np.random.default_rng(0)
    e = rng.uniform(-np.pi, np.pi, (2000, 3))
    e[:, 1] /= 2
    e[:4, 1] = [np.pi / 2, -np.pi / 2, np.pi / 2, -np.pi / 2]
    m = Rotation.from_euler("xyz", e).as_matrix()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns at gimbal lock
        expected = Rotation.from_matrix(m).as_euler("xyz")
    np.testing.assert_allclose(matrix_to_euler_xyz(torch.tensor(m)).numpy(), expected, atol=1e-6)


def test_batched_pose_update_equals_scipy_loop():
    rng = np.random.default_rng(1)
    poses = np.concatenate([rng.normal(size=(500, 3)), rng.uniform(-3, 3, (500, 3)), rng.uniform(0, 1, (500, 1))], 1)
    poses[:, 4] = np.clip(poses[:, 4], -1.5, 1.5)
    actions = np.concatenate([rng.normal(0, 0.05, (500, 3)), rng.normal(0, 0.3, (500, 3)), rng.normal(0, 0.7, (500, 1))], 1)
    expected = np.stack([scipy_new_pose(p, a) for p, a in zip(poses, actions)])
    got = compute_new_pose(torch.tensor(poses), torch.tensor(actions)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    got32 = compute_new_pose(torch.tensor(poses, dtype=torch.float32), torch.tensor(actions, dtype=torch.float32))
    np.testing.assert_allclose(got32.numpy(), expected, atol=1e-5)


def test_poses_to_diff_on_real_franka_states(fixtures_dir, official_small):
    states = torch.tensor(np.load(fixtures_dir / "franka_example_traj.npz")["states"][0], dtype=torch.float64)
    diff = poses_to_diff(states[0], states[1])
    np.testing.assert_allclose(diff.numpy(), official_small["example_gt_action"].double().numpy(), atol=1e-6)
    np.testing.assert_allclose(compute_new_pose(states[0], diff).numpy(), states[1].numpy(), atol=1e-8)
    np.testing.assert_allclose(states_to_actions(states)[0].numpy(), diff.numpy())


def test_pose_update_is_full_precision_under_autocast():
    pose = torch.tensor([[0.58, -0.002, 0.2476, -3.0666, 0.0305, -1.9128, 0.997]])
    action = torch.tensor([[0.01, 0.02, -0.03, 0.1, -0.05, 0.02, 0.1]])
    ref = compute_new_pose(pose, action)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = compute_new_pose(pose, action)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_bad_width_is_named():
    import pytest

    with pytest.raises(ValueError, match="action must have last dimension 7"):
        compute_new_pose(torch.zeros(7), torch.zeros(6))
