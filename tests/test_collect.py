"""Collection loop: resumable, deterministic across workers, crash-safe (fake Gymnasium env; real env if present)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from vjepa2_ac.data import EpisodeFile, load_episode, load_index
from vjepa2_ac.data.collect import (
    CollectConfig,
    CollectError,
    collect,
    episode_path,
    episode_policy,
    episode_seed,
)

MODULE = __name__  # importable by this name (spawned workers inherit sys.path)
FAKE_ID = "FakeReach-v0"
FAIL_SEEDS: set[int] = set()  # episodes reset with one of these seeds fail at their second step (monkeypatched)


class FakeReachEnv(gym.Env):
    """Tiny env with the vjepa2ac obs/info contract: moves a point towards a goal; frames show the x position."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
    control_hz = 4.0
    camera_name = "fake_cam"

    def __init__(self, render_mode=None, image_size=16, camera=None, episode_steps=6, fail_in_episode=None,
                 step_delay=0.0, terminate_on_success=True):
        self.render_mode, self.size, self.episode_steps = render_mode, image_size, episode_steps
        if camera is not None:
            self.camera_name = camera
        self.fail_in_episode, self.step_delay = fail_in_episode, step_delay
        self.resets, self.terminate_on_success = 0, terminate_on_success
        self.observation_space = gym.spaces.Dict({
            "pixels": gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
            "agent_pos": gym.spaces.Box(-np.inf, np.inf, (7,), np.float32)})
        self.action_space = gym.spaces.Box(-0.05, 0.05, (7,), np.float32)

    def _obs(self):
        frame = np.full((self.size, self.size, 3), int(np.clip(128 + 500 * self.pos[0], 0, 255)), np.uint8)
        return {"pixels": frame, "agent_pos": self.pos.astype(np.float32)}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = np.zeros(7)
        self.pos[:3] = self.np_random.uniform(-0.1, 0.1, 3)
        self.goal = self.np_random.uniform(-0.1, 0.1, 3)
        self.t = 0
        self.resets += 1
        self.seed = seed
        return self._obs(), {"is_success": False}

    def step(self, action):
        if (self.resets - 1 == self.fail_in_episode or self.seed in FAIL_SEEDS) and self.t == 1:  # second step
            raise RuntimeError("injected failure")
        time.sleep(self.step_delay)
        self.pos[:3] += np.asarray(action[:3], dtype=np.float64)
        self.pos[6] = np.clip(self.pos[6] + action[6], 0, 1)
        self.t += 1
        success = bool(np.linalg.norm(self.pos[:3] - self.goal) < 0.02)
        terminated = success and self.terminate_on_success
        return self._obs(), -float(np.linalg.norm(self.pos[:3] - self.goal)), terminated, \
            self.t >= self.episode_steps, {"is_success": success}


def fake_expert(env, noise=0.0, seed=None, gain=1.0):
    rng = np.random.default_rng(seed)
    base = env.unwrapped

    def policy(obs):
        action = np.zeros(7, np.float32)
        action[:3] = np.clip(gain * (base.goal - obs["agent_pos"][:3]), -0.05, 0.05)
        action[:3] += noise * 0.05 * rng.standard_normal(3)
        return action

    return policy


if FAKE_ID not in gym.registry:
    gym.register(FAKE_ID, entry_point=f"{MODULE}:FakeReachEnv")


def config(out, **kw) -> CollectConfig:
    base = dict(env_id=f"{MODULE}:{FAKE_ID}", expert_fn=f"{MODULE}:fake_expert", episodes=4, out=str(out),
                image_size=16, policy="mix")
    return CollectConfig(**{**base, **kw})


def test_collect_writes_readable_episodes_with_seeds(tmp_path):
    summary = collect(config(tmp_path, episodes=5, seed=3), progress=False)
    assert summary.written == 5 and summary.skipped == 0 and summary.steps > 0
    records = load_index(tmp_path)
    assert [r.file for r in records] == [f"episode_{i:06d}.h5" for i in range(5)]
    for i, r in enumerate(records):
        ep = load_episode(tmp_path / r.file)
        assert r.seed == episode_seed(3, i) == ep.metadata["seed"] and ep.metadata["episode_index"] == i
        assert ep.metadata["policy"] == episode_policy(config(tmp_path, seed=3), i)
        assert ep.metadata["camera"] == "fake_cam" and ep.metadata["control_hz"] == 4.0
        assert ep.frames["fake_cam"].shape == (ep.num_steps, 16, 16, 3)
        assert ep.actions.shape == (ep.num_steps - 1, 7) and ep.extras["reward"].shape == (ep.num_steps,)
        assert ep.is_success == bool(ep.extras["reward"][-2] > -0.02)  # last transition's success
    assert len({r.seed for r in records}) == 5
    assert (tmp_path / "collect_config.json").exists()


def test_mix_policy_draws_all_three():
    cfg = CollectConfig(policy="mix", seed=0)
    assert {episode_policy(cfg, i) for i in range(50)} == {"expert", "noisy-expert", "random"}
    assert episode_policy(CollectConfig(policy="random"), 3) == "random"


def test_config_validation():
    with pytest.raises(ValueError, match="policy"):
        CollectConfig(policy="greedy")
    with pytest.raises(ValueError, match="workers"):
        CollectConfig(workers=0)
    with pytest.raises(ValueError, match="seed"):
        CollectConfig(seed=-1)
    with pytest.raises(ValueError, match="expert_fn"):
        CollectConfig(expert_fn="envs.scripted_expert")
    with pytest.raises(CollectError, match="episodes must be >= 1, got 0"):
        CollectConfig(episodes=0)


def test_resume_skips_existing_and_rewrites_corrupt(tmp_path):
    collect(config(tmp_path, episodes=3), progress=False)
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.h5")}
    episode_path(tmp_path, 1).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="episode_000001.h5"):
        summary = collect(config(tmp_path, episodes=5), progress=False)
    assert summary.written == 3 and summary.skipped == 2  # episodes 1, 3, 4
    assert episode_path(tmp_path, 0).stat().st_mtime_ns == mtimes["episode_000000.h5"]
    assert episode_path(tmp_path, 2).stat().st_mtime_ns == mtimes["episode_000002.h5"]
    assert len(load_index(tmp_path)) == 5


def test_injected_exception_mid_episode_leaves_saved_files_readable_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{MODULE}.FAIL_SEEDS", {episode_seed(0, 2)})  # not an env kwarg: resuming keeps the settings
    with pytest.raises(RuntimeError, match="injected"):
        collect(config(tmp_path, episodes=4, policy="expert"), progress=False)
    monkeypatch.setattr(f"{MODULE}.FAIL_SEEDS", set())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["collect_config.json", "episode_000000.h5", "episode_000001.h5"]  # no partial file left
    reference = load_episode(episode_path(tmp_path, 1))
    summary = collect(config(tmp_path, episodes=4, policy="expert"), progress=False)
    assert summary.skipped == 2 and summary.written == 2
    np.testing.assert_array_equal(load_episode(episode_path(tmp_path, 1)).states, reference.states)


def test_workers_give_the_same_data(tmp_path):
    collect(config(tmp_path / "one", episodes=4, seed=1), progress=False)
    collect(config(tmp_path / "two", episodes=4, seed=1, workers=2), progress=False)
    for i in range(4):
        a, b = load_episode(episode_path(tmp_path / "one", i)), load_episode(episode_path(tmp_path / "two", i))
        np.testing.assert_array_equal(a.states, b.states)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.frames["fake_cam"], b.frames["fake_cam"])
        assert a.metadata["policy"] == b.metadata["policy"]


def test_sigkill_during_collection_then_resume(tmp_path):
    out = tmp_path / "ds"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_collect as t; "
        "from vjepa2_ac.data.collect import collect; "
        "collect(t.config(sys.argv[2], episodes=50, policy='expert', env_kwargs={'step_delay': 0.01, "
        "'episode_steps': 20, 'terminate_on_success': False}), progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(Path(__file__).parent), str(out)],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        deadline = time.monotonic() + 60
        while not (episode_path(out, 2).exists() and list(out.glob(".episode_000003.h5.*.partial"))):
            assert proc.poll() is None, "collector exited early"
            assert time.monotonic() < deadline, "collector too slow"
            time.sleep(0.01)
        time.sleep(0.05)  # kill while episode 3 (20 steps of 10 ms) is being written
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    written = sorted(out.glob("episode_*.h5"))
    assert 3 <= len(written) < 50
    for path in written:  # every saved file is complete
        with EpisodeFile(path) as ep:
            assert ep.num_steps == 21
    assert list(out.glob(".*.partial"))  # the killed writer's temp file is there...
    n = len(written)
    kwargs = {"step_delay": 0.01, "episode_steps": 20, "terminate_on_success": False}  # the same settings
    summary = collect(config(out, episodes=n + 2, policy="expert", env_kwargs=kwargs), progress=False)
    assert summary.skipped == n and summary.written == 2
    assert not list(out.glob(".*.partial"))  # ...and the next run removed it
    assert len(load_index(out)) == n + 2


def test_cli_module(tmp_path, capsys):
    import argparse

    from vjepa2_ac.commands import collect as command

    parser = argparse.ArgumentParser()
    command.configure(parser)
    args = parser.parse_args(["--env", f"{MODULE}:{FAKE_ID}", "--policy", "random", "--episodes", "2",
                              "--out", str(tmp_path), "--image-size", "16", "--no-progress", "--seed", "4"])
    assert command.run(args) == 0
    assert "wrote 2 episodes" in capsys.readouterr().out
    assert [r.policy for r in load_index(tmp_path)] == ["random", "random"]
    bad = parser.parse_args(["--episodes", "1", "--out", str(tmp_path), "--env-kwargs", "[1]"])
    with pytest.raises(SystemExit, match="JSON object"):
        command.run(bad)


def test_resume_with_other_settings_is_refused_naming_each_difference(tmp_path):
    collect(config(tmp_path, episodes=1, policy="expert"), progress=False)
    stored = (tmp_path / "collect_config.json").read_bytes()
    other = config(tmp_path, episodes=2, policy="random", image_size=24, camera="side", seed=5,
                   env_kwargs={"episode_steps": 3})
    with pytest.raises(CollectError) as info:
        collect(other, progress=False)
    message = str(info.value)
    assert "\n" not in message and "refusing to mix" in message
    for part in ("image_size: stored 16, new 24", "policy: stored 'expert', new 'random'",
                 "camera: stored None, new 'side'", "seed: stored 0, new 5",
                 "env_kwargs: stored {}, new {'episode_steps': 3}"):
        assert part in message
    assert "episodes:" not in message and "workers" not in message  # not data settings
    assert (tmp_path / "collect_config.json").read_bytes() == stored  # never overwritten by a refused run
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == ["episode_000000.h5"]
    # what does not change the data may differ: more episodes, workers, compression, noise the expert never reads
    summary = collect(config(tmp_path, episodes=2, policy="expert", workers=2, compression=None, noise=0.5),
                      progress=False)
    assert summary.skipped == 1 and summary.written == 1


def test_stored_config_missing_field_or_unreadable_is_refused(tmp_path):
    collect(config(tmp_path, episodes=1), progress=False)
    path = tmp_path / "collect_config.json"
    path.write_text(path.read_text().replace('"max_steps"', '"old_name"'))
    with pytest.raises(CollectError, match=r"max_steps: stored \(not recorded\), new None"):
        collect(config(tmp_path, episodes=2), progress=False)
    path.write_text("{not json")
    with pytest.raises(CollectError, match="cannot read .*collect_config.json"):
        collect(config(tmp_path, episodes=2), progress=False)
    assert path.read_text() == "{not json"


def test_expert_kwargs_reach_the_expert_and_are_checked(tmp_path):
    collect(config(tmp_path / "a", episodes=1, policy="expert"), progress=False)
    collect(config(tmp_path / "b", episodes=1, policy="expert", expert_kwargs={"gain": 0.3}), progress=False)
    a, b = (load_episode(tmp_path / d / "episode_000000.h5") for d in "ab")
    assert not np.allclose(a.actions[0], b.actions[0]) and b.metadata["expert_kwargs"] == {"gain": 0.3}
    with pytest.raises(CollectError, match="expert_kwargs .*'speed'.* do not fit"):
        collect(config(tmp_path / "c", episodes=1, expert_kwargs={"speed": 2}), progress=False)
    with pytest.raises(CollectError, match="other than noise / seed / rng"):
        config(tmp_path / "c", expert_kwargs={"noise": 0.1})
    assert not (tmp_path / "c").exists()
    with pytest.raises(CollectError, match=r"expert_kwargs: stored \{'gain': 0.3\}, new \{\}"):
        collect(config(tmp_path / "b", episodes=2, policy="expert"), progress=False)


def test_stored_config_from_before_expert_kwargs_resumes(tmp_path):
    """collect_config.json files written before the field existed were collected with its default."""
    collect(config(tmp_path, episodes=1), progress=False)
    path = tmp_path / "collect_config.json"
    stored = json.loads(path.read_text())
    del stored["expert_kwargs"]
    path.write_text(json.dumps(stored))
    assert collect(config(tmp_path, episodes=2), progress=False).written == 1
    with pytest.raises(CollectError, match=r"expert_kwargs: stored \{\}, new \{'gain': 2\}"):
        collect(config(tmp_path, episodes=3, expert_kwargs={"gain": 2}), progress=False)


def test_dataset_without_stored_config_is_refused(tmp_path):
    collect(config(tmp_path, episodes=1), progress=False)
    (tmp_path / "collect_config.json").unlink()
    with pytest.raises(CollectError, match="1 episode file.* but no collect_config.json"):
        collect(config(tmp_path, episodes=2), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_000000.h5"]
    collect(config(tmp_path / "empty", episodes=1), progress=False)  # an existing directory without episodes is fine


def broken_expert(env, noise=0.0, seed=None):
    raise RuntimeError("broken expert")


def test_failed_collect_removes_the_directory_it_created(tmp_path):
    out = tmp_path / "new" / "ds"
    with pytest.raises(RuntimeError, match="broken expert"):
        collect(config(out, episodes=1, policy="expert", expert_fn=f"{MODULE}:broken_expert"), progress=False)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError, match="broken expert"):
        collect(config(existing, episodes=1, policy="expert", expert_fn=f"{MODULE}:broken_expert"), progress=False)
    assert existing.is_dir() and not list(existing.iterdir())  # kept (not ours), but no stale settings left in it


def test_cli_errors_are_one_line_and_leave_no_directory(tmp_path):
    import argparse

    from vjepa2_ac.commands import collect as command

    parser = argparse.ArgumentParser()
    command.configure(parser)

    def fails(*argv, match):
        args = parser.parse_args(["--out", str(tmp_path / "ds"), "--no-progress", "--image-size", "16", *argv])
        with pytest.raises(SystemExit, match=match) as info:
            command.run(args)
        message = str(info.value.code)
        assert message.startswith("collect: ") and "\n" not in message
        assert info.value.__cause__ is None and info.value.__suppress_context__
        return message

    message = fails("--env", "vjepa2ac/FrankaPick-v0", "--episodes", "1", match="unknown env 'vjepa2ac/FrankaPick-v0'")
    assert "vjepa2ac/FrankaPickPlace-v0" in message and "vjepa2ac/FrankaReach-v0" in message
    fails("--env", f"{MODULE}:NoSuchEnv-v0", "--episodes", "1", match="unknown env")
    fails("--env", "no_such_module_xyz:Env-v0", "--episodes", "1", match="unknown env")
    fails("--env", f"{MODULE}:{FAKE_ID}", "--episodes", "0", match="episodes must be >= 1, got 0")
    fails("--env", f"{MODULE}:{FAKE_ID}", "--episodes", "1", "--env-kwargs", "{", match="JSON object")
    fails("--env", f"{MODULE}:{FAKE_ID}", "--episodes", "1", "--expert-kwargs", "[1]",
          match="--expert-kwargs must be a JSON object")
    assert not (tmp_path / "ds").exists()
    ok = ["--env", f"{MODULE}:{FAKE_ID}", "--policy", "random", "--episodes", "1"]
    assert command.run(parser.parse_args(["--out", str(tmp_path / "ds"), "--no-progress", "--image-size", "16", *ok])) == 0
    fails(*ok, "--image-size", "24", match="image_size: stored 16, new 24")


def test_collect_real_env_pick_place(tmp_path):
    """One short episode per policy from the MuJoCo pick-and-place env, read back as clips."""
    pytest.importorskip("mujoco")
    try:
        import envs  # noqa: F401
    except Exception as err:  # pragma: no cover - envs package missing or broken
        pytest.skip(f"envs not importable: {err}")
    from vjepa2_ac.data import ClipDataset

    cfg = CollectConfig(env_id="vjepa2ac/FrankaPickPlace-v0", policy="mix", episodes=3, out=str(tmp_path),
                        image_size=32, max_steps=8, seed=2)
    summary = collect(cfg, progress=False)
    assert summary.written == 3 and summary.steps == 24
    for i, record in enumerate(load_index(tmp_path)):
        assert record.num_steps == 9 and record.control_hz == 4.0 and record.frame_shape == (32, 32, 3)
        assert record.env_id == "vjepa2ac/FrankaPickPlace-v0" and record.policy == episode_policy(cfg, i)
        ep = load_episode(tmp_path / record.file)
        assert np.abs(ep.actions[:, :3]).max() > 0 and ep.frames[ep.metadata["camera"]].std() > 0
    frames, states, actions = ClipDataset(tmp_path)[0]
    assert frames.shape == (8, 32, 32, 3) and actions.shape == (7, 7)
