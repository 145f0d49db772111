"""Episode files, dataset index, DROID / LeRobot v3 readers and ClipDataset sampling (synthetic tiny datasets)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from vjepa2_ac.data import (
    ClipDataset,
    DroidTrajectories,
    EpisodeDirectory,
    EpisodeFile,
    EpisodeFormatError,
    EpisodeWriter,
    LeRobotEpisodes,
    load_episode,
    load_index,
    open_source,
    write_episode,
)
from vjepa2_ac.data.clips import clip_step
from vjepa2_ac.data.video import decode_frames, video_info, write_video

torch.set_num_threads(1)


# -- synthetic data: frame k of episode e is recognisable after lossy video coding --------------------------
def coded_frames(episode: int, num: int, size: int = 32) -> np.ndarray:
    """uint8 [num, size, size, 3]: top half encodes the episode, bottom quarters the frame index // 16 and % 16
    (flat grey blocks survive lossy video coding)."""
    frames = np.empty((num, size, size, 3), np.uint8)
    h = size // 2
    k = np.arange(num)
    frames[:, :h] = 20 + 40 * episode
    frames[:, h:, :h] = (10 + 14 * (k // 16))[:, None, None, None]
    frames[:, h:, h:] = (10 + 14 * (k % 16))[:, None, None, None]
    return frames


def write_test_video(path, frames, fps, codec="libx264"):
    """Near-lossless H.264 with a key frame every 8 frames (decoded pixels stay close to the written ones)."""
    options = {"crf": "10", "g": "8"} if codec == "libx264" else None
    return write_video(frames, path, fps, codec=codec, options=options)


def decode_code(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(episode [k], frame index [k]) read back from :func:`coded_frames` images."""
    f = np.asarray(frames, dtype=np.float64)
    h, m = f.shape[1] // 2, max(1, f.shape[1] // 16)
    top = f[:, m : h - m].mean(axis=(1, 2, 3))
    high = f[:, h + m : -m, m : h - m].mean(axis=(1, 2, 3))
    low = f[:, h + m : -m, h + m : -m].mean(axis=(1, 2, 3))
    index = 16 * np.rint((high - 10) / 14) + np.rint((low - 10) / 14)
    return np.rint((top - 20) / 40).astype(int), index.astype(int)


def coded_states(episode: int, num: int, rng: np.random.Generator) -> np.ndarray:
    """float64 [num, 7]: x = episode * 1000 + frame index; random orientation and gripper."""
    states = np.zeros((num, 7))
    states[:, 0] = episode * 1000 + np.arange(num)
    states[:, 1:3] = rng.normal(size=(num, 2))
    states[:, 3:6] = rng.uniform(-np.pi, np.pi, size=(num, 3)) * np.array([1, 0.45, 1])
    states[:, 6] = rng.uniform(0, 1, size=num)
    return states


def scipy_actions(states: np.ndarray) -> np.ndarray:
    """Official ``poses_to_diff`` written with scipy (reference)."""
    r0 = Rotation.from_euler("xyz", states[:-1, 3:6])
    r1 = Rotation.from_euler("xyz", states[1:, 3:6])
    d = (r1 * r0.inv()).as_euler("xyz")
    return np.concatenate([states[1:, :3] - states[:-1, :3], d, states[1:, 6:] - states[:-1, 6:]], axis=1)


def make_episode_dir(root: Path, lengths: list[int], control_hz: float = 4.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for e, n in enumerate(lengths):
        write_episode(root / f"episode_{e:06d}.h5", coded_frames(e, n), coded_states(e, n, rng),
                      rng.normal(size=(n - 1, 7)).astype(np.float32), is_success=bool(e % 2),
                      metadata={"env_id": "Fake-v0", "seed": 100 + e, "control_hz": control_hz, "policy": "expert"})
    return root


# -- episode files ------------------------------------------------------------------------------------------
def test_writer_round_trip_layout_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    frames, states = coded_frames(0, 6), coded_states(0, 6, rng)
    actions = rng.normal(size=(5, 7)).astype(np.float32)
    path = tmp_path / "ep.h5"
    with EpisodeWriter(path, camera="front", intrinsics=np.eye(3), compression="gzip",
                       metadata={"env_id": "E-v0", "seed": 7, "control_hz": 4.0, "policy": "noisy-expert",
                                 "env_kwargs": {"a": 1}}) as w:
        for t in range(6):
            extras = {"energy": float(t)} if t < 5 else {}
            w.add_step(frames[t], states[t], actions[t] if t < 5 else None, latency=0.1 * t, **extras)
        assert not path.exists() and any(p.name.endswith(".partial") for p in tmp_path.iterdir())
        w.is_success = True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.h5"]
    with h5py.File(path) as h5:  # DROID-compatible names and one frame per chunk
        assert h5["observation/robot_state/cartesian_position"].shape == (6, 6)
        assert h5["observation/robot_state/gripper_position"].shape == (6,)
        cam = h5["observation/camera/front"]
        assert cam.dtype == np.uint8 and cam.chunks == (1, 32, 32, 3) and cam.compression == "gzip"
        np.testing.assert_array_equal(cam.attrs["intrinsics"], np.eye(3))
        assert h5["action"].shape == (5, 7)
    ep = load_episode(path)
    np.testing.assert_array_equal(ep.frames["front"], frames)
    np.testing.assert_array_equal(ep.states, states)
    np.testing.assert_array_equal(ep.actions, actions)
    assert ep.is_success is True and ep.num_steps == 6
    assert ep.metadata["env_id"] == "E-v0" and ep.metadata["seed"] == 7 and ep.metadata["control_hz"] == 4.0
    assert ep.metadata["env_kwargs"] == {"a": 1} and ep.metadata["format_version"] == 1
    assert "library_version" in ep.metadata and "final_action" not in ep.metadata
    np.testing.assert_allclose(ep.extras["latency"], 0.1 * np.arange(6), rtol=1e-6)
    np.testing.assert_array_equal(ep.extras["energy"][:5], np.arange(5, dtype=np.float32))
    assert np.isnan(ep.extras["energy"][5])
    with EpisodeFile(path) as f:
        np.testing.assert_array_equal(f.frames([4, 1, 4]), frames[[4, 1, 4]])
        with pytest.raises(IndexError):
            f.frames([6])


def test_writer_keeps_an_action_on_the_last_step_and_multi_camera(tmp_path):
    states = coded_states(0, 3, np.random.default_rng(0))
    with EpisodeWriter(tmp_path / "e.h5", camera="front", compression="lzf") as w:
        for t in range(3):
            w.add_step({"front": coded_frames(0, 3)[t], "wrist": coded_frames(1, 3, 16)[t]}, states[t], np.full(7, t))
    ep = load_episode(tmp_path / "e.h5")
    assert sorted(ep.frames) == ["front", "wrist"] and ep.frames["wrist"].shape == (3, 16, 16, 3)
    assert ep.actions.shape == (2, 7)
    np.testing.assert_array_equal(ep.metadata["final_action"], np.full(7, 2.0))


def test_writer_rejects_bad_input_without_corrupting(tmp_path):
    state = np.zeros(7)
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="path must end"):
        EpisodeWriter(tmp_path / "e.txt")
    w = EpisodeWriter(tmp_path / "e.h5")
    with pytest.raises(ValueError, match="state must have shape"):
        w.add_step(frame, np.zeros(6), np.zeros(7))
    with pytest.raises(ValueError, match="uint8"):
        w.add_step(frame.astype(np.float32), state, np.zeros(7))
    with pytest.raises(ValueError, match="action must have shape"):
        w.add_step(frame, state, np.zeros(3))
    w.add_step(frame, state, np.zeros(7), reward=1.0)
    with pytest.raises(ValueError, match="keep shape"):
        w.add_step(np.zeros((4, 4, 3), np.uint8), state, np.zeros(7))
    with pytest.raises(ValueError, match="keep shape"):
        w.add_step(frame, state, np.zeros(7), reward=np.zeros(2))
    w.add_step(frame, state)
    with pytest.raises(ValueError, match="without an action"):
        w.add_step(frame, state)
    w.close()
    assert load_episode(tmp_path / "e.h5").num_steps == 2  # the rejected steps left no trace
    with pytest.raises(FileExistsError):
        EpisodeWriter(tmp_path / "e.h5")


def test_exception_inside_writer_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), EpisodeWriter(tmp_path / "e.h5") as w:
        w.add_step(np.zeros((8, 8, 3), np.uint8), np.zeros(7), np.zeros(7))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_write_episode_checks_lengths(tmp_path):
    with pytest.raises(ValueError, match="frames"):
        write_episode(tmp_path / "e.h5", coded_frames(0, 4), np.zeros((5, 7)))
    with pytest.raises(ValueError, match="actions must have shape"):
        write_episode(tmp_path / "e.h5", coded_frames(0, 4), np.zeros((4, 7)), np.zeros((2, 7)))
    assert not (tmp_path / "e.h5").exists()


# -- dataset index --------------------------------------------------------------------------------------------
def test_index_is_rebuilt_when_stale(tmp_path):
    root = make_episode_dir(tmp_path / "ds", [5, 6])
    records = load_index(root)
    assert [r.file for r in records] == ["episode_000000.h5", "episode_000001.h5"]
    assert [r.num_steps for r in records] == [5, 6] and records[1].seed == 101 and records[1].is_success
    index = json.loads((root / "index.json").read_text())
    assert len(index["episodes"]) == 2
    mtime = (root / "index.json").stat().st_mtime_ns
    load_index(root)  # fresh: not rewritten
    assert (root / "index.json").stat().st_mtime_ns == mtime
    write_episode(root / "sub" / "episode_x.h5", coded_frames(2, 9), np.zeros((9, 7)), metadata={"control_hz": 4})
    (root / "episode_000000.h5").unlink()
    records = load_index(root)
    assert [r.file for r in records] == ["episode_000001.h5", "sub/episode_x.h5"]
    assert [r.num_steps for r in records] == [6, 9]
    write_episode(root / "episode_000001.h5", coded_frames(1, 4), np.zeros((4, 7)), overwrite=True)
    assert [r.num_steps for r in load_index(root)] == [4, 9]  # changed file re-read
    assert len(json.loads((root / "index.json").read_text())["episodes"]) == 2


def test_corrupt_and_truncated_files_are_skipped_with_a_warning(tmp_path):
    root = make_episode_dir(tmp_path / "ds", [5, 6, 7])
    data = (root / "episode_000001.h5").read_bytes()
    (root / "episode_000001.h5").write_bytes(data[: len(data) // 2])  # truncated
    (root / "episode_000002.h5").write_bytes(b"not an hdf5 file" * 10)  # garbage
    with h5py.File(root / "episode_000003.h5", "w") as h5:  # valid HDF5, not an episode
        h5["x"] = 1
    (root / ".episode_000004.h5.123.partial").write_bytes(b"temp")  # in-progress writer: ignored silently
    with pytest.warns(UserWarning) as record:
        records = load_index(root)
    assert [r.file for r in records] == ["episode_000000.h5"]
    messages = " ".join(str(w.message) for w in record)
    for name in ("episode_000001.h5", "episode_000002.h5", "episode_000003.h5"):
        assert name in messages
    assert "partial" not in messages
    with pytest.warns(UserWarning) as record:  # still warned when the index is fresh
        assert len(EpisodeDirectory(root)) == 1
    assert len(record) == 3 and "episode_000002.h5" in " ".join(str(w.message) for w in record)
    with pytest.raises(EpisodeFormatError):
        EpisodeFile(root / "episode_000001.h5")


def test_unwritable_index_is_kept_in_memory(tmp_path, monkeypatch):
    import vjepa2_ac.data.index as index_module

    root = make_episode_dir(tmp_path / "ds", [5])

    def read_only(path, payload):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(index_module, "_write_json_atomic", read_only)
    with pytest.warns(UserWarning, match="could not write dataset index"):
        assert len(load_index(root)) == 1
    assert not (root / "index.json").exists()


# -- clips ----------------------------------------------------------------------------------------------------
def test_clip_step_matches_official_ceil():
    assert clip_step(15.0, 4.0) == 4 and clip_step(4.0, 4.0) == 1 and clip_step(30, 4) == 8
    assert clip_step(4.0 * (1 + 1e-9), 4.0) == 1  # float noise does not double the step
    assert clip_step(2.0, 4.0) == 1


def test_clip_dataset_on_our_episodes(tmp_path):
    root = make_episode_dir(tmp_path / "ds", [8, 12, 5], control_hz=15.0)  # step 4: needs >= 32 frames
    with pytest.raises(ValueError, match="long enough"):
        ClipDataset(root)
    root = make_episode_dir(tmp_path / "ds2", [40, 33, 20], control_hz=15.0)
    ds = ClipDataset(root, frames_per_clip=8, fps=4, seed=3)
    assert len(ds) == 2 and ds.num_episodes == 2 and ds.num_skipped == 1
    for i in range(len(ds)):
        frames, states, actions = ds[i]
        assert frames.dtype == torch.uint8 and frames.shape == (8, 32, 32, 3)
        assert states.dtype == torch.float32 and states.shape == (8, 7)
        assert actions.dtype == torch.float32 and actions.shape == (7, 7)
        episode, frame_idx = decode_code(frames.numpy())
        assert (episode == i).all()
        assert (np.diff(frame_idx) == 4).all() and frame_idx[0] >= 0 and frame_idx[-1] <= [39, 32][i]
        np.testing.assert_array_equal(states[:, 0].numpy(), i * 1000 + frame_idx)  # states aligned to frames
        _, _, idx = ds.clip_indices(i)
        full = load_episode(root / f"episode_{i:06d}.h5").states[idx]
        np.testing.assert_allclose(actions.numpy(), scipy_actions(full), atol=1e-5)
    # a 33-frame episode with step 4: windows end at 32 or 33 -> first frame 0 or 1
    starts = {int(ds.clip_indices(1, epoch=e)[2][0]) for e in range(40)}
    assert starts == {0, 1}


def test_clip_sampling_is_a_pure_function_of_seed_epoch_index(tmp_path):
    root = make_episode_dir(tmp_path / "ds", [60, 70, 80])
    a = ClipDataset(root, seed=5, clips_per_epoch=7)
    b = ClipDataset(str(root), seed=5, clips_per_epoch=7)
    assert len(a) == 7
    for i in reversed(range(7)):  # order does not matter
        for x, y in zip(a[i], b[i]):
            assert torch.equal(x, y)
    assert [a.clip_indices(i)[1] for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    ends = lambda ds, e: [int(ds.clip_indices(i, epoch=e)[2][-1]) for i in range(7)]  # noqa: E731
    assert ends(a, 0) == ends(b, 0) and ends(a, 0) != ends(a, 1)
    c = ClipDataset(root, seed=6, clips_per_epoch=7)
    assert ends(a, 0) != ends(c, 0)
    a.set_epoch(1)
    assert [int(a.clip_indices(i)[2][-1]) for i in range(7)] == ends(b, 1)
    with pytest.raises(IndexError):
        a.clip_indices(7)
    # DataLoader workers see the same clips
    loader = torch.utils.data.DataLoader(b, batch_size=7, num_workers=2)
    batch = next(iter(loader))
    ref = torch.stack([b[i][0] for i in range(7)])
    assert torch.equal(batch[0], ref)


def test_fewer_clips_than_episodes_cover_every_episode_over_the_epochs(tmp_path):
    root = make_episode_dir(tmp_path / "ds", [20] * 6)
    ds = ClipDataset(root, seed=2, clips_per_epoch=2)
    episodes = [[ds.clip_indices(i, epoch=e)[1] for i in range(2)] for e in range(12)]
    assert all(len(set(ep)) == 2 for ep in episodes)  # distinct episodes within an epoch
    assert set(sum(episodes, [])) == set(range(6))  # index % 6 would only ever use episodes 0 and 1
    assert episodes[0] != episodes[1]
    again = ClipDataset(root, seed=2, clips_per_epoch=2)
    assert [again.clip_indices(i, epoch=5)[1] for i in reversed(range(2))] == episodes[5][::-1]
    frames, _, _ = again[1]
    assert (decode_code(frames.numpy())[0] == episodes[0][1]).all()  # items read the drawn episode


def test_clip_dataset_resize_and_transform(tmp_path):
    root = make_episode_dir(tmp_path / "ds", [10])
    ds = ClipDataset(root, image_size=16, transform=lambda f, s, a: (f.permute(0, 3, 1, 2), a))
    frames, actions = ds[0]
    assert frames.shape == (8, 3, 16, 16) and frames.dtype == torch.uint8 and actions.shape == (7, 7)
    episode, _ = decode_code(frames.permute(0, 2, 3, 1).numpy())
    assert (episode == 0).all()
    with pytest.raises(ValueError, match="frames_per_clip"):
        ClipDataset(root, frames_per_clip=1)
    with pytest.raises(ValueError, match="fps"):
        ClipDataset(root, fps=0)
    with pytest.raises(ValueError, match="seed"):
        ClipDataset(root, seed=-1)


def test_missing_control_rate_needs_source_fps(tmp_path):
    write_episode(tmp_path / "e.h5", coded_frames(0, 10), np.zeros((10, 7)))
    with pytest.raises(ValueError, match="source_fps"):
        ClipDataset(tmp_path)
    assert len(ClipDataset(EpisodeDirectory(tmp_path, source_fps=4.0))) == 1


# -- raw DROID ------------------------------------------------------------------------------------------------
def make_droid_trajectory(path: Path, episode: int, num: int, fps: float = 15.0, serial: str = "2345") -> Path:
    rng = np.random.default_rng(episode)
    (path / "recordings" / "MP4").mkdir(parents=True)
    states = coded_states(episode, num, rng)
    with h5py.File(path / "trajectory.h5", "w") as h5:
        h5["observation/robot_state/cartesian_position"] = states[:, :6]
        h5["observation/robot_state/gripper_position"] = states[:, 6]
        h5[f"observation/camera_extrinsics/{serial}_left"] = np.tile(np.arange(6.0), (num, 1)) + episode
        h5["action/cartesian_position"] = states[:, :6]  # present in DROID, unused here
    write_test_video(path / "recordings" / "MP4" / f"{serial}.mp4", coded_frames(episode, num), fps)
    write_test_video(path / "recordings" / "MP4" / "9999.mp4", coded_frames(5, num), fps)  # another camera
    meta = {"left_mp4_path": f"lab/success/2023/{path.name}/recordings/MP4/{serial}.mp4",
            "wrist_mp4_path": f"lab/success/2023/{path.name}/recordings/MP4/9999.mp4"}
    (path / f"metadata_{path.name}.json").write_text(json.dumps(meta))
    return path


def test_video_helpers_round_trip(tmp_path):
    write_test_video(tmp_path / "v.mp4", coded_frames(1, 12), fps=15)
    assert video_info(tmp_path / "v.mp4") == (12, 15.0)
    episode, idx = decode_code(decode_frames(tmp_path / "v.mp4", [7, 2, 11]))
    assert episode.tolist() == [1, 1, 1] and idx.tolist() == [7, 2, 11]
    with pytest.raises(IndexError, match="fewer than"):
        decode_frames(tmp_path / "v.mp4", [12])


def test_droid_trajectories_official_sampling(tmp_path):
    make_droid_trajectory(tmp_path / "droid" / "t0", 0, 33)  # step ceil(15/4) = 4: needs 32 frames
    make_droid_trajectory(tmp_path / "droid" / "t1", 1, 45)
    make_droid_trajectory(tmp_path / "droid" / "t2", 2, 20)  # too short
    (tmp_path / "droid" / "broken").mkdir()
    (tmp_path / "droid" / "broken" / "trajectory.h5").write_bytes(b"junk")
    with pytest.warns(UserWarning, match="broken"):
        src = DroidTrajectories(tmp_path / "droid")
    assert len(src) == 3 and src.episode_fps(0) == 15.0 and src.episode_length(1) == 45
    np.testing.assert_array_equal(src.extrinsics(1, [0, 3]), np.tile(np.arange(6.0) + 1, (2, 1)))
    ds = ClipDataset(src, seed=1)
    assert len(ds) == 2
    for i in range(2):
        frames, states, actions = ds[i]
        episode, idx = decode_code(frames.numpy())
        assert (episode == i).all() and (np.diff(idx) == 4).all()
        np.testing.assert_array_equal(states[:, 0].numpy(), i * 1000 + idx)
        _, _, want = ds.clip_indices(i)
        np.testing.assert_array_equal(idx, want)
        assert actions.shape == (7, 7)
    # the official list file (one trajectory dir per line) and open_source() detection
    listing = tmp_path / "droid_list.txt"
    listing.write_text(f"{tmp_path / 'droid' / 't1'}\n{tmp_path / 'droid' / 't0'}\n")
    assert [p.name for p in DroidTrajectories(listing).dirs] == ["t1", "t0"]
    assert isinstance(open_source(tmp_path / "droid" / "t0"), DroidTrajectories)
    wrist = DroidTrajectories(tmp_path / "droid" / "t0", camera_key="wrist_mp4_path")
    assert (decode_code(wrist.read(0, [3])[0])[0] == 5).all()
    with pytest.raises(ValueError, match="camera_key"):
        DroidTrajectories(tmp_path / "droid" / "t0", camera_key="left")


# -- LeRobot v3 -----------------------------------------------------------------------------------------------
def make_lerobot_v3(root: Path, lengths: list[int], fps: int = 10, episodes_per_file: int = 2,
                    video_key: str = "observation.images.front", state_dim: int = 7, codec: str = "libx264") -> Path:
    """Several episodes per data/video file; from/to timestamps in meta/episodes (v3.0 layout)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    (root / "meta").mkdir(parents=True)
    ep_rows: dict[str, list] = {k: [] for k in [
        "episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
        "dataset_to_index", f"videos/{video_key}/chunk_index", f"videos/{video_key}/file_index",
        f"videos/{video_key}/from_timestamp", f"videos/{video_key}/to_timestamp",
        "meta/episodes/chunk_index", "meta/episodes/file_index"]}
    global_index = 0
    for file_index, start in enumerate(range(0, len(lengths), episodes_per_file)):
        rows: dict[str, list] = {k: [] for k in
                                 ["observation.state", "action", "timestamp", "frame_index", "episode_index",
                                  "index", "task_index"]}
        video, t_offset = [], 0.0
        for e in range(start, min(start + episodes_per_file, len(lengths))):
            n = lengths[e]
            states = coded_states(e, n, rng)[:, :state_dim] if state_dim <= 7 else np.tile(coded_states(e, n, rng), 2)
            rows["observation.state"] += states.astype(np.float32).tolist()
            rows["action"] += rng.normal(size=(n, 7)).astype(np.float32).tolist()
            rows["timestamp"] += (np.arange(n) / fps).astype(np.float32).tolist()
            rows["frame_index"] += list(range(n))
            rows["episode_index"] += [e] * n
            rows["index"] += list(range(global_index, global_index + n))
            rows["task_index"] += [0] * n
            video.append(coded_frames(e, n, 64))
            for k, v in [("episode_index", e), ("tasks", ["pick"]), ("length", n), ("data/chunk_index", 0),
                         ("data/file_index", file_index), ("dataset_from_index", global_index),
                         ("dataset_to_index", global_index + n), (f"videos/{video_key}/chunk_index", 0),
                         (f"videos/{video_key}/file_index", file_index),
                         (f"videos/{video_key}/from_timestamp", t_offset),
                         (f"videos/{video_key}/to_timestamp", t_offset + n / fps),
                         ("meta/episodes/chunk_index", 0), ("meta/episodes/file_index", 0)]:
                ep_rows[k].append(v)
            global_index += n
            t_offset += n / fps
        data_path = root / "data" / "chunk-000" / f"file-{file_index:03d}.parquet"
        data_path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table({"observation.state": pa.array(rows["observation.state"], pa.list_(pa.float32())),
                          "action": pa.array(rows["action"], pa.list_(pa.float32())),
                          **{k: rows[k] for k in ["timestamp", "frame_index", "episode_index", "index", "task_index"]}})
        pq.write_table(table, data_path)
        video_path = root / "videos" / video_key / "chunk-000" / f"file-{file_index:03d}.mp4"
        video_path.parent.mkdir(parents=True, exist_ok=True)
        write_test_video(video_path, np.concatenate(video), fps, codec=codec)
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    # episodes stored out of order: the reader must sort by episode_index
    order = list(reversed(range(len(lengths))))
    pq.write_table(pa.table({k: [v[j] for j in order] for k, v in ep_rows.items()}),
                   root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    info = {
        "codebase_version": "v3.0", "robot_type": "franka", "fps": fps, "total_episodes": len(lengths),
        "total_frames": sum(lengths), "chunks_size": 1000,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {
            video_key: {"dtype": "video", "shape": [64, 64, 3], "names": ["height", "width", "channels"],
                        "info": {"video.fps": fps, "video.codec": "h264"}},
            "observation.state": {"dtype": "float32", "shape": [state_dim], "names": None},
            "action": {"dtype": "float32", "shape": [7], "names": None},
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "frame_index": {"dtype": "int64", "shape": [1], "names": None},
            "episode_index": {"dtype": "int64", "shape": [1], "names": None},
            "index": {"dtype": "int64", "shape": [1], "names": None},
            "task_index": {"dtype": "int64", "shape": [1], "names": None},
        },
    }
    (root / "meta" / "info.json").write_text(json.dumps(info))
    return root


def test_lerobot_v3_multi_episode_files(tmp_path):
    root = make_lerobot_v3(tmp_path / "lr", [12, 20, 9, 16], fps=10)
    src = open_source(root)
    assert isinstance(src, LeRobotEpisodes)
    assert len(src) == 4 and [src.episode_length(i) for i in range(4)] == [12, 20, 9, 16]
    # episode 1 is the second episode of file 0, episode 3 the second of file 1: frames come from mid-file
    for e in range(4):
        idx = np.array([0, 3, src.episode_length(e) - 1])
        frames, states = src.read(e, idx)
        episode, frame_idx = decode_code(frames)
        assert (episode == e).all() and frame_idx.tolist() == idx.tolist()
        np.testing.assert_allclose(states[:, 0], e * 1000 + idx)
    ds = ClipDataset(root, frames_per_clip=4, fps=4, seed=0)  # step ceil(10/4) = 3 -> 12 frames needed
    assert ds.num_episodes == 3 and ds.num_skipped == 1
    for i in range(len(ds)):
        frames, states, actions = ds[i]
        episode, frame_idx = decode_code(frames.numpy())
        assert len(set(episode.tolist())) == 1 and (np.diff(frame_idx) == 3).all()
        np.testing.assert_allclose(states[:, 0].numpy(), episode * 1000 + frame_idx)
        assert actions.shape == (3, 7)


def test_lerobot_v3_state_fn_and_errors(tmp_path):
    root = make_lerobot_v3(tmp_path / "lr", [10, 10], state_dim=14)
    with pytest.raises(ValueError, match="state_fn"):
        LeRobotEpisodes(root)
    with pytest.raises(ValueError, match="state_key"):
        LeRobotEpisodes(root, state_key="observation.nope")
    with pytest.raises(ValueError, match="video_key"):
        LeRobotEpisodes(root, video_key="observation.images.wrist")
    src = LeRobotEpisodes(root, state_fn=lambda s: s[:, :7])
    _, states = src.read(1, [2, 5])
    np.testing.assert_allclose(states[:, 0], [1002, 1005])
    info = json.loads((root / "meta" / "info.json").read_text())
    info["codebase_version"] = "v2.1"
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="v3"):
        LeRobotEpisodes(root, state_fn=lambda s: s[:, :7])


@pytest.mark.skipif("libsvtav1" not in __import__("av").codecs_available, reason="no AV1 encoder")
def test_lerobot_v3_av1_video(tmp_path):
    """LeRobot's default codec is AV1 (libsvtav1)."""
    root = make_lerobot_v3(tmp_path / "lr", [8, 8], fps=10, codec="libsvtav1")
    frames, _ = LeRobotEpisodes(root).read(1, [0, 7])
    episode, idx = decode_code(frames)
    assert episode.tolist() == [1, 1] and idx.tolist() == [0, 7]


def test_mixed_sources_in_one_dataset(tmp_path):
    ours = make_episode_dir(tmp_path / "ours", [10])
    droid = make_droid_trajectory(tmp_path / "droid" / "t0", 1, 40)
    lr = make_lerobot_v3(tmp_path / "lr", [12], fps=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = ClipDataset([ours, droid, lr], frames_per_clip=8, fps=4)
    assert len(ds) == 3 and [type(s).__name__ for s in ds.sources] == [
        "EpisodeDirectory", "DroidTrajectories", "LeRobotEpisodes"]
    shapes = [tuple(ds[i][0].shape) for i in range(3)]
    assert shapes == [(8, 32, 32, 3), (8, 32, 32, 3), (8, 64, 64, 3)]
