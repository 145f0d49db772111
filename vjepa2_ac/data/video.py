"""Video files (PyAV): frame count / rate, decode by frame index or timestamp, and THE video writer (MP4 with a
GIF fallback, fractional frame rates, written atomically).

    write_video(frames, "episode.mp4", fps=2.5)     # frames uint8 [T, H, W, 3]; returns the path written
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vjepa2_ac.atomic import atomic_path


def video_info(path: str | os.PathLike) -> tuple[int, float]:
    """(number of frames, average frame rate) of the first video stream; counts packets when the header has no
    frame count."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if rate is None:
            raise ValueError(f"video {path} has no frame rate")
        num = stream.frames
        if not num:
            num = sum(1 for p in container.demux(stream) if p.size)
        return int(num), float(rate)


def decode_frames(path: str | os.PathLike, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """uint8 [k, H, W, 3] RGB frames at frame ``indices`` (presentation order), decoding from the start up to the
    last index requested."""
    import av

    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        raise ValueError("indices must not be empty")
    if idx.min() < 0:
        raise IndexError(f"frame indices must be >= 0, got {idx.min()}")
    wanted = set(idx.tolist())
    last = int(idx.max())
    got: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    if len(got) != len(wanted):
        raise IndexError(f"video {path} has fewer than {last + 1} frames (decoded {i + 1})")
    return np.stack([got[i] for i in idx.tolist()])


def decode_frames_at(path: str | os.PathLike, timestamps: Sequence[float] | np.ndarray,
                     tolerance_s: float) -> np.ndarray:
    """uint8 [k, H, W, 3] RGB frames closest to ``timestamps`` (seconds from the start of the file).

    Seeks to the key frame before the first timestamp, so only a short stretch of a long multi-episode file is
    decoded. Raises ``ValueError`` if a timestamp has no frame within ``tolerance_s``.
    """
    import av

    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.size == 0:
        raise ValueError("timestamps must not be empty")
    times: list[float] = []
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = max(float(ts.min()) - tolerance_s, 0.0)
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * stream.time_base)
            if t < ts.min() - tolerance_s:
                continue
            times.append(t)
            frames.append(frame.to_ndarray(format="rgb24"))
            if t >= ts.max():
                break
    if not frames:
        raise ValueError(f"video {path}: no frame near t={ts.min():.4f}s")
    times_arr = np.asarray(times)
    nearest = np.abs(times_arr[None, :] - ts[:, None]).argmin(axis=1)
    err = np.abs(times_arr[nearest] - ts)
    if (err > tolerance_s).any():
        bad = int(err.argmax())
        raise ValueError(f"video {path}: no frame within {tolerance_s}s of t={ts[bad]:.4f}s "
                         f"(closest {times_arr[nearest[bad]]:.4f}s)")
    return np.stack([frames[j] for j in nearest.tolist()])


MP4_CODECS = ("libx264", "h264", "mpeg4")


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be uint8 [T >= 1, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float = 4.0, *, codec: str | None = None,
              options: dict[str, str] | None = None) -> Path:
    """MP4 (yuv420p) via PyAV with ``codec``, or the first of :data:`MP4_CODECS` this FFmpeg build has (raises
    ``RuntimeError`` if none). ``fps`` may be fractional (stored exactly as a rational rate, e.g. 2.5 = 5/2); odd
    H / W are padded by repeating the last row / column; ``options`` go to the encoder (``{"crf": "10"}``)."""
    import fractions

    import av

    frames = _check_frames(frames)
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    rate = fractions.Fraction(fps).limit_denominator(1001)
    path, errors = Path(path), []
    for name in (codec,) if codec is not None else MP4_CODECS:
        try:
            with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), mode="w") as container:
                stream = container.add_stream(name, rate=rate)
                stream.width, stream.height = frames.shape[2], frames.shape[1]
                stream.pix_fmt = "yuv420p"
                if options:
                    stream.options = dict(options)
                for frame in frames:
                    for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            return path
        except Exception as err:  # codec missing in this FFmpeg build: try the next one
            errors.append(f"{name}: {type(err).__name__}: {err}")
    raise RuntimeError("no MP4 encoder available in PyAV (" + "; ".join(errors) + ")")


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: float = 4.0) -> Path:
    """Animated GIF (Pillow), looping; frame durations are whole milliseconds."""
    from PIL import Image

    frames = _check_frames(frames)
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path, suffix=".gif") as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(round(1000 / fps)), loop=0)
    return Path(path)


def write_video(frames: np.ndarray, path: str | os.PathLike, fps: float = 4.0, *, codec: str | None = None,
                options: dict[str, str] | None = None) -> Path:
    """uint8 ``[T, H, W, 3]`` frames -> an MP4 at ``path`` (see :func:`write_mp4`), or a GIF when ``path`` ends in
    ``.gif`` or, without an explicit ``codec``, when PyAV has no MP4 encoder (``.gif`` suffix). Returns the file.
    Written to a temp file and renamed, so a crash never leaves half a video."""
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not fps > 0:
        raise ValueError(f"fps must be a number > 0, got {fps!r}")
    path = Path(path)
    if path.suffix.lower() == ".gif":
        return write_gif(frames, path, fps)
    if codec is not None:
        return write_mp4(frames, path, fps, codec=codec, options=options)
    try:
        return write_mp4(frames, path.with_suffix(".mp4"), fps, options=options)
    except (ImportError, RuntimeError):
        return write_gif(frames, path.with_suffix(".gif"), fps)
