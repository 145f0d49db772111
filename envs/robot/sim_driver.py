"""``SimDriver``: the simulated Franka (``envs.FrankaEnv``, MuJoCo by default) behind the ``RobotDriver`` and
``Camera`` interfaces, so the real-robot loop, the safety layer and the CLI run unchanged without hardware.

``SimDriver()`` builds the default scene (``vjepa2ac/FrankaReach-v0``, MuJoCo, 256x256 ``exterior_1`` camera).
``move(delta)`` is one env step (blocking: the env's control period of physics); ``read()`` returns the frame
rendered after the last step; ``goal_image`` / ``goal_images`` are the task's goal
renders from the last reset (``goal_images``: by name, as ``info["goals"]``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from envs.robot.driver import CameraIntrinsics, DriverBase, Frame, check_frame, now
from envs.robot.poses import rotation_angle

logger = logging.getLogger(__name__)


class SimDriver(DriverBase):
    """``RobotDriver`` and ``Camera`` over a Gymnasium Franka env.

    Its renderer's OpenGL context belongs to the creating thread, so ``call_from_owner_thread`` tells
    ``SafeDriver`` to call it in place (deadlines are then checked when calls return).

    Args:
        task: a task name of ``envs.tasks.TASKS`` (``"reach"``, ``"pick-place"`` ...; ignored with ``env``).
        seed: reset seed (object / goal placement).
        env: an existing env (e.g. from ``gymnasium.make``) instead of building one.
        **env_kwargs: ``gymnasium.make`` options (``backend``, ``image_size``, ``camera``, ``object``, ``msaa`` ...).
    """

    call_from_owner_thread = True

    def __init__(self, task: str = "reach", *, seed: int | None = 0, env: Any = None, **env_kwargs: Any) -> None:
        if env is None:
            import gymnasium

            from envs.tasks import task_spec  # importing envs registers the ids

            env_id = task_spec(task).env_id
            env_kwargs.setdefault("backend", "mujoco")
            env = gymnasium.make(env_id, render_mode="rgb_array", **env_kwargs)
        self.env = env
        self.seed = seed
        self.stop_count = 0
        self.steps = 0
        self.last_info: dict = {}
        self._pending: Frame | None = None
        self.reset(seed)
        self.home_state = self.get_state()

    # ------------------------------------------------------------------ RobotDriver
    def reset(self, seed: int | None = None) -> dict:
        """Reset the scene (new object / goal for ``seed``); returns the env's info dict."""
        obs, info = self.env.reset(seed=seed)
        self.last_info = info
        self._pending = Frame(check_frame(obs["pixels"], "SimDriver pixels"), now())
        return info

    def get_state(self) -> np.ndarray:
        return np.asarray(self.env.unwrapped.get_ee_state(), dtype=np.float64)

    def move(self, delta: np.ndarray, blocking: bool = True, timeout: float | None = None) -> None:
        """One env step with ``delta [7]`` (always blocking: the step returns when its control period is over)."""
        obs, _, _, _, info = self.env.step(np.asarray(delta, dtype=np.float64))
        self.steps += 1
        self.last_info = info
        if info.get("action_clipped"):
            logger.warning("SimDriver: the env clipped the action %s to %s", np.round(delta, 4).tolist(),
                           np.round(info.get("applied_action"), 4).tolist())
        self._pending = Frame(check_frame(obs["pixels"], "SimDriver pixels"), now())

    def home(self, tolerance: float = 0.005, max_steps: int = 30) -> None:
        """Servo back to the pose after the first reset (gripper open), in env-sized steps."""
        space = self.env.action_space
        for _ in range(max_steps):
            state = self.get_state()
            if np.linalg.norm(state[:3] - self.home_state[:3]) < tolerance and \
                    rotation_angle(state[3:6], self.home_state[3:6]) < 0.02 and state[6] < 0.05:
                return
            delta = _delta_between(state, self.home_state)
            delta[6] = -1.0
            self.move(np.clip(delta, space.low, space.high))
        logger.warning("SimDriver.home(): not within %.3f m of home after %d steps", tolerance, max_steps)

    def stop(self) -> None:
        """Nothing moves between env steps, so there is nothing to halt; counted for tests."""
        self.stop_count += 1

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ Camera
    @property
    def intrinsics(self) -> CameraIntrinsics:
        """Pinhole intrinsics of the rendered camera; ``RuntimeError`` for a composite view (``dual``: two cameras
        stacked in one image have no single pinhole model)."""
        from envs.scene_layout import COMPOSITE_CAMERAS, composite_parts

        cfg = self.env.unwrapped.cfg
        if cfg.camera in COMPOSITE_CAMERAS:
            raise RuntimeError(f"the composite view {cfg.camera!r} ({', '.join(composite_parts(cfg.camera))}) "
                               "has no single pinhole intrinsics")
        h, w = cfg.image_size
        fovy = 50.0
        model = getattr(self.env.unwrapped.sim, "model", None)
        if model is not None and hasattr(model, "cam_fovy"):
            name = "handcam_rgb" if cfg.camera == "wrist" else cfg.camera
            fovy = float(model.cam_fovy[model.camera(name).id])
        return CameraIntrinsics.from_fovy(w, h, fovy)

    def read(self) -> Frame:
        """The frame rendered after the last step (or reset). Simulated time stands still between steps, so
        that frame shows the current scene and is stamped with the time of the read."""
        if self._pending is None:
            self._pending = Frame(check_frame(self.env.unwrapped.render(), "SimDriver render"), now())
        return Frame(self._pending.image, now())

    def render(self) -> np.ndarray:
        return self.read().image

    # ------------------------------------------------------------------ goals
    @property
    def goal_image(self) -> np.ndarray | None:
        """uint8 ``[H, W, 3]`` goal render of the current episode (``None`` if the env renders no goals)."""
        return self.last_info.get("goal_pixels")

    @property
    def goal_images(self) -> dict[str, np.ndarray]:
        """The task's goal images by name (``"final"`` is the task's goal; see ``envs.tasks``)."""
        return dict(self.last_info.get("goals", {}))


def _delta_between(state: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Delta ``d`` with ``state ⊕ d = target`` (rotation ``R_t · R_s^T``)."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("xyz", target[3:6]) * Rotation.from_euler("xyz", state[3:6]).inv()
    return np.concatenate([target[:3] - state[:3], rot.as_euler("xyz"), [target[6] - state[6]]])
