"""Factors of variation (``envs.factors``, the env option ``factors``): nominal scene untouched, each factor changes
the frames and the goal images but not the task, determinism, levels, validation, and the scripted expert."""

import gymnasium as gym
import numpy as np
import pytest
from test_envs import run_expert  # one expert-episode runner for the env tests

import envs
from envs.factors import (
    CAMERA_SHIFT,
    CAMERA_TURN_DEG,
    DISTRACTOR_AREA,
    DISTRACTOR_CLEARANCE,
    FACTORS,
    Appearance,
    check_factors,
    sample_appearance,
)
from envs.scene_layout import CAMERAS

BACKENDS = ["mujoco", "pybullet"]
PICK_PLACE = "vjepa2ac/FrankaPickPlace-v0"
# mean |pixel difference| (0-255) to the nominal frame a factor must exceed at 64 px (exterior_1): whole-scene
# factors change every pixel a lot; a recoloured object or a few distractors change a handful of pixels
MIN_DIFF = {"lighting": 2.0, "table": 5.0, "camera": 2.0, "object_color": 0.02, "distractors": 0.02}


def make(env_id=PICK_PLACE, **kw):
    return gym.make(env_id, **{"image_size": 64, **kw})


def mean_diff(a, b) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def rollout(env, seed: int, steps: int = 3):
    expert = envs.scripted_expert(env)
    obs, info = env.reset(seed=seed)
    frames = [obs["pixels"], *info["goals"].values()]
    states = [obs["agent_pos"]]
    for _ in range(steps):
        obs, *_ = env.step(expert(obs))
        frames.append(obs["pixels"])
        states.append(obs["agent_pos"])
    return np.stack(frames), np.stack(states)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_factors_is_the_nominal_env_bit_for_bit(backend):
    plain, empty = make(backend=backend), make(backend=backend, factors=[])
    assert empty.unwrapped.cfg.factors == () and empty.unwrapped.appearance is None
    for seed in (4,):
        (f1, s1), (f2, s2) = rollout(plain, seed), rollout(empty, seed)
        np.testing.assert_array_equal(f1, f2)
        np.testing.assert_array_equal(s1, s2)
    if backend == "mujoco":  # the same model: no extra bodies, materials or textures
        m1, m2 = plain.unwrapped.sim.model, empty.unwrapped.sim.model
        assert (m1.nbody, m1.ngeom, m1.nmat, m1.ntex, m1.nlight) == (m2.nbody, m2.ngeom, m2.nmat, m2.ntex, m2.nlight)
    plain.close(), empty.close()


@pytest.fixture(scope="module")
def nominal():
    """Nominal pick-and-place envs (cube) by backend, and their first frame and goals for seeds 1 and 2."""
    out = {}
    for backend in BACKENDS:
        env = make(backend=backend)
        out[backend] = {s: (*env.reset(seed=s), env.unwrapped.get_object_pose(), env.unwrapped.goal["position"])
                        for s in (1, 2)}
        env.close()
    return out


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_each_factor_changes_frames_and_goals_but_not_the_task(backend, factor, nominal):
    env = make(backend=backend, factors=(factor,))
    u = env.unwrapped
    first = {}
    for seed in (1, 2, 1):
        obs, info = env.reset(seed=seed)
        ref_obs, ref_info, (ref_pos, ref_quat), ref_goal = nominal[backend][seed]
        # the task of the seed is the nominal one
        pos, quat = u.get_object_pose()
        np.testing.assert_array_equal(pos, ref_pos)
        np.testing.assert_array_equal(quat, ref_quat)
        np.testing.assert_array_equal(u.goal["position"], ref_goal)
        np.testing.assert_array_equal(obs["agent_pos"], ref_obs["agent_pos"])
        # what the cameras see is not
        assert mean_diff(obs["pixels"], ref_obs["pixels"]) > MIN_DIFF[factor], (seed, factor)
        assert mean_diff(info["goals"]["final"], ref_info["goals"]["final"]) > MIN_DIFF[factor], (seed, factor)
        assert u.appearance is not None and u.appearance.factors == (factor,)
        if seed in first:  # the same seed again (after another one) gives the same frames and goal images
            np.testing.assert_array_equal(obs["pixels"], first[seed][0])
            for name, img in info["goals"].items():
                np.testing.assert_array_equal(img, first[seed][1][name])
        first[seed] = (obs["pixels"], info["goals"])
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_unseeded_resets_keep_the_nominal_tasks(backend):
    """The appearance's generator draws nothing from the env's own stream: later unseeded resets match too."""
    poses = []
    for factors in ((), FACTORS):
        env = make("vjepa2ac/FrankaReach-v0", backend=backend, factors=factors, render_goals=False, image_size=16)
        env.reset(seed=5)
        env.reset()
        poses.append((env.unwrapped.get_object_pose()[0], env.unwrapped.goal["position"]))
        env.close()
    np.testing.assert_array_equal(poses[0][0], poses[1][0])
    np.testing.assert_array_equal(poses[0][1], poses[1][1])


def test_a_factor_draw_does_not_depend_on_the_other_factors():
    alone = sample_appearance(["lighting"], np.random.default_rng(3))
    together = sample_appearance(FACTORS, np.random.default_rng(3))
    assert (alone.light_yaw, alone.light_tilt, alone.light_scale, alone.light_tint) == (
        together.light_yaw, together.light_tilt, together.light_scale, together.light_tint)
    assert alone.table_rgba is None and alone.camera_offsets == {} and alone.distractors == ()
    assert sample_appearance((), np.random.default_rng(3)) == Appearance()


def test_camera_offsets_are_within_the_levels():
    turn = np.radians(CAMERA_TURN_DEG)
    for seed in range(50):
        a = sample_appearance(["camera"], np.random.default_rng(seed))
        assert set(a.camera_offsets) == set(CAMERAS)  # every exterior camera, not the wrist camera
        dpos = np.array([d for d, _ in a.camera_offsets.values()])
        drot = np.array([r for _, r in a.camera_offsets.values()])
        assert np.abs(dpos).max() <= CAMERA_SHIFT and np.abs(drot).max() <= turn
        assert len({tuple(d) for d in dpos}) == len(CAMERAS)  # each camera independently


@pytest.mark.parametrize("backend", BACKENDS)
def test_camera_factor_leaves_the_wrist_camera(backend):
    wrists = []
    for factors in ((), ("camera",)):
        env = make(backend=backend, factors=factors, wrist_camera=True, render_goals=False)
        obs, _ = env.reset(seed=3)
        wrists.append(obs["wrist_pixels"])
        env.close()
    np.testing.assert_array_equal(*wrists)


@pytest.mark.parametrize("env_id", ["vjepa2ac/FrankaReach-v0", "vjepa2ac/FrankaReachWithObject-v0", PICK_PLACE])
def test_distractors_are_on_the_table_away_from_object_goal_and_home(env_id):
    env = make(env_id, factors=["distractors"], render_goals=False, image_size=16)
    u = env.unwrapped
    counts = set()
    for seed in range(15):
        env.reset(seed=seed)
        a = u.appearance
        obj = u.get_object_pose()[0]  # reach-with-object: in the hand, over home
        keep = [obj[:2], np.asarray(u.goal["position"])[:2], u._home_pos[:2]]
        counts.add(len(a.distractors))
        assert 1 <= len(a.distractors) <= 3
        for d in a.distractors:
            xy = np.asarray(d.pos[:2])
            assert np.all(xy >= DISTRACTOR_AREA[0]) and np.all(xy <= DISTRACTOR_AREA[1])
            assert d.pos[2] == pytest.approx(d.size / 2)  # resting on the table top (z = 0)
            assert 0.02 <= d.size <= 0.05 and d.shape in ("box", "cylinder")
            for k in keep:
                assert np.linalg.norm(xy - k) >= DISTRACTOR_CLEARANCE + d.footprint_radius - 5e-3, (seed, d)
        # the simulator put them there
        m, data = u.sim.model, u.sim.data
        placed = sorted(tuple(np.round(data.xpos[b], 6)) for b in range(m.nbody)
                        if m.body(b).name.startswith("distractor_") and data.xpos[b][2] > -1)
        assert placed == sorted(tuple(np.round(d.pos, 6)) for d in a.distractors)
    assert counts == {1, 2, 3}
    env.close()


def test_pybullet_distractors_and_object_colour_are_in_both_worlds():
    import pybullet as pb

    env = make("vjepa2ac/FrankaPickPlace-v0", backend="pybullet", object="cup",
               factors=["distractors", "object_color"])
    env.reset(seed=2)
    sim, a = env.unwrapped.sim, env.unwrapped.appearance
    for world in (sim.world, sim.ghost):
        got = [pb.getBasePositionAndOrientation(b, physicsClientId=world.client)[0] for b in world.distractors]
        np.testing.assert_allclose(got, [d.pos for d in a.distractors], atol=1e-9)
        colours = {tuple(np.round(v[7], 6)) for v in pb.getVisualShapeData(world.object, physicsClientId=world.client)}
        assert colours == {tuple(np.round(a.object_rgba, 6))}
    env.close()


def test_mujoco_object_colour_recolours_every_cup_geom():
    env = make(object="cup", factors=["object_color"], render_goals=False)
    env.reset(seed=0)
    sim = env.unwrapped.sim
    geoms = np.flatnonzero(sim.model.geom_bodyid == sim.obj_body)
    assert len(geoms) > 10
    np.testing.assert_allclose(sim.model.geom_rgba[geoms], np.tile(env.unwrapped.appearance.object_rgba, (len(geoms), 1)),
                               atol=1e-6)
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_table_textures_render(backend):
    """Checker and noise tables differ from the plain one with the same colour (and from each other)."""
    from dataclasses import replace

    env = make(backend=backend, factors=["table"], render_goals=False)
    env.reset(seed=0)
    sim = env.unwrapped.sim
    base = Appearance(factors=("table",), table_rgba=(0.3, 0.5, 0.4, 1.0))
    imgs = []
    for texture, scale in (("plain", 0.0), ("checker", 0.08), ("noise", 0.02)):
        sim.set_appearance(replace(base, table_texture=texture, table_texture_scale=scale))
        sim.reset(*env.unwrapped.get_object_pose())
        imgs.append(sim.render("top", 64, 64))
    assert mean_diff(imgs[0], imgs[1]) > 3 and mean_diff(imgs[0], imgs[2]) > 3 and mean_diff(imgs[1], imgs[2]) > 3
    env.close()


@pytest.mark.parametrize("bad,match", [
    (["fog"], r"factors.*'fog'.*lighting"),
    (["all"], r"factors.*'all'.*evaluation suite"),
    (["lighting", "lighting"], r"factors.*more than once"),
    ("lighting", r"factors must be a list or tuple"),
])
def test_bad_factor_names_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        make(factors=bad)
    with pytest.raises(ValueError, match="distractors"):  # the valid names are listed
        check_factors(["shadows"])


def test_factors_list_is_stored_as_a_tuple():
    env = make(factors=["camera", "lighting"], render_goals=False)
    assert env.unwrapped.cfg.factors == ("camera", "lighting")
    env.close()


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("env_id", ["vjepa2ac/FrankaReach-v0", PICK_PLACE])
def test_expert_succeeds_under_each_factor_fast_subset(env_id, factor):
    env = make(env_id, object="cube", factors=[factor], render_goals=False, image_size=16)
    assert all(run_expert(env, seed)[0] for seed in (0, 1))
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("obj", ["cube", "cup"])
@pytest.mark.parametrize("env_id", list(envs.ENV_IDS))
def test_expert_succeeds_under_each_factor_20_seeds(env_id, obj, backend, factor):
    env = make(env_id, object=obj, backend=backend, factors=[factor], render_goals=False, image_size=16)
    results = [run_expert(env, seed)[0] for seed in range(20)]
    env.close()
    assert sum(results) == 20, f"{env_id} {obj} {backend} {factor}: {sum(results)}/20"
