"""Write this library's HDF5 episodes (``collect``, the robot loop) as a LeRobotDataset v3.0 directory, the layout
:class:`~vjepa2_ac.data.lerobot.LeRobotEpisodes` reads (no ``lerobot`` dependency)::

    meta/info.json                               codebase_version "v3.0", fps, features, data_path, video_path
    meta/tasks.parquet                           task_index, task
    meta/stats.json                              mean / std / min / max / count of state and action
    meta/episodes/chunk-000/file-000.parquet     one row per episode (data and video locations)
    data/chunk-000/file-000.parquet              one row per frame: observation.state (float64 [7]), action
                                                 (float32 [7]), timestamp, frame_index, episode_index, index,
                                                 task_index
    videos/observation.images.<camera>/chunk-000/file-000.mp4   all episodes, one after the other

States are stored as float64 and actions as float32, exactly as in the episodes. An episode has one action fewer
than observations; its last frame gets the episode's ``final_action`` when it has one, else zeros. Frames go through
the MP4 codec (lossy: ``crf`` 10 by default, a few grey levels). The directory is written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vjepa2_ac.data.episode import EpisodeFile
from vjepa2_ac.data.lerobot import DEFAULT_DATA_PATH, DEFAULT_VIDEO_PATH

CODEBASE_VERSION = "v3.0"
STATE_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper"]
DATA_FILE = DEFAULT_DATA_PATH.format(chunk_index=0, file_index=0)  # everything in the first file of the first chunk
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"


def export_lerobot(episodes: Sequence[str | os.PathLike], out: str | os.PathLike, *, fps: float | None = None,
                   task: str | None = None, robot_type: str = "franka", codec: str | None = None,
                   crf: int = 10) -> Path:
    """Episode files -> a LeRobotDataset v3.0 directory at ``out`` (replaced atomically); returns ``out``.

    ``fps``: the control rate (default: the episodes' ``control_hz``; all must agree). ``task``: the task text of
    every episode (default: each episode's ``env_id`` or ``task`` attribute, else ``"unknown"``). Every episode must
    have the same cameras and frame shapes; each camera becomes the video feature ``observation.images.<camera>``.
    ``ValueError`` naming the episode for anything else."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vjepa2_ac.atomic import atomic_directory
    from vjepa2_ac.data.video import write_mp4

    paths = [Path(p) for p in episodes]
    if not paths:
        raise ValueError("episodes: no episode files given")
    files = [EpisodeFile(p) for p in paths]
    try:
        first = files[0]
        cameras, shapes = first.cameras, {c: first.frame_shape(c) for c in first.cameras}
        rates, tasks = [], []
        for f in files:
            if f.cameras != cameras or any(f.frame_shape(c) != shapes[c] for c in cameras):
                raise ValueError(f"{f.path}: cameras {[(c, f.frame_shape(c)) for c in f.cameras]} differ from "
                                 f"{first.path}'s {[(c, shapes[c]) for c in cameras]}")
            meta = f.metadata
            rates.append(meta.get("control_hz"))
            tasks.append(task or str(meta.get("task") or meta.get("env_id") or "unknown"))
        if fps is None:
            known = {float(r) for r in rates if r}  # collect records "" where the env had no rate
            if len(known) != 1:
                raise ValueError(f"fps: the episodes' control_hz are {sorted(known) or 'missing'}; pass fps=")
            fps = known.pop()
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        task_names = sorted(set(tasks))
        task_index = {t: i for i, t in enumerate(task_names)}

        states, actions, frame_index, episode_index, timestamps = [], [], [], [], []
        videos: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
        episode_rows: dict[str, list] = {k: [] for k in ("episode_index", "tasks", "length", "data/chunk_index",
                                                         "data/file_index", "dataset_from_index", "dataset_to_index",
                                                         "meta/episodes/chunk_index", "meta/episodes/file_index")}
        for c in cameras:
            for k in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
                episode_rows[f"videos/observation.images.{c}/{k}"] = []
        start = 0
        for e, f in enumerate(files):
            n = f.num_steps
            s = f.states()
            a = np.zeros((n, 7), np.float32)
            a[:n - 1] = f.actions()
            final = f.metadata.get("final_action")
            if final is not None and len(np.ravel(final)) == 7:
                a[n - 1] = np.asarray(final, np.float32).ravel()
            states.append(s)
            actions.append(a)
            frame_index.append(np.arange(n))
            episode_index.append(np.full(n, e))
            timestamps.append(np.arange(n) / fps)
            for c in cameras:
                videos[c].append(f.frames(camera=c))
            for k, v in (("episode_index", e), ("tasks", [tasks[e]]), ("length", n), ("data/chunk_index", 0),
                         ("data/file_index", 0), ("dataset_from_index", start), ("dataset_to_index", start + n),
                         ("meta/episodes/chunk_index", 0), ("meta/episodes/file_index", 0)):
                episode_rows[k].append(v)
            for c in cameras:
                prefix = f"videos/observation.images.{c}"
                episode_rows[f"{prefix}/chunk_index"].append(0)
                episode_rows[f"{prefix}/file_index"].append(0)
                episode_rows[f"{prefix}/from_timestamp"].append(start / fps)
                episode_rows[f"{prefix}/to_timestamp"].append((start + n) / fps)
            start += n
    finally:
        for f in files:
            f.close()

    state = np.concatenate(states)
    action = np.concatenate(actions)
    total = len(state)
    episode_of_frame = np.concatenate(episode_index)
    data = pa.table({
        "observation.state": pa.array(list(state), pa.list_(pa.float64(), 7)),
        "action": pa.array(list(action), pa.list_(pa.float32(), 7)),
        "timestamp": pa.array(np.concatenate(timestamps).astype(np.float32)),
        "frame_index": pa.array(np.concatenate(frame_index).astype(np.int64)),
        "episode_index": pa.array(episode_of_frame.astype(np.int64)),
        "index": pa.array(np.arange(total, dtype=np.int64)),
        "task_index": pa.array(np.asarray([task_index[tasks[e]] for e in episode_of_frame], np.int64)),
    })
    features = {
        "observation.state": {"dtype": "float64", "shape": [7], "names": STATE_NAMES},
        "action": {"dtype": "float32", "shape": [7], "names": ACTION_NAMES},
        **{f"observation.images.{c}": {
            "dtype": "video", "shape": list(shapes[c]), "names": ["height", "width", "channels"],
            "info": {"video.fps": fps, "video.height": shapes[c][0], "video.width": shapes[c][1],
                     "video.channels": 3, "video.pix_fmt": "yuv420p", "video.is_depth_map": False}}
           for c in cameras},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "fps": fps,
            "total_episodes": len(files), "total_frames": total, "total_tasks": len(task_names),
            "chunks_size": 1000, "data_path": DEFAULT_DATA_PATH, "video_path": DEFAULT_VIDEO_PATH,
            "splits": {"train": f"0:{len(files)}"}, "features": features}

    def stats(x: np.ndarray) -> dict:
        return {"mean": x.mean(0).tolist(), "std": x.std(0).tolist(), "min": x.min(0).tolist(),
                "max": x.max(0).tolist(), "count": [len(x)]}

    with atomic_directory(out) as tmp:
        for rel in (DATA_FILE, EPISODES_FILE):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, tmp / DATA_FILE)
        pq.write_table(pa.table(episode_rows), tmp / EPISODES_FILE)
        pq.write_table(pa.table({"task_index": list(range(len(task_names))), "task": task_names}),
                       tmp / "meta" / "tasks.parquet")
        for c in cameras:
            path = tmp / DEFAULT_VIDEO_PATH.format(video_key=f"observation.images.{c}", chunk_index=0, file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_mp4(np.concatenate(videos[c]), path, fps, codec=codec, options={"crf": str(crf)})
            features[f"observation.images.{c}"]["info"]["video.codec"] = _codec_of(path)
        (tmp / "meta" / "stats.json").write_text(json.dumps(
            {"observation.state": stats(state), "action": stats(action.astype(np.float64))}, indent=2) + "\n")
        (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return Path(out)


def _codec_of(path: Path) -> str:
    import av

    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.name
