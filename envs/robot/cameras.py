"""Cameras: ``RealSenseCamera`` (pyrealsense2), ``OpenCVCamera`` (cv2) and ``SimCamera`` (anything that renders).

Each returns ``Frame(image uint8 [H, W, 3] RGB, timestamp)`` from ``read()``; the timestamp is
``time.monotonic()`` when the frame *first* arrived, so a camera that keeps returning the same frame is caught
as stale by ``SafeDriver.read_frame()``. The optional packages are imported in ``connect()`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from envs.robot.driver import CameraIntrinsics, DriverBase, Frame, check_frame, import_optional, now


class RealSenseCamera(DriverBase):
    """Colour stream of an Intel RealSense (``pip install 'vjepa2-ac[realsense]'``).

    Args:
        serial: device serial number (``None``: the first device).
        width, height, fps: colour stream mode.
        timeout_ms: ``wait_for_frames`` timeout; a camera that stops delivering raises after it.
    """

    def __init__(self, serial: str | None = None, width: int = 640, height: int = 480, fps: int = 30,
                 timeout_ms: int = 1000) -> None:
        self.serial, self.width, self.height, self.fps, self.timeout_ms = serial, width, height, fps, timeout_ms
        self._pipeline: Any = None
        self._intrinsics: CameraIntrinsics | None = None
        self._last: tuple[int, float] | None = None  # (frame number, arrival time)

    def connect(self) -> None:
        rs = import_optional("pyrealsense2", "realsense", "pyrealsense2")
        pipeline, config = rs.pipeline(), rs.config()
        if self.serial is not None:
            config.enable_device(self.serial)
        config.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
        profile = pipeline.start(config)
        intr = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
        self._intrinsics = CameraIntrinsics(intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy)
        self._pipeline = pipeline

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None

    @property
    def intrinsics(self) -> CameraIntrinsics:
        if self._intrinsics is None:
            raise RuntimeError("RealSenseCamera is not connected: call connect() first")
        return self._intrinsics

    def read(self) -> Frame:
        if self._pipeline is None:
            raise RuntimeError("RealSenseCamera is not connected: call connect() first")
        frames = self._pipeline.wait_for_frames(self.timeout_ms)
        color = frames.get_color_frame()
        image = np.array(color.get_data(), dtype=np.uint8, copy=True)
        number = int(color.get_frame_number())
        if self._last is None or self._last[0] != number:
            self._last = (number, now())
        return Frame(check_frame(image, "RealSense colour frame"), self._last[1])


class OpenCVCamera(DriverBase):
    """A V4L2/USB camera or a video file through OpenCV (``pip install 'vjepa2-ac[opencv]'``).

    OpenCV does not know the intrinsics: they are approximated from ``fovy_deg`` unless ``intrinsics`` is given.
    The capture buffer is set to one frame so ``read()`` does not return frames queued seconds ago.
    """

    def __init__(self, source: int | str = 0, width: int | None = None, height: int | None = None,
                 fps: int | None = None, fovy_deg: float = 60.0, intrinsics: CameraIntrinsics | None = None) -> None:
        self.source, self.width, self.height, self.fps = source, width, height, fps
        self.fovy_deg = fovy_deg
        self._intrinsics = intrinsics
        self._cap: Any = None
        self._cv2: Any = None

    def connect(self) -> None:
        cv2 = self._cv2 = import_optional("cv2", "opencv", "opencv-python-headless")
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            raise RuntimeError(f"OpenCVCamera: could not open source {self.source!r}")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                            (cv2.CAP_PROP_FPS, self.fps)):
            if value is not None:
                cap.set(prop, value)
        self._cap = cap
        if self._intrinsics is None:
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            self._intrinsics = CameraIntrinsics.from_fovy(w, h, self.fovy_deg)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    @property
    def intrinsics(self) -> CameraIntrinsics:
        if self._intrinsics is None:
            raise RuntimeError("OpenCVCamera is not connected: call connect() first")
        return self._intrinsics

    def read(self) -> Frame:
        if self._cap is None:
            raise RuntimeError("OpenCVCamera is not connected: call connect() first")
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise RuntimeError(f"OpenCVCamera: no frame from source {self.source!r} (disconnected or end of file)")
        image = np.ascontiguousarray(bgr[..., ::-1])  # BGR -> RGB
        return Frame(check_frame(image, "OpenCV frame"), now())


class SimCamera(DriverBase):
    """A camera over anything that renders: ``render() -> uint8 [H, W, 3]`` (a Gymnasium env with
    ``render_mode="rgb_array"``, a ``SimDriver``) or a plain callable.

    Args:
        source: object with ``render()`` or a zero-argument callable returning the image.
        intrinsics: pinhole intrinsics; default: taken from ``source.intrinsics`` if it has them.
    """

    def __init__(self, source: Any, intrinsics: CameraIntrinsics | None = None) -> None:
        render: Callable[[], np.ndarray] | None = getattr(source, "render", None)
        if render is None and callable(source):
            render = source
        if render is None:
            raise TypeError(f"source: expected an object with render() or a callable, got {type(source).__name__}")
        self._render = render
        self._intrinsics = intrinsics if intrinsics is not None else getattr(source, "intrinsics", None)

    @property
    def intrinsics(self) -> CameraIntrinsics:
        if self._intrinsics is None:
            raise RuntimeError("SimCamera: the source has no intrinsics; pass intrinsics=...")
        return self._intrinsics

    def read(self) -> Frame:
        return Frame(check_frame(np.asarray(self._render()), "SimCamera image"), now())
