"""Franka envs: API conformance, determinism, control accuracy, goal images, action validation, experts."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.franka_env import LIFT_HEIGHT
from envs.mujoco_scene import HOME_QPOS, build_arm_model
from envs.mujoco_sim import DLSIK

IDS = list(envs.ENV_IDS)
BACKENDS = ["mujoco", "pybullet"]
SMALL = {"image_size": 64}


def goal_images(info: dict) -> list:
    """The goal images in the order the env renders them (``"final"`` repeats the last one)."""
    return [img for name, img in info["goals"].items() if name != "final"]


def goal_states(info: dict) -> list:
    return [state for name, state in info["goal_states"].items() if name != "final"]


def make(env_id, **kw):
    return gym.make(env_id, **{**SMALL, **kw})


def run_expert(env, seed, noise=0.0):
    expert = envs.scripted_expert(env, noise=noise, seed=seed)
    obs, info = env.reset(seed=seed)
    success = False
    for _ in range(env.spec.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(expert(obs))
        success |= info["is_success"]
        if terminated or truncated:
            break
    return success, info


def test_envs_import_does_not_import_torch():
    code = "import sys, envs; assert 'torch' not in sys.modules, 'envs imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id, backend):
    env = make(env_id, backend=backend)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_observation_layout_and_goal_keys(backend):
    env = make("vjepa2ac/FrankaPickPlace-v0", backend=backend, wrist_camera=True, goal_keys=True)
    obs, info = env.reset(seed=3)
    assert obs["pixels"].shape == (64, 64, 3) and obs["pixels"].dtype == np.uint8
    assert obs["wrist_pixels"].shape == (64, 64, 3)
    assert obs["agent_pos"].shape == (7,) and obs["agent_pos"].dtype == np.float32
    assert obs["observation"].shape == (14,)
    np.testing.assert_allclose(obs["achieved_goal"], env.unwrapped.get_object_pose()[0], atol=1e-6)
    assert list(info["goals"]) == ["grasped", "lifted", "placed", "final"] and info["goal_pixels"].shape == (64, 64, 3)
    assert list(info["goal_states"]) == list(info["goals"]) and env.unwrapped.goal_names == ("grasped", "lifted", "placed")
    np.testing.assert_array_equal(info["goal_pixels"], info["goals"]["final"])
    np.testing.assert_array_equal(info["goals"]["final"], info["goals"]["placed"])
    assert len(goal_states(info)) == 3 and info["goal_state"].shape == (7,)
    # the state getter is the DROID 7-vector and matches the observation
    np.testing.assert_allclose(env.unwrapped.get_ee_state(), obs["agent_pos"], atol=1e-5)
    reward = env.unwrapped.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)
    assert reward == (0.0 if info["is_success"] else -1.0)
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_rollout(backend):
    def rollout():
        env = make("vjepa2ac/FrankaGrasp-v0", backend=backend)
        expert = envs.scripted_expert(env)
        obs, _ = env.reset(seed=7)
        frames, states = [obs["pixels"]], [obs["agent_pos"]]
        for _ in range(6):
            obs, *_ = env.step(expert(obs))
            frames.append(obs["pixels"])
            states.append(obs["agent_pos"])
        # reset of the same instance reproduces too
        obs2, _ = env.reset(seed=7)
        np.testing.assert_array_equal(obs2["pixels"], frames[0])
        env.close()
        return np.stack(frames), np.stack(states)

    f1, s1 = rollout()
    f2, s2 = rollout()
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(f1, f2)
    env = make("vjepa2ac/FrankaGrasp-v0", backend=backend)
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=8)
    assert not np.array_equal(a["agent_pos"], b["agent_pos"]) or not np.array_equal(a["pixels"], b["pixels"])


def test_dls_ik_accuracy():
    arm = build_arm_model()
    ik = DLSIK(arm)
    rng = np.random.default_rng(0)
    pos0, mat0 = ik.forward(HOME_QPOS)
    for _ in range(10):
        target = pos0 + rng.uniform(-0.15, 0.15, 3)
        q = ik.solve(HOME_QPOS, target, mat0, iterations=60)
        pos, mat = ik.forward(q)
        assert np.linalg.norm(pos - target) < 1e-3
        assert np.degrees(np.arccos(np.clip((np.trace(mat @ mat0.T) - 1) / 2, -1, 1))) < 0.5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("direction", [(1, 0, 0), (0, 1, 0), (0, 0, -1), (0.577, -0.577, 0.577)])
def test_reach_10cm_within_1cm(backend, direction):
    env = make("vjepa2ac/FrankaReach-v0", backend=backend, render_goals=False)
    obs, _ = env.reset(seed=0)
    start, mat0 = env.unwrapped.get_ee_pose()
    goal = start + 0.10 * np.asarray(direction)
    for _ in range(10):
        pos = env.unwrapped.get_ee_pose()[0]
        obs, *_ = env.step(np.r_[np.clip(goal - pos, -0.012, 0.012), 0, 0, 0, 0].astype(np.float32))
    pos, mat = env.unwrapped.get_ee_pose()
    assert np.linalg.norm(pos - goal) < 0.01
    assert np.degrees(np.arccos(np.clip((np.trace(mat @ mat0.T) - 1) / 2, -1, 1))) < 2.0
    env.close()


def test_grasp_gives_a_grasped_then_a_lifted_subgoal():
    env = make("vjepa2ac/FrankaGrasp-v0")
    _, info = env.reset(seed=4)
    u = env.unwrapped
    obj_pos = u.get_object_pose()[0]
    assert len(goal_images(info)) == 2 and len(goal_states(info)) == 2
    np.testing.assert_array_equal(info["goal_pixels"], goal_images(info)[-1])
    grasped, lifted = goal_states(info)
    hold = u.goal["hold_closedness"]
    # sub-goal 1: the pinch point on the resting object, gripper at the holding closedness; the goal: lifted
    np.testing.assert_allclose(grasped[:3], u.goal["configs"][0][0], atol=1e-6)
    assert abs(grasped[2] - lifted[2] + LIFT_HEIGHT) < 1e-6 and grasped[6] == lifted[6] == np.float32(hold)
    np.testing.assert_allclose(u.goal["configs"][0][3], obj_pos, atol=1e-9)
    assert not np.array_equal(goal_images(info)[0], goal_images(info)[1])
    env.close()


@pytest.mark.parametrize("env_id", ["vjepa2ac/FrankaGrasp-v0", "vjepa2ac/FrankaPickPlace-v0"])
def test_goal_gripper_yaw_and_grasp_goal_gripper(env_id):
    """``goal_gripper_yaw="home"`` renders the goal images with the home orientation, ``grasp_goal_gripper="open"``
    the "grasped" image with the gripper open; the poses and the object are those of the default goals."""
    default, home = make(env_id), make(env_id, goal_gripper_yaw="home", grasp_goal_gripper="open")
    _, info_d = default.reset(seed=11)
    _, info_h = home.reset(seed=11)
    d, h = default.unwrapped, home.unwrapped
    turn = np.degrees(np.arccos(np.clip((np.trace(d.goal["configs"][0][1] @ h._home_mat.T) - 1) / 2, -1, 1)))
    assert turn > 5, f"seed 11 should turn the gripper to the cube (got {turn:.1f} deg)"  # guards the comparison
    for (p, _, _, op, oq), (p2, m2, _, op2, oq2) in zip(d.goal["configs"], h.goal["configs"]):
        np.testing.assert_array_equal(p, p2)
        np.testing.assert_array_equal(op, op2)
        np.testing.assert_array_equal(oq, oq2)
        np.testing.assert_array_equal(m2, h._home_mat)
    assert h.goal["configs"][0][2] == 0.0 and d.goal["configs"][0][2] == d.goal["hold_closedness"]
    assert [c for _, _, c, *_ in h.goal["configs"][1:]] == [c for _, _, c, *_ in d.goal["configs"][1:]]
    np.testing.assert_allclose(goal_states(info_h)[0][3:6], h.get_ee_state()[3:6], atol=1e-5)
    assert not np.array_equal(goal_images(info_d)[0], goal_images(info_h)[0])
    for img, (p, m, c, op, oq) in zip(goal_images(info_h), h.goal["configs"]):
        np.testing.assert_array_equal(img, h.render_configuration(p, m, c, op, oq))
    default.close(), home.close()


@pytest.mark.parametrize("env_id", ["vjepa2ac/FrankaGrasp-v0", "vjepa2ac/FrankaPickPlace-v0"])
def test_pregrasp_height_adds_an_open_gripper_subgoal_over_the_object(env_id):
    """``pregrasp_height=h`` puts one sub-goal first: the open gripper h above the grasp pose, the object where it
    rests; the other sub-goals are the default ones, and the scripted expert still succeeds."""
    default, pre = make(env_id), make(env_id, pregrasp_height=0.1)
    _, info_d = default.reset(seed=11)
    _, info_p = pre.reset(seed=11)
    d, p = default.unwrapped, pre.unwrapped
    assert len(goal_images(info_p)) == len(goal_images(info_d)) + 1
    assert (p.grasp_subgoal, d.grasp_subgoal) == (1, 0)  # where the "grasped" sub-goal is
    first, grasped = p.goal["configs"][0], d.goal["configs"][0]
    np.testing.assert_allclose(first[0], grasped[0] + [0.0, 0.0, 0.1], atol=1e-12)
    np.testing.assert_array_equal(first[1], grasped[1])
    assert first[2] == 0.0 and grasped[2] > 0.0  # open over the object; closed on it in the next image
    np.testing.assert_array_equal(first[3], grasped[3])
    for a, b in zip(p.goal["configs"][1:], d.goal["configs"]):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    for a, b in zip(goal_images(info_p)[1:], goal_images(info_d)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(goal_images(info_p)[0], p.render_configuration(*first))
    np.testing.assert_allclose(goal_states(info_p)[0][:3], first[0], atol=1e-6)
    assert goal_states(info_p)[0][6] == 0.0
    ok, _ = run_expert(pre, seed=11)
    assert ok
    default.close(), pre.close()


@pytest.mark.parametrize("height", [-0.01, 0.5, float("nan"), "0.1", True])
def test_pregrasp_height_is_validated(height):
    with pytest.raises(ValueError, match="pregrasp_height"):
        make("vjepa2ac/FrankaGrasp-v0", pregrasp_height=height)


@pytest.mark.parametrize("kwargs", [{"goal_gripper_yaw": "object_faces"}, {"grasp_goal_gripper": 1.0}])
def test_goal_gripper_options_are_validated(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make("vjepa2ac/FrankaGrasp-v0", **kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_goal_images_are_goal_configuration_renders(backend):
    env = make("vjepa2ac/FrankaPickPlace-v0", backend=backend)
    obs, info = env.reset(seed=5)
    u = env.unwrapped
    for img, (p, m, c, op, oq) in zip(goal_images(info), u.goal["configs"]):
        np.testing.assert_array_equal(img, u.render_configuration(p, m, c, op, oq))
    # rendering a configuration does not disturb the physics state
    before = obs["agent_pos"].copy()
    np.testing.assert_array_equal(u.get_ee_state().astype(np.float32), before)
    # the goal image shows the goal: after the expert succeeds, the frame is closer to it than the start was
    start = obs["pixels"].astype(float)
    ok, info = run_expert(env, seed=5)
    assert ok
    final = env.unwrapped.render().astype(float)
    goal = info["goal_pixels"].astype(float)
    assert np.abs(final - goal).mean() < 0.5 * np.abs(start - goal).mean()
    env.close()


def test_render_configuration_reach_goal_matches_reached_frame():
    env = make("vjepa2ac/FrankaReach-v0", image_size=64)
    ok, info = run_expert(env, seed=2)
    assert ok
    frame = env.unwrapped.render().astype(float)
    assert np.abs(frame - info["goal_pixels"].astype(float)).mean() < 6.0  # same scene up to servo error
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_actions_raise(backend):
    env = make("vjepa2ac/FrankaReach-v0", backend=backend, render_goals=False)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        env.step(np.zeros(6, np.float32))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan, 0, 0, 0, 0, 0, 0], np.float32))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([0, 0, np.inf, 0, 0, 0, 0], np.float32))
    env.close()


def test_bad_options_raise():
    with pytest.raises(ValueError, match="object"):
        gym.make("vjepa2ac/FrankaGrasp-v0", object="banana")
    with pytest.raises(ValueError, match="backend"):
        gym.make("vjepa2ac/FrankaGrasp-v0", backend="isaac")
    with pytest.raises(TypeError, match="unknown FrankaEnv option"):
        gym.make("vjepa2ac/FrankaGrasp-v0", colour="red")
    with pytest.raises(ValueError, match="camera"):
        gym.make("vjepa2ac/FrankaGrasp-v0", camera="ceiling")


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_range_actions_are_clipped_and_reported(backend):
    env = make("vjepa2ac/FrankaReach-v0", backend=backend, render_goals=False)
    env.reset(seed=0)
    u = env.unwrapped
    start = u.get_ee_pose()[0]
    _, _, _, _, info = env.step(np.zeros(7, np.float32))
    assert info["action_clipped"] is False
    _, _, _, _, info = env.step(np.array([1.0, 0, 0, 0, 0, 0, 3.0], np.float32))
    assert info["action_clipped"] is True
    np.testing.assert_allclose(info["applied_action"], [0.075, 0, 0, 0, 0, 0, 1.0], atol=1e-7)
    for _ in range(2):
        env.step(np.zeros(7, np.float32))
    moved = u.get_ee_pose()[0] - start
    assert 0.06 < moved[0] < 0.08 and np.abs(moved[1:]).max() < 0.01
    np.testing.assert_allclose(u.get_commanded_state()[6], 1.0)  # gripper command clipped to [0, 1]
    env.close()


def test_randomisation_options_change_appearance_deterministically():
    env = make("vjepa2ac/FrankaReach-v0", factors=("lighting", "table", "camera"))
    a, _ = env.reset(seed=1)
    b, _ = env.reset(seed=2)
    a2, _ = env.reset(seed=1)
    np.testing.assert_array_equal(a["pixels"], a2["pixels"])
    assert np.abs(a["pixels"].astype(float) - b["pixels"]).mean() > 2.0
    env.close()


FAST_EXPERT_CASES = [
    ("vjepa2ac/FrankaReach-v0", "cube", "mujoco"),
    ("vjepa2ac/FrankaGrasp-v0", "cube", "mujoco"),
    ("vjepa2ac/FrankaReachWithObject-v0", "cup", "mujoco"),
    ("vjepa2ac/FrankaPickPlace-v0", "cup", "mujoco"),
    ("vjepa2ac/FrankaGrasp-v0", "cup", "pybullet"),
    ("vjepa2ac/FrankaPickPlace-v0", "cube", "pybullet"),
]


@pytest.mark.parametrize("env_id,obj,backend", FAST_EXPERT_CASES)
def test_expert_succeeds_fast_subset(env_id, obj, backend):
    env = make(env_id, object=obj, backend=backend, render_goals=False)
    ok, _ = run_expert(env, seed=11)
    assert ok
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("obj", ["cube", "cup"])
@pytest.mark.parametrize("env_id", IDS)
def test_expert_succeeds_20_seeds(env_id, obj, backend):
    env = make(env_id, object=obj, backend=backend, render_goals=False, image_size=16)
    results = [run_expert(env, seed=s)[0] for s in range(20)]
    env.close()
    assert sum(results) == 20, f"{env_id} {obj} {backend}: {sum(results)}/20"


def test_expert_noise_changes_actions():
    env = make("vjepa2ac/FrankaReach-v0", render_goals=False)
    obs, _ = env.reset(seed=0)
    a0 = envs.scripted_expert(env)(obs)
    a1 = envs.scripted_expert(env, noise=0.01, seed=0)(obs)
    assert not np.allclose(a0, a1) and np.allclose(a0[3:], a1[3:])
    with pytest.raises(ValueError, match="noise"):
        envs.scripted_expert(env, noise=-1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_expert_near_misses_then_grasps(backend):
    """miss=1: up to two near-miss attempts (closed above it without holding it, held and let go, or closed beside
    it, which may still catch it), then a clean grasp; the object is lifted in the end; all kinds over a few seeds."""
    env = make("vjepa2ac/FrankaGrasp-v0", backend=backend, render_goals=False)
    kinds = set()
    for seed in range(5):
        expert = envs.scripted_expert(env, seed=seed, miss=1.0)
        obs, info = env.reset(seed=seed)
        attempts, held, success = [], [], False
        for _ in range(env.spec.max_episode_steps):
            action = expert(obs)
            if not attempts or expert.attempt is not attempts[-1]:
                attempts.append(expert.attempt)
                held.append([])
            obs, _, _, _, info = env.step(action)
            held[-1].append(info["grasped"])
            success |= info["is_success"]
        names = [kind for kind, *_ in attempts]
        assert success and "clean" not in names[:2] and names[2:] in ([], ["clean"]), (seed, names)
        for name, h in zip(names, held):
            if name in ("above", "drop"):
                assert (any(h) and not h[-1]) if name == "drop" else not any(h), (seed, name, h)
        kinds |= set(names)
    assert kinds == {"beside", "above", "drop", "clean"}
    with pytest.raises(ValueError, match="miss must be a probability"):
        envs.scripted_expert(env, miss=1.5)
    env.close()


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_workspace_camera_frames_the_task_area(backend):
    """The close 'workspace' camera (used by small planning models) sees the object larger than exterior_1."""
    sizes = {}
    for camera in ("exterior_1", "workspace"):
        env = gym.make("vjepa2ac/FrankaGrasp-v0", backend=backend, camera=camera, image_size=64)
        obs, _ = env.reset(seed=0)
        red = (obs["pixels"][..., 0] > 150) & (obs["pixels"][..., 1] < 80) & (obs["pixels"][..., 2] < 80)
        sizes[camera] = int(red.sum())
        env.close()
    assert sizes["workspace"] > sizes["exterior_1"] > 0


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_dual_camera_stacks_side_and_top_views(backend):
    """'dual' = the side view over the top view, each rendered at half the height (odd heights: side gets the row)."""
    env = gym.make("vjepa2ac/FrankaReach-v0", backend=backend, camera="dual", image_size=(33, 48))
    obs, info = env.reset(seed=0)
    base = env.unwrapped
    assert obs["pixels"].shape == (33, 48, 3) and info["goal_pixels"].shape == (33, 48, 3)
    np.testing.assert_array_equal(obs["pixels"][:17], base.render(camera="side", image_size=(17, 48)))
    np.testing.assert_array_equal(obs["pixels"][17:], base.render(camera="top", image_size=(16, 48)))
    # moving the gripper along any axis changes the dual view (one camera alone is blind along its line of sight)
    ee, mat = base.get_ee_pose()
    ref = base.render_configuration(ee, mat, camera="dual").astype(int)
    for axis in range(3):
        moved = base.render_configuration(ee + 0.08 * np.eye(3)[axis], mat, camera="dual").astype(int)
        assert np.abs(moved - ref).sum(-1).astype(bool).mean() > 0.01, axis
    with pytest.raises(ValueError, match="height"):
        base.render(camera="dual", image_size=(1, 8))
    env.close()


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_dual_close_squeezes_square_views_into_bands(backend):
    """'dual_close': each part rendered at k = round(width / band) times the band's height, averaged over k rows."""
    env = gym.make("vjepa2ac/FrankaPickPlace-v0", backend=backend, camera="dual_close", image_size=(32, 64))
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    assert obs["pixels"].shape == (32, 64, 3) and obs["pixels"].dtype == np.uint8
    for rows, name in ((slice(0, 16), "side_close"), (slice(16, 32), "top_close")):
        square = base.render(camera=name, image_size=(64, 64)).astype(int)
        expected = (square.reshape(16, 4, 64, 3).sum(1) + 2) // 4
        np.testing.assert_array_equal(obs["pixels"][rows], expected)
    # the zoomed views show the object bigger than "dual" does: count the object's red pixels in both at 128 px
    def red(img):
        img = img.astype(int)
        return int(((img[..., 0] > 150) & (img[..., 1] < 90) & (img[..., 2] < 90)).sum())

    ee, mat = base.get_ee_pose()
    close, far = (base.render_configuration(ee, mat, camera=c, image_size=(128, 128)) for c in ("dual_close", "dual"))
    assert red(close) > 2.5 * red(far) > 0, (red(close), red(far))
    env.close()


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_dual_wrist_adds_the_wrist_view_as_a_third_band(backend):
    """'dual_wrist': side, top and wrist views in three bands; the wrist band shows a held object larger than one
    left on the table below it, a difference the exterior bands barely show (a few pixels of a small object)."""
    env = gym.make("vjepa2ac/FrankaGrasp-v0", backend=backend, camera="dual_wrist", image_size=(48, 48))
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    for rows, name in ((slice(0, 16), "side"), (slice(16, 32), "top"), (slice(32, 48), "wrist")):
        np.testing.assert_array_equal(obs["pixels"][rows], base.render(camera=name, image_size=(16, 48)))
    # "dual_wrist_large": the wrist band gets half the rows (relative heights 1, 1, 2; leftover rows go first)
    large = base.render(camera="dual_wrist_large", image_size=(66, 48))
    for rows, name in ((slice(0, 17), "side"), (slice(17, 33), "top"), (slice(33, 66), "wrist")):
        size = (rows.stop - rows.start, 48)
        np.testing.assert_array_equal(large[rows], base.render(camera=name, image_size=size))
    with pytest.raises(ValueError, match="height must be >= 4"):
        base.render(camera="dual_wrist_large", image_size=(3, 8))
    # "dual_wrist_tiled": side | top tiled in the upper half (leftover column to the side view), wrist below
    tiled = base.render(camera="dual_wrist_tiled", image_size=(48, 49))
    for rows, cols, name in ((slice(0, 24), slice(0, 25), "side"), (slice(0, 24), slice(25, 49), "top"),
                             (slice(24, 48), slice(0, 49), "wrist")):
        size = (rows.stop - rows.start, cols.stop - cols.start)
        np.testing.assert_array_equal(tiled[rows, cols], base.render(camera=name, image_size=size))
    with pytest.raises(ValueError, match="width must be >= 2"):
        base.render(camera="dual_wrist_tiled", image_size=(8, 1))

    def red(img):
        img = img.astype(int)
        return int(((img[..., 0] > 150) & (img[..., 1] < 90) & (img[..., 2] < 90)).sum())

    goal_pos, goal_mat, hold, held_pos, held_quat = base.goal["configs"][-1]
    obj, quat = base.get_object_pose()
    held, left = (base.render_configuration(goal_pos, goal_mat, hold, p, q, camera="dual_wrist",
                                            image_size=(144, 144)) for p, q in ((held_pos, held_quat), (obj, quat)))
    wrist, exterior = (red(held[96:]), red(left[96:])), (red(held[:96]), red(left[:96]))
    assert wrist[0] > 1.5 * wrist[1] and wrist[0] - wrist[1] > 3 * abs(exterior[0] - exterior[1]), (wrist, exterior)
    env.close()


def test_expert_does_not_depend_on_how_goal_images_are_rendered():
    """The scripted expert grasps turned to the object's faces whatever ``goal_gripper_yaw`` renders."""
    runs = []
    for kw in ({}, {"goal_gripper_yaw": "home", "grasp_goal_gripper": "open"}):
        env = make("vjepa2ac/FrankaPickPlace-v0", **kw)
        expert = envs.scripted_expert(env, seed=0)
        obs, _ = env.reset(seed=3)
        actions, success = [], False
        for _ in range(env.spec.max_episode_steps):
            actions.append(expert(obs))
            obs, _, terminated, truncated, info = env.step(actions[-1])
            success |= info["is_success"]
            if terminated or truncated:
                break
        runs.append((np.array(actions), success))
        env.close()
    assert runs[0][1] and runs[1][1]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
