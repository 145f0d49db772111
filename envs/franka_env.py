"""Gymnasium Franka tabletop tasks in the DROID action/state convention (MuJoCo or PyBullet backend).

Action ``[dx, dy, dz, droll, dpitch, dyaw, dg]`` per control step (default 4 Hz): the target pose is integrated
from the last *commanded* pose (``xyz' = xyz + dxyz``, ``R' = R(d_euler_xyz) · R``, world-frame extrinsic xyz
Euler deltas), held on a leash around the measured pose and inside a workspace box; ``g' = clip(g + dg, 0, 1)``
is the commanded gripper closedness (0 open). Out-of-range action components are clipped to the action space and
reported in ``info["action_clipped"]``; wrong shapes and non-finite values raise ``ValueError``.

State ``agent_pos = [x, y, z, roll, pitch, yaw, g]`` (float32): tool centre point ("pinch") in the robot base
frame, extrinsic xyz Euler angles, measured gripper closedness.

Info (every ``reset`` and ``step``): ``is_success``, ``grasped``; the goal images by name, ``goals`` (uint8
``[H, W, 3]``; names from ``envs.tasks``: e.g. ``grasped``, ``lifted``, ``placed``, and ``final``, the task's own
goal) with their states ``goal_states`` (float32 ``[7]``), and ``goal_pixels`` / ``goal_state`` (the final one);
``action_clipped`` and ``applied_action``.

Factors of variation (``factors=[...]``, names of ``envs.factors.FACTORS``; levels in :mod:`envs.factors`): one
appearance per reset, drawn from its own stream, so the task (object pose, goal) is that of the same seed without
factors; the observations and the goal images show it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from scipy.spatial.transform import Rotation

from envs.factors import Appearance, check_factors, sample_appearance
from envs.scene_layout import CAMERAS, COMPOSITE_CAMERAS
from envs.tasks import FINAL, task_spec

BACKENDS = ("mujoco", "pybullet")
LIFT_HEIGHT = 0.12  # grasp goal / "lifted over target" sub-goal: object raised this much above its rest height
REACH_GOAL_BOX = ((0.35, -0.22, 0.10), (0.65, 0.22, 0.38))  # reach goals are drawn uniformly in this (low, high) box
APPEARANCE_STREAM = 0xFAC7  # mixed into the seed of a reset's appearance generator (envs.factors)


@dataclass
class FrankaEnvConfig:
    """All knobs of :class:`FrankaEnv` (pass any of them as ``gymnasium.make`` kwargs).

    task: a name of ``envs.tasks.TASKS``: "reach" | "grasp" | "reach-with-object" | "pick-place".
    object: "cube" | "cup" (reach also "none").
    control_hz: control rate (DROID: ~4 Hz; MuJoCo physics runs at 500 Hz underneath).
    image_size: (height, width) of rendered images.  camera: "exterior_1" | "exterior_2" | "workspace" | "side" | "top" | "wrist",
        or "dual" (side view over top view, each half the height), or "dual_close" (the same viewpoints zoomed onto
        the task volume, each a square view squeezed into its half), or "dual_wrist" (side, top and wrist views,
        each a third of the height), or "dual_wrist_large" (the same, the wrist view half the height), or
        "dual_wrist_tiled" (side and top side by side in the upper half, the wrist view in the lower half).
    wrist_camera: add ``obs["wrist_pixels"]``.  goal_keys: add GoalEnv keys observation/achieved_goal/desired_goal.
    max_translation / max_rotation: per-step limits of |dxyz| (m, per axis) and |d_euler| (rad, per axis).
    leash / leash_rotation: the integrated target stays within this distance (m / rad) of the measured pose.
    workspace_low / workspace_high: box (m) the commanded tool centre point is clipped to.
    randomize_object / randomize_goal: sample object pose / goal at reset (else fixed nominal ones).
    factors: names of ``envs.factors.FACTORS`` ("lighting", "table", "object_color", "camera", "distractors")
        applied at every reset, at the levels fixed in ``envs/factors.py`` (a list is stored as a tuple). The task
        (object pose, goal) of a seed is the same with and without them; ``()`` is the nominal scene.
    success_threshold: distance (m) for reach / place success.  render_goals: render goal images at reset.
    goal_gripper_yaw: the gripper's yaw in the grasp and pick-and-place goal images: "object" turns it to the
        object's faces (as the scripted expert grasps), "home" keeps the home orientation (all an xyz-only planner
        can reach).
    grasp_goal_gripper: the gripper in the first ("grasped") goal image of grasp and pick-and-place: "closed" on
        the object, or "open" around it (the pre-grasp pose).
    pregrasp_height: 0 (off) or the height (m) above the grasp pose of an extra first sub-goal image for grasp and
        pick-and-place: the open gripper over the object, where the scripted expert starts its vertical descent
        (``envs.experts.APPROACH_HEIGHT``, 0.10). A planner that moves there first descends onto the object.
    terminate_on_success: end the episode when ``is_success`` first becomes true.
    msaa / shadows: MuJoCo render quality (MSAA 4 costs ~2x per frame on CPU rendering; renders larger than
        ``max(image_size)`` (min 256) are not possible).
    """

    task: str = "reach"
    object: str = "cube"
    backend: str = "mujoco"
    control_hz: float = 4.0
    image_size: tuple[int, int] = (256, 256)
    camera: str = "exterior_1"
    wrist_camera: bool = False
    goal_keys: bool = False
    max_translation: float = 0.075
    max_rotation: float = 0.25
    leash: float = 0.10
    leash_rotation: float = 0.5
    workspace_low: tuple[float, float, float] = (0.25, -0.45, 0.012)
    workspace_high: tuple[float, float, float] = (0.80, 0.45, 0.60)
    randomize_object: bool = True
    randomize_goal: bool = True
    factors: tuple[str, ...] = ()
    success_threshold: float = 0.05
    render_goals: bool = True
    goal_gripper_yaw: str = "object"
    grasp_goal_gripper: str = "closed"
    pregrasp_height: float = 0.0
    terminate_on_success: bool = False
    msaa: int = 0
    shadows: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.factors, list):
            self.factors = tuple(self.factors)

    def validate(self) -> None:
        spec = task_spec(self.task)  # ValueError naming the valid task names
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        allowed = spec.objects
        if self.object not in allowed:
            raise ValueError(f"object must be one of {allowed} for task {self.task!r}, got {self.object!r}")
        if self.camera not in (*CAMERAS, *COMPOSITE_CAMERAS, "wrist"):
            raise ValueError(f"camera must be one of {[*CAMERAS, *COMPOSITE_CAMERAS, 'wrist']}, got {self.camera!r}")
        h, w = self.image_size
        if not (16 <= h <= 1024 and 16 <= w <= 1024):
            raise ValueError(f"image_size must be (height, width) within 16..1024, got {self.image_size}")
        if not (0 < self.control_hz <= 100):
            raise ValueError(f"control_hz must be in (0, 100], got {self.control_hz}")
        if self.max_translation <= 0 or self.max_rotation <= 0:
            raise ValueError("max_translation and max_rotation must be > 0")
        if self.goal_gripper_yaw not in ("object", "home"):
            raise ValueError(f"goal_gripper_yaw must be 'object' or 'home', got {self.goal_gripper_yaw!r}")
        if self.grasp_goal_gripper not in ("closed", "open"):
            raise ValueError(f"grasp_goal_gripper must be 'closed' or 'open', got {self.grasp_goal_gripper!r}")
        h = self.pregrasp_height
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not 0.0 <= h <= 0.3:  # also rejects NaN
            raise ValueError(f"pregrasp_height must be in [0, 0.3] m (0 = no pre-grasp sub-goal), got {self.pregrasp_height!r}")
        check_factors(self.factors)  # ValueError naming `factors`, the unknown and the valid names


def _make_sim(cfg: FrankaEnvConfig):
    size = max(cfg.image_size)
    if cfg.backend == "mujoco":
        from envs.mujoco_sim import MujocoSim

        return MujocoSim(object=cfg.object, control_hz=cfg.control_hz, msaa=cfg.msaa, shadows=cfg.shadows,
                         max_image_size=max(256, size), factors=cfg.factors)
    from envs.pybullet_sim import BulletSim

    return BulletSim(object=cfg.object, control_hz=cfg.control_hz, shadows=cfg.shadows)


def _stream_words(state) -> list[int]:
    """The integers of a bit generator's state (dict / array / int), in order."""
    if isinstance(state, dict):
        return [w for v in state.values() for w in _stream_words(v)]
    if isinstance(state, np.ndarray):
        return [int(x) for x in state.ravel()]
    if isinstance(state, (int, np.integer)):
        return [int(state) & (2**128 - 1)]  # SeedSequence takes non-negative ints
    return []


def appearance_rng(rng: np.random.Generator) -> np.random.Generator:
    """The generator of a reset's appearance: seeded from ``rng``'s current state without drawing from it, so the
    task's own samples are those of the env without factors."""
    return np.random.default_rng([*_stream_words(rng.bit_generator.state), APPEARANCE_STREAM])


def _yaw_aligned(mat: np.ndarray, object_quat: np.ndarray, symmetry: float) -> np.ndarray:
    """Rotate a gripper-down orientation about world z so the closing axis meets the object faces."""
    if symmetry <= 0:
        return mat
    obj_yaw = Rotation.from_quat(object_quat, scalar_first=True).as_euler("xyz")[2]
    grip_yaw = np.arctan2(mat[1, 1], mat[0, 1])  # direction of the closing (y) axis
    delta = (obj_yaw + np.pi / 2 - grip_yaw + symmetry / 2) % symmetry - symmetry / 2
    return Rotation.from_euler("z", delta).as_matrix() @ mat


class FrankaEnv(gym.Env):
    """Franka Panda tabletop task. See the module docstring for the action/state convention.

    Public getters used by drivers, data collection and planners: :meth:`get_ee_state` (DROID 7-vector),
    :meth:`get_ee_pose`, :meth:`get_object_pose`, :meth:`render` (``camera=`` any camera),
    :meth:`render_configuration` (image of an arbitrary goal configuration), :attr:`goal` (task goal dict),
    :attr:`appearance` (the :class:`envs.factors.Appearance` of this episode; ``None`` without factors).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None = "rgb_array", **kwargs):
        names = {f.name for f in fields(FrankaEnvConfig)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"unknown FrankaEnv option(s) {unknown}; valid: {sorted(names)}")
        if "image_size" in kwargs:
            size = kwargs["image_size"]
            sizes = (size, size) if np.isscalar(size) else tuple(size)
            if len(sizes) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes):
                raise ValueError(f"image_size must be an int or (height, width) ints, got {size!r}")
            kwargs["image_size"] = tuple(int(s) for s in sizes)
        self.cfg = cfg = FrankaEnvConfig(**kwargs)
        cfg.validate()
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": cfg.control_hz}
        self.sim = _make_sim(cfg)
        h, w = cfg.image_size
        t, r = cfg.max_translation, cfg.max_rotation
        self.action_space = spaces.Box(np.array([-t, -t, -t, -r, -r, -r, -1], np.float32),
                                       np.array([t, t, t, r, r, r, 1], np.float32), dtype=np.float32)
        obs = {
            "pixels": spaces.Box(0, 255, (h, w, 3), np.uint8),
            "agent_pos": spaces.Box(np.array([-2, -2, -2, -4, -4, -4, 0], np.float32),
                                    np.array([2, 2, 2, 4, 4, 4, 1], np.float32), dtype=np.float32),
        }
        if cfg.wrist_camera:
            obs["wrist_pixels"] = spaces.Box(0, 255, (h, w, 3), np.uint8)
        if cfg.goal_keys:
            obs["observation"] = spaces.Box(-10, 10, (14,), np.float32)
            obs["achieved_goal"] = spaces.Box(-10, 10, (3,), np.float32)
            obs["desired_goal"] = spaces.Box(-10, 10, (3,), np.float32)
        self.observation_space = spaces.Dict(obs)
        self._ws_low, self._ws_high = np.asarray(cfg.workspace_low), np.asarray(cfg.workspace_high)
        self.goal: dict = {}
        self.appearance: Appearance | None = None
        self.episode_id = -1
        self.sim.reset(np.array([0.5, 0.0, self.sim.object_rest_z]), np.array([1.0, 0, 0, 0]))
        self._home_pos, self._home_mat = self.sim.ee_pose()

    # ----------------------------------------------------------------------------------------------- getters
    def get_ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured tool-centre-point position [3] (m, base frame) and rotation matrix [3, 3]."""
        return self.sim.ee_pose()

    def get_ee_state(self) -> np.ndarray:
        """DROID state ``[x, y, z, roll, pitch, yaw, g]`` (float64): extrinsic xyz Euler, measured closedness."""
        pos, mat = self.sim.ee_pose()
        euler = Rotation.from_matrix(mat).as_euler("xyz")
        return np.concatenate([pos, euler, [self.sim.gripper_closedness()]])

    def get_commanded_state(self) -> np.ndarray:
        """The integrated commanded target ``[x, y, z, roll, pitch, yaw, g]`` the controller is tracking."""
        return np.concatenate([self._cmd_pos, Rotation.from_matrix(self._cmd_mat).as_euler("xyz"), [self._cmd_g]])

    def get_object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Object origin position [3] and quaternion (w, x, y, z) [4] (NaN position when there is no object)."""
        return self.sim.object_pose()

    def is_grasping(self) -> bool:
        """Both fingers touch the object (simulator ground truth)."""
        return self.sim.object_grasped()

    def render(self, camera: str | None = None, image_size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 [H, W, 3] frame of the current state from ``camera`` (default: the observation camera)."""
        h, w = image_size or self.cfg.image_size
        return self.sim.render(camera or self.cfg.camera, h, w)

    def render_configuration(self, ee_pos, ee_mat=None, closedness: float = 0.0, object_pos=None,
                             object_quat=None, camera: str | None = None,
                             image_size: tuple[int, int] | None = None) -> np.ndarray:
        """Image of an arbitrary configuration: tool centre point at ``ee_pos`` [3] with rotation ``ee_mat``
        [3, 3] (default: the home, gripper-down orientation), gripper ``closedness`` in [0, 1], object at
        ``object_pos``/``object_quat`` (default: where it is now). The physics state is not touched."""
        h, w = image_size or self.cfg.image_size
        if object_pos is None:
            object_pos, object_quat = self.sim.object_pose()
        return self.sim.render_configuration(np.asarray(ee_pos, float),
                                             self._home_mat if ee_mat is None else np.asarray(ee_mat, float),
                                             float(closedness), object_pos, object_quat,
                                             camera or self.cfg.camera, h, w)

    # ----------------------------------------------------------------------------------------------- task setup
    def _sample_object(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        xy = np.array([0.5, 0.0])
        yaw = 0.0
        if self.cfg.randomize_object:
            xy = xy + rng.uniform([-0.08, -0.12], [0.08, 0.12])
            yaw = rng.uniform(-np.pi / 4, np.pi / 4)
        pos = np.array([xy[0], xy[1], self.sim.object_rest_z])
        return pos, Rotation.from_euler("z", yaw).as_quat(scalar_first=True)

    def _sample_point(self, rng, low, high, nominal, away_from=None, min_dist=0.0) -> np.ndarray:
        if not self.cfg.randomize_goal:
            return np.asarray(nominal, float)
        for _ in range(100):
            p = rng.uniform(low, high)
            if away_from is None or np.linalg.norm((p - away_from)[: len(p)]) >= min_dist:
                return p
        return p

    def _grasp_mat(self, object_quat) -> np.ndarray:
        symmetry = np.pi / 2 if self.cfg.object == "cube" else 0.0
        return _yaw_aligned(self._home_mat, object_quat, symmetry)

    def _goal_mat(self, object_quat) -> np.ndarray:
        """The gripper orientation of the grasp / pick-and-place goal images (``goal_gripper_yaw``)."""
        return self._grasp_mat(object_quat) if self.cfg.goal_gripper_yaw == "object" else self._home_mat

    @property
    def grasp_subgoal(self) -> int:
        """Index of the "grasped" sub-goal in ``goal["configs"]`` of grasp / pick-and-place: 1 after the pre-grasp
        sub-goal (``pregrasp_height > 0``), else 0."""
        return int(self.cfg.pregrasp_height > 0)

    def _pregrasp_configs(self, object_pos, object_quat, mat) -> list[tuple]:
        """``[]``, or the pre-grasp sub-goal config (open gripper ``pregrasp_height`` above the grasp pose)."""
        if self.cfg.pregrasp_height == 0.0:
            return []
        above = self._pinch_for_object(object_pos, object_quat) + [0.0, 0.0, self.cfg.pregrasp_height]
        return [(above, mat, 0.0, object_pos, object_quat)]

    def _pinch_for_object(self, object_pos, object_quat) -> np.ndarray:
        return np.asarray(object_pos) + Rotation.from_quat(object_quat, scalar_first=True).apply(
            self.sim.grasp_offset)

    def _sample_task(self, rng: np.random.Generator, options: dict) -> tuple:
        """The task's random draws (the only ones ``rng`` gives) and option overrides: object position and quaternion
        (``None`` without an object) and the goal (reach / reach-with-object: position; grasp: lifted object;
        pick-place: placed object position)."""
        cfg, sim = self.cfg, self.sim
        obj_pos, obj_quat = self._sample_object(rng) if sim.has_object else (None, None)
        if "object_pos" in options:
            obj_pos = np.asarray(options["object_pos"], float)
        if "object_quat" in options:
            obj_quat = np.asarray(options["object_quat"], float)
        rest = sim.object_rest_z
        if cfg.task == "reach":
            goal = self._sample_point(rng, *REACH_GOAL_BOX, [0.58, 0.14, 0.16],
                                      away_from=self._home_pos, min_dist=0.10)
            goal = np.asarray(options.get("goal", goal), float)
        elif cfg.task == "grasp":
            goal = obj_pos + [0.0, 0.0, LIFT_HEIGHT]
        elif cfg.task == "reach-with-object":
            goal = self._sample_point(rng, [0.38, -0.22, rest + 0.06], [0.65, 0.22, rest + 0.25],
                                      [0.58, 0.15, rest + 0.10], away_from=self._held_start(), min_dist=0.10)
            goal = np.asarray(options.get("goal", goal), float)
        else:  # pick_place
            target = self._sample_point(rng, [0.40, -0.18], [0.62, 0.18], [0.55, -0.12],
                                        away_from=obj_pos[:2], min_dist=0.12)
            target = np.asarray(options.get("goal", target), float)[:2]
            goal = np.array([target[0], target[1], rest])
        return obj_pos, obj_quat, goal

    def _held_start(self) -> np.ndarray:
        """Where reach-with-object starts the (held) object: under the gripper at home."""
        return self._home_pos - self.sim.grasp_offset

    def _keep_out_xy(self, obj_pos, goal) -> np.ndarray:
        """xy points [k, 2] distractors keep clear of: the gripper's home, the goal, the object's start."""
        points = [self._home_pos[:2], np.asarray(goal)[:2]]
        if self.sim.has_object:
            points.append((self._held_start() if self.cfg.task == "reach-with-object" else obj_pos)[:2])
        return np.array(points, float)

    def _setup_task(self, obj_pos, obj_quat, goal) -> None:
        """Put the simulator in the start state of the sampled task and build ``self.goal`` (configs, states)."""
        cfg, sim = self.cfg, self.sim
        width = 2 * sim.object_half_width
        hold_g = sim.closedness_for_gap(width) if sim.has_object else 1.0
        grasp_g = hold_g if cfg.grasp_goal_gripper == "closed" else 0.0  # the "grasped" goal image's gripper
        g = {"task": cfg.task, "hold_closedness": hold_g}
        if cfg.task == "reach":
            sim.reset(obj_pos if sim.has_object else None, obj_quat)
            g["position"] = goal
            g["configs"] = [(goal, self._home_mat, 0.0, obj_pos, obj_quat)]
        elif cfg.task == "grasp":
            sim.reset(obj_pos, obj_quat)
            lifted = goal
            g["position"] = lifted
            mat = self._goal_mat(obj_quat)
            g["configs"] = [
                *self._pregrasp_configs(obj_pos, obj_quat, mat),  # (option) open, over the object
                (self._pinch_for_object(obj_pos, obj_quat), mat, grasp_g, obj_pos, obj_quat),  # grasped, on the table
                (self._pinch_for_object(lifted, obj_quat), mat, hold_g, lifted, obj_quat),  # lifted: the goal
            ]
        elif cfg.task == "reach-with-object":
            held_quat = np.array([1.0, 0.0, 0.0, 0.0])  # held square to the (home-oriented) gripper
            sim.reset(obj_pos, obj_quat)
            sim.place(self._home_pos, self._home_mat, hold_g, self._held_start(), held_quat)
            sim.set_gripper_command(1.0)
            sim.settle(0.3)
            g["position"] = goal
            g["configs"] = [(self._pinch_for_object(goal, held_quat), self._home_mat, hold_g, goal, held_quat)]
        else:  # pick_place
            sim.reset(obj_pos, obj_quat)
            placed = goal
            over = placed + [0.0, 0.0, LIFT_HEIGHT]
            mat = self._goal_mat(obj_quat)
            g["position"] = placed
            g["configs"] = [
                *self._pregrasp_configs(obj_pos, obj_quat, mat),  # (option) open, over the object
                (self._pinch_for_object(obj_pos, obj_quat), mat, grasp_g, obj_pos, obj_quat),  # grasped
                (self._pinch_for_object(over, obj_quat), mat, hold_g, over, obj_quat),  # lifted over target
                (self._pinch_for_object(placed, obj_quat), mat, 0.0, placed, obj_quat),  # placed, released
            ]
        g["states"] = [np.concatenate([p, Rotation.from_matrix(m).as_euler("xyz"), [c]])
                       for p, m, c, *_ in g["configs"]]
        g["state"] = g["states"][-1]
        self.goal = g

    @property
    def goal_names(self) -> tuple[str, ...]:
        """Names of the goal images this env renders, in order (``info["goals"]`` adds ``"final"``, the last)."""
        return task_spec(self.cfg.task).goal_names(pregrasp=self.cfg.pregrasp_height > 0)

    def _render_goals(self) -> None:
        if not self.cfg.render_goals:
            self.goal["images"] = []
            self.goal["pixels"] = None
            return
        h, w = self.cfg.image_size
        imgs = [self.sim.render_configuration(p, m, c, op, oq, self.cfg.camera, h, w)
                for p, m, c, op, oq in self.goal["configs"]]
        self.goal["images"] = imgs
        self.goal["pixels"] = imgs[-1]

    # ----------------------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        cfg, sim, rng = self.cfg, self.sim, self.np_random
        self.episode_id += 1
        appearance_gen = appearance_rng(rng) if cfg.factors else None  # before the task draws; consumes nothing
        obj_pos, obj_quat, goal = self._sample_task(rng, options)
        if cfg.factors:  # applied before the start state is built and the goal images are rendered
            self.appearance = sample_appearance(cfg.factors, appearance_gen, self._keep_out_xy(obj_pos, goal))
            sim.set_appearance(self.appearance)
        # The goal images are rendered kinematically before any physics step of the episode.
        self._setup_task(obj_pos, obj_quat, goal)
        self._render_goals()
        self._cmd_pos, self._cmd_mat = sim.ee_pose()
        self._cmd_g = 1.0 if cfg.task == "reach-with-object" else 0.0
        self._success_latched = False
        return self._obs(), self._info(clipped=False, applied=np.zeros(7, np.float32))

    def _validate_action(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (7,):
            raise ValueError(f"action must have shape (7,) = [dx, dy, dz, droll, dpitch, dyaw, dg], got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {a.tolist()}")
        return a

    def step(self, action):
        a = self._validate_action(action)
        low, high = self.action_space.low.astype(np.float64), self.action_space.high.astype(np.float64)
        applied = np.clip(a, low, high)
        clipped = bool(np.any(applied != a))
        cfg, sim = self.cfg, self.sim
        pos_t = self._cmd_pos + applied[:3]
        mat_t = Rotation.from_euler("xyz", applied[3:6]).as_matrix() @ self._cmd_mat
        meas_pos, meas_mat = sim.ee_pose()
        off = pos_t - meas_pos
        dist = np.linalg.norm(off)
        if dist > cfg.leash:
            pos_t = meas_pos + off * (cfg.leash / dist)
        rv = Rotation.from_matrix(mat_t @ meas_mat.T).as_rotvec()
        ang = np.linalg.norm(rv)
        if ang > cfg.leash_rotation:
            mat_t = Rotation.from_rotvec(rv * (cfg.leash_rotation / ang)).as_matrix() @ meas_mat
        pos_t = np.clip(pos_t, self._ws_low, self._ws_high)
        self._cmd_g = float(np.clip(self._cmd_g + applied[6], 0.0, 1.0))
        sim.servo(pos_t, mat_t, self._cmd_g)
        self._cmd_pos, self._cmd_mat = pos_t, mat_t
        info = self._info(clipped=clipped, applied=applied.astype(np.float32))
        terminated = bool(cfg.terminate_on_success and info["is_success"])
        return self._obs(), float(info["is_success"]), terminated, False, info

    # ----------------------------------------------------------------------------------------------- success
    def _is_success(self) -> bool:
        cfg, sim, goal = self.cfg, self.sim, self.goal
        thr = cfg.success_threshold
        if cfg.task == "reach":
            return bool(np.linalg.norm(sim.ee_pose()[0] - goal["position"]) < thr)
        obj_pos, _ = sim.object_pose()
        rest = sim.object_rest_z
        if cfg.task == "grasp":
            return bool(obj_pos[2] - rest >= 0.05 and sim.object_grasped())
        if cfg.task == "reach-with-object":
            return bool(np.linalg.norm(obj_pos - goal["position"]) < thr and sim.object_grasped())
        on_table = obj_pos[2] - rest < 0.015
        released = self._cmd_g < 0.5 and not sim.object_grasped()
        return bool(np.linalg.norm(obj_pos[:2] - goal["position"][:2]) < thr and on_table and released)

    def _achieved_goal(self) -> np.ndarray:
        return self.sim.ee_pose()[0] if self.cfg.task == "reach" else self.sim.object_pose()[0]

    def compute_reward(self, achieved_goal, desired_goal, info) -> np.ndarray:
        """GoalEnv-style sparse reward: 0 when within ``success_threshold``, else -1 (vectorised)."""
        d = np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)
        return -(d >= self.cfg.success_threshold).astype(np.float32)

    def _obs(self) -> dict:
        h, w = self.cfg.image_size
        obs = {"pixels": self.sim.render(self.cfg.camera, h, w),
               "agent_pos": self.get_ee_state().astype(np.float32)}
        if self.cfg.wrist_camera:
            obs["wrist_pixels"] = self.sim.render("wrist", h, w)
        if self.cfg.goal_keys:
            obj_pos, obj_quat = self.sim.object_pose()
            if not self.sim.has_object:
                obj_pos = np.zeros(3)
            obs["observation"] = np.concatenate([obs["agent_pos"], obj_pos, obj_quat]).astype(np.float32)
            obs["achieved_goal"] = self._achieved_goal().astype(np.float32)
            obs["desired_goal"] = np.asarray(self.goal["position"], np.float32)
        return obs

    def _info(self, clipped: bool, applied: np.ndarray) -> dict:
        return {
            "is_success": self._is_success(),
            "grasped": self.sim.object_grasped(),
            "goal_pixels": None if self.goal.get("pixels") is None else self.goal["pixels"].copy(),
            "goals": self._named(self.goal.get("images", []), np.ndarray.copy),
            "goal_state": self.goal["state"].astype(np.float32),
            "goal_states": self._named(self.goal["states"], lambda x: x.astype(np.float32)),
            "action_clipped": clipped,
            "applied_action": applied,
        }

    def _named(self, values: list, convert) -> dict:
        """``values`` (one per goal image, in order) by goal name, plus ``"final"`` (the task's own goal); ``{}``
        when empty (``render_goals=False`` for the images)."""
        if not values:
            return {}
        named = {name: convert(v) for name, v in zip(self.goal_names, values, strict=True)}
        named.setdefault(FINAL, named[self.goal_names[-1]])
        return named

    def close(self) -> None:
        if hasattr(self, "sim"):
            self.sim.close()
