"""collect -> export (LeRobotDataset v3.0) -> read: the same states and actions exactly, frames within the video
codec's tolerance."""

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_data import coded_frames, coded_states

from vjepa2_ac.cli import main
from vjepa2_ac.data import write_episode
from vjepa2_ac.data.episode import EpisodeFile
from vjepa2_ac.data.lerobot import LeRobotEpisodes
from vjepa2_ac.data.lerobot_export import export_lerobot

FRAME_TOLERANCE = 6  # mean absolute grey-level error of a decoded frame (crf 10, flat test patterns: ~1)


def _episodes(root, lengths, cameras=("front",), control_hz=4.0):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for e, n in enumerate(lengths):
        frames = {c: np.roll(coded_frames(e, n, 32), 8 * k, axis=2) for k, c in enumerate(cameras)}
        path = root / f"episode_{e:06d}.h5"
        write_episode(path, frames, coded_states(e, n, rng) / 1000 + 0.123456789,
                      rng.normal(size=(n - 1, 7)).astype(np.float32), metadata={"env_id": f"Task{e % 2}-v0",
                                                                                  "control_hz": control_hz})
        paths.append(path)
    return paths


def test_round_trip_gives_the_same_states_actions_and_frames(tmp_path):
    paths = _episodes(tmp_path / "eps", [9, 5, 7], cameras=("side", "top"))
    out = export_lerobot(paths, tmp_path / "lerobot")
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 4.0 and info["total_frames"] == 21
    assert info["total_episodes"] == 3 and info["total_tasks"] == 2
    assert {k for k, f in info["features"].items() if f["dtype"] == "video"} == {"observation.images.side",
                                                                                "observation.images.top"}
    data = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    tasks = pq.read_table(out / "meta" / "tasks.parquet").to_pydict()
    assert tasks["task"] == ["Task0-v0", "Task1-v0"]
    for camera in ("side", "top"):
        reader = LeRobotEpisodes(out, video_key=f"observation.images.{camera}")
        assert len(reader) == 3
        for i, path in enumerate(paths):
            with EpisodeFile(path) as ep:
                n = ep.num_steps
                frames, states = reader.read(i, np.arange(n))
                np.testing.assert_array_equal(states, ep.states())  # float64, exactly
                rows = np.flatnonzero(np.asarray(data["episode_index"]) == i)
                actions = np.asarray([data["action"][r] for r in rows], np.float32)
                np.testing.assert_array_equal(actions[:-1], ep.actions())  # float32, exactly
                np.testing.assert_array_equal(actions[-1], np.zeros(7, np.float32))  # no action after the last frame
                error = np.abs(frames.astype(np.int16) - ep.frames(camera=camera).astype(np.int16)).mean(axis=(1, 2, 3))
                assert error.max() < FRAME_TOLERANCE, (camera, i, error.max())
    stats = json.loads((out / "meta" / "stats.json").read_text())
    assert stats["observation.state"]["count"] == [21] and len(stats["action"]["mean"]) == 7


def test_cli_export_and_bad_input(tmp_path, capsys):
    _episodes(tmp_path / "a", [4, 3])
    _episodes(tmp_path / "b", [5])
    assert main(["export", "--format", "lerobot", "--data", str(tmp_path / "a"), str(tmp_path / "b"),
                 "--out", str(tmp_path / "out"), "--task", "pick the cube"]) == 0
    assert "3 episodes" in capsys.readouterr().out
    assert pq.read_table(tmp_path / "out" / "meta" / "tasks.parquet").to_pydict()["task"] == ["pick the cube"]
    assert LeRobotEpisodes(tmp_path / "out").episode_length(2) == 5
    _episodes(tmp_path / "fast", [3], control_hz=8.0)
    for argv, message in [
        (["--data", str(tmp_path / "nope")], "--data .*nope: no such file or directory"),
        (["--data", str(tmp_path / "a"), str(tmp_path / "fast")], r"control_hz are \[4.0, 8.0\]; pass fps="),
        (["--data", str(tmp_path / "a"), "--out", str(tmp_path / "a" / "episode_000000.h5")],
         "exists and is not a directory"),
    ]:
        argv = ["export", "--format", "lerobot", *argv]
        if "--out" not in argv:
            argv += ["--out", str(tmp_path / "bad")]
        assert main(argv) == 2
        assert re.search(message, capsys.readouterr().err)
    _episodes(tmp_path / "other_cam", [3], cameras=("wrist",))
    assert main(["export", "--format", "lerobot", "--data", str(tmp_path / "a"), str(tmp_path / "other_cam"),
                 "--out", str(tmp_path / "bad")]) == 2
    assert "differ from" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # nothing half-written


def test_export_needs_episodes(tmp_path):
    with pytest.raises(ValueError, match="no episode files given"):
        export_lerobot([], tmp_path / "x")


def test_reader_takes_a_state_of_several_columns(tmp_path):
    import pyarrow as pa

    paths = _episodes(tmp_path / "eps", [6, 4])
    out = export_lerobot(paths, tmp_path / "lr")
    data_file = out / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(data_file)
    state = np.asarray(table.column("observation.state").to_pylist())
    table = table.drop(["observation.state"]).append_column(
        "observation.cartesian", pa.array(list(state[:, :6]), pa.list_(pa.float64(), 6))).append_column(
        "observation.gripper", pa.array(state[:, 6]))
    pq.write_table(table, data_file)
    info = json.loads((out / "meta" / "info.json").read_text())
    del info["features"]["observation.state"]
    info["features"]["observation.cartesian"] = {"dtype": "float64", "shape": [6], "names": None}
    info["features"]["observation.gripper"] = {"dtype": "float64", "shape": [1], "names": None}
    (out / "meta" / "info.json").write_text(json.dumps(info))
    reader = LeRobotEpisodes(out, state_key=["observation.cartesian", "observation.gripper"])
    with EpisodeFile(paths[1]) as ep:
        np.testing.assert_array_equal(reader.read(1, np.arange(4))[1], ep.states())
    with pytest.raises(ValueError, match=r"has 6 values per frame, not the 7 of robot space droid-franka-ee"):
        LeRobotEpisodes(out, state_key=["observation.cartesian"])
    with pytest.raises(ValueError, match=r"\['observation.nope'\] is not a feature"):
        LeRobotEpisodes(out, state_key=["observation.cartesian", "observation.nope"])


def test_reader_takes_a_hub_dataset_id(tmp_path):
    import shutil

    from vjepa2_ac.data.clips import open_source

    out = export_lerobot(_episodes(tmp_path / "eps", [5]), tmp_path / "lr")
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hub" / "datasets--someone--franka-sim"
    shutil.copytree(out, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    reader = LeRobotEpisodes("someone/franka-sim", cache_dir=tmp_path / "hub", local_files_only=True)
    assert len(reader) == 1 and reader.episode_length(0) == 5
    with pytest.raises(OSError, match="cannot fetch the LeRobot dataset 'someone/other'"):
        LeRobotEpisodes("someone/other", cache_dir=tmp_path / "hub", local_files_only=True)
    with pytest.raises(OSError, match="'someone/other'"):
        open_source("someone/other")  # no such repo in the default cache, offline


def test_reader_takes_images_stored_in_parquet(tmp_path):
    import io

    import pyarrow as pa
    from PIL import Image

    paths = _episodes(tmp_path / "eps", [5, 3])
    out = export_lerobot(paths, tmp_path / "lr")
    data_file = out / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(data_file)
    cells = []
    for path in paths:  # PNG bytes in a {"bytes", "path"} struct, as Hugging Face datasets stores an Image feature
        with EpisodeFile(path) as ep:
            for frame in ep.frames():
                buffer = io.BytesIO()
                Image.fromarray(frame).save(buffer, format="PNG")
                cells.append({"bytes": buffer.getvalue(), "path": None})
    table = table.append_column("observation.images.png", pa.array(
        cells, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
    pq.write_table(table, data_file)
    info = json.loads((out / "meta" / "info.json").read_text())
    info["features"]["observation.images.png"] = {"dtype": "image", "shape": [32, 32, 3],
                                                  "names": ["height", "width", "channels"]}
    (out / "meta" / "info.json").write_text(json.dumps(info))
    reader = LeRobotEpisodes(out, video_key="observation.images.png")
    for i, path in enumerate(paths):
        with EpisodeFile(path) as ep:
            frames, states = reader.read(i, [2, 0, 1])
            np.testing.assert_array_equal(frames, ep.frames([2, 0, 1]))  # lossless PNG: exact
            np.testing.assert_array_equal(states, ep.states([2, 0, 1]))
    with pytest.raises(ValueError, match="is not a video or image feature"):
        LeRobotEpisodes(out, video_key="observation.images.nope")
