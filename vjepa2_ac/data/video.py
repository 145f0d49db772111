"""Small PyAV helpers: frame count / rate, decode by frame index, decode by timestamp."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


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


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, codec: str = "libx264") -> None:
    """Write uint8 [T, H, W, 3] frames as an mp4 (yuv420p; H and W must be even). Used by tests and tools."""
    import fractions

    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fractions.Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "10", "g": "8"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
