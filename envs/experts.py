"""Scripted experts for every Franka task (ground-truth state machines, used for tests and data collection)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from envs.franka_env import LIFT_HEIGHT

APPROACH_HEIGHT = 0.10  # pre-grasp / pre-place height above the grasp point (m)
# Near misses (``miss`` > 0): what a missed attempt does, and how many an episode may have before a clean one.
MISS_KINDS = ("beside", "above", "drop")
MISS_BESIDE = (0.03, 0.06)  # m: the fingers close this far beside the grasp point (any horizontal direction)
MISS_ABOVE = (0.05, 0.08)  # m: the fingers close this far above it (less still pinches a 4 cm cube)
MISS_DROP_AFTER = (1, 4)  # the object is let go after this many steps of lift / carry (inclusive)
MAX_MISSES = 2


class ScriptedExpert:
    """``expert(obs) -> action [7]`` (float32, DROID delta convention) for the env it was built on.

    It reads simulator ground truth through the env's public getters (object pose, goal, commanded pose), so
    the ``obs`` argument is only accepted for a policy-like signature. ``noise`` is the std (m) of Gaussian noise
    added to the translation part of every action (``seed`` seeds it). A new episode (``env.reset``) is detected
    automatically.

    ``miss`` is the probability that a grasp attempt (grasp and pick-and-place) is a near miss, so that the data
    shows what the gripper does *near* the object: ``"beside"`` closes U(3, 6) cm beside the grasp point (the
    descent may push the object; along the closing axis the fingers can still catch it), ``"above"`` closes
    U(5, 8) cm above it, ``"drop"`` grasps and lets go after 1-4 steps of lift or carry; each kind equally likely.
    The expert notices the empty gripper on the way up and starts over (re-opening on the way back to the object).
    At most ``MAX_MISSES`` (2) attempts of an episode miss; the next one is clean. ``miss=0`` gives the same
    actions as before the option existed.
    """

    def __init__(self, env, noise: float = 0.0, seed: int | None = None, tolerance: float = 0.012,
                 miss: float = 0.0):
        self.env = env.unwrapped
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        if not 0.0 <= miss <= 1.0:  # also rejects NaN
            raise ValueError(f"miss must be a probability in [0, 1], got {miss}")
        self.noise, self.tolerance, self.miss = float(noise), float(tolerance), float(miss)
        self.rng = np.random.default_rng(seed)
        self._episode = None
        self.reset()

    def reset(self) -> None:
        self.phase, self._count = 0, 0
        self.misses = 0  # near misses made in this episode
        self._lifting = 0  # steps of the current attempt since the lift began
        self.attempt: tuple[str, np.ndarray, int] | None = None  # (kind, grasp offset [3] (m), drop after) or None

    def _new_attempt(self) -> tuple[str, np.ndarray, int]:
        """The next grasp attempt: ``("clean", 0, 0)`` or a near miss drawn from ``self.rng``."""
        if self.miss == 0.0 or self.misses >= MAX_MISSES or self.rng.random() >= self.miss:
            return "clean", np.zeros(3), 0
        self.misses += 1
        kind = MISS_KINDS[int(self.rng.integers(len(MISS_KINDS)))]
        if kind == "beside":
            angle, r = self.rng.uniform(0.0, 2 * np.pi), self.rng.uniform(*MISS_BESIDE)
            return kind, np.array([r * np.cos(angle), r * np.sin(angle), 0.0]), 0
        if kind == "above":
            return kind, np.array([0.0, 0.0, self.rng.uniform(*MISS_ABOVE)]), 0
        return kind, np.zeros(3), int(self.rng.integers(MISS_DROP_AFTER[0], MISS_DROP_AFTER[1] + 1))

    # ------------------------------------------------------------------------------------------------ helpers
    def _move(self, target_pos, target_mat, dg: float) -> np.ndarray:
        e = self.env
        cmd = e.get_commanded_state()
        cmd_mat = Rotation.from_euler("xyz", cmd[3:6]).as_matrix()
        t, r = e.cfg.max_translation, e.cfg.max_rotation
        dpos = np.clip(np.asarray(target_pos) - cmd[:3], -t, t)
        drot = np.clip(Rotation.from_matrix(target_mat @ cmd_mat.T).as_euler("xyz"), -r, r)
        if self.noise > 0:
            dpos = dpos + self.rng.normal(0.0, self.noise, 3)
        return np.concatenate([dpos, drot, [dg]]).astype(np.float32)

    def _near(self, target_pos, tol: float | None = None) -> bool:
        return bool(np.linalg.norm(self.env.get_ee_pose()[0] - np.asarray(target_pos)) < (tol or self.tolerance))

    def _grasp_frame(self) -> tuple[np.ndarray, np.ndarray]:
        e = self.env
        obj_pos, obj_quat = e.get_object_pose()
        return e._pinch_for_object(obj_pos, obj_quat), e._grasp_mat(obj_quat)

    # ------------------------------------------------------------------------------------------------ policy
    def __call__(self, obs=None) -> np.ndarray:
        e = self.env
        if e.episode_id != self._episode:
            self._episode = e.episode_id
            self.reset()
        task = e.cfg.task
        if task == "reach":
            return self._move(e.goal["position"], e._home_mat, 0.0)
        if task == "reach-with-object":
            ee_pos, ee_mat = e.get_ee_pose()
            offset = ee_pos - e.get_object_pose()[0]
            return self._move(np.asarray(e.goal["position"]) + offset, ee_mat, 1.0)
        return self._pick(place=task == "pick-place")

    def _pick(self, place: bool) -> np.ndarray:
        e = self.env
        grasp_pos, grasp_mat = self._grasp_frame()
        if 3 <= self.phase <= 5 and not e.is_grasping() and self._count > 1:
            self.phase, self._count, self.attempt = 0, 0, None  # dropped or missed it: start over
        if self.attempt is None:
            self.attempt = self._new_attempt()
        kind, offset, drop_after = self.attempt
        grasp_pos = grasp_pos + offset
        self._count += 1
        if kind == "drop" and 3 <= self.phase <= 5 and self._lifting >= drop_after:
            return self._move(*e.get_ee_pose(), -1.0)  # let go where it is
        self._lifting = self._lifting + 1 if self.phase >= 3 else 0
        if self.phase == 0:  # above the object, gripper open, yaw aligned
            target = grasp_pos + [0.0, 0.0, APPROACH_HEIGHT]
            if self._near(target, 0.02):
                self.phase, self._count = 1, 0
            return self._move(target, grasp_mat, -1.0)
        if self.phase == 1:  # straight down to the grasp point
            if self._near(grasp_pos, 0.008) or self._count > 8:
                self.phase, self._count = 2, 0
            return self._move(grasp_pos, grasp_mat, -1.0)
        if self.phase == 2:  # close
            if self._count >= 3:
                self.phase, self._count = 3, 0
            return self._move(grasp_pos, grasp_mat, 1.0)
        ee_pos, ee_mat = e.get_ee_pose()
        if not place:  # grasp task: lift and hold
            lift = e.goal["configs"][-1][0]
            return self._move(lift, grasp_mat if self.phase == 3 else ee_mat, 1.0)
        place_pinch, *_, place_quat = e.goal["configs"][-1]
        place_mat = e._grasp_mat(place_quat)  # the expert's own grasp yaw, whatever the goal images show
        over = place_pinch + [0.0, 0.0, LIFT_HEIGHT]
        if self.phase == 3:  # lift
            target = np.array([ee_pos[0], ee_pos[1], over[2]])
            if ee_pos[2] > over[2] - 0.03:
                self.phase, self._count = 4, 0
            return self._move(target, ee_mat, 1.0)
        if self.phase == 4:  # carry over the target
            if self._near(over, 0.015):
                self.phase, self._count = 5, 0
            return self._move(over, ee_mat, 1.0)
        if self.phase == 5:  # lower onto the table
            target = place_pinch + [0.0, 0.0, 0.004]
            if self._near(target, 0.008) or self._count > 8:
                self.phase, self._count = 6, 0
            return self._move(target, ee_mat, 1.0)
        if self.phase == 6:  # open
            if self._count >= 2:
                self.phase, self._count = 7, 0
            return self._move(ee_pos, ee_mat, -1.0)
        return self._move(place_pinch, place_mat, -1.0)  # released: hold still (the "placed" sub-goal)


def scripted_expert(env, noise: float = 0.0, seed: int | None = None, miss: float = 0.0) -> ScriptedExpert:
    """Scripted expert policy for ``env`` (any registered Franka task/backend): ``action = expert(obs)``;
    ``miss``: probability of a near-miss grasp attempt (:class:`ScriptedExpert`)."""
    return ScriptedExpert(env, noise=noise, seed=seed, miss=miss)
