"""Write episode frames to an MP4 (PyAV, H.264 or MPEG-4) or, when that is not possible, an animated GIF.

    path = write_video(frames, "episode.mp4", fps=4)     # frames uint8 [T, H, W, 3]; returns the path written

Files are written to a temporary name in the same directory and renamed, so a crash never leaves half a video.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vjepa2_ac.atomic import atomic_path

MP4_CODECS = ("libx264", "h264", "mpeg4")


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be uint8 [T >= 1, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad H and W to even sizes (yuv420p needs them) by repeating the last row / column."""
    h, w = frames.shape[1:3]
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float = 4.0) -> Path:
    """MP4 via PyAV with the first available codec of :data:`MP4_CODECS`; raises ``RuntimeError`` if none."""
    import av

    frames = _even(_check_frames(frames))
    path = Path(path)
    errors = []
    for codec in MP4_CODECS:
        try:
            with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), mode="w") as container:
                stream = container.add_stream(codec, rate=max(1, round(fps)))
                stream.width, stream.height = frames.shape[2], frames.shape[1]
                stream.pix_fmt = "yuv420p"
                for frame in frames:
                    for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            return path
        except Exception as err:  # codec missing in this FFmpeg build: try the next one
            errors.append(f"{codec}: {type(err).__name__}: {err}")
    raise RuntimeError("no MP4 encoder available in PyAV (" + "; ".join(errors) + ")")


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: float = 4.0) -> Path:
    """Animated GIF (Pillow), looping."""
    from PIL import Image

    frames = _check_frames(frames)
    path = Path(path)
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path, suffix=".gif") as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(round(1000 / fps)), loop=0)
    return path


def write_video(frames: np.ndarray, path: str | os.PathLike, fps: float = 4.0) -> Path:
    """MP4 at ``path`` when PyAV can encode one, else a GIF next to it (``.gif`` suffix). Returns the file."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    path = Path(path)
    if path.suffix.lower() == ".gif":
        return write_gif(frames, path, fps)
    try:
        return write_mp4(frames, path.with_suffix(".mp4"), fps)
    except (ImportError, RuntimeError):
        return write_gif(frames, path.with_suffix(".gif"), fps)
