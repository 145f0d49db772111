"""MuJoCo backend: physics, damped-least-squares IK, rendering and goal-configuration rendering.

The backend only knows poses and joint targets; the DROID-convention action handling (delta integration, leash,
limits) lives in :mod:`envs.franka_env` and is shared with the PyBullet backend.
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.factors import (
    DISTRACTOR_COUNT,
    DISTRACTOR_SHAPES,
    Appearance,
    light_rotation,
    texture_period,
    turned_frame,
)
from envs.mujoco_scene import (
    ARM_JOINTS,
    CAMERAS,
    COMPOSITE_CAMERAS,
    CUBE_HALF,
    CUP_RADIUS,
    DISTRACTOR_PARK,
    GRIPPER_JOINTS,
    HOME_QPOS,
    SceneConfig,
    build_arm_model,
    build_scene,
    render_composite,
)

DRIVER_RANGE = 0.8  # rad, right_driver_joint fully closed
# A texuniform material on a box maps one texture image onto TEXREPEAT_SPAN / texrepeat metres (measured: the
# checker squares then match PyBullet's, whose UVs are set in metres; docs/images/factors).
TEXREPEAT_SPAN = 2.0
PAD_HALF_THICKNESS = 0.004


class DLSIK:
    """Damped least-squares IK for the ``pinch`` site on the arm-only model, with a null-space pull to home.

    ``solve(q_init [7], pos [3], mat [3, 3]) -> q [7]`` (joint limits respected).
    """

    def __init__(self, model: mujoco.MjModel, damping: float = 0.05, iterations: int = 8,
                 posture_gain: float = 0.1, q_rest: np.ndarray = HOME_QPOS):
        self.model, self.data = model, mujoco.MjData(model)
        self.site = model.site("pinch").id
        self.damping, self.iterations, self.posture_gain = damping, iterations, posture_gain
        self.q_rest = np.asarray(q_rest, float)
        self.lo, self.hi = model.jnt_range[:7, 0].copy(), model.jnt_range[:7, 1].copy()
        self._jac = np.zeros((6, model.nv))
        self._quat, self._vel = np.zeros(4), np.zeros(3)

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pinch position [3] and rotation matrix [3, 3] for arm joints ``q`` [7]."""
        self.data.qpos[:] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def solve(self, q_init: np.ndarray, pos: np.ndarray, mat: np.ndarray, iterations: int | None = None) -> np.ndarray:
        m, d, jac = self.model, self.data, self._jac
        q = np.clip(np.asarray(q_init, float).copy(), self.lo, self.hi)
        lam2 = self.damping**2 * np.eye(6)
        for _ in range(iterations or self.iterations):
            d.qpos[:] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            err = np.empty(6)
            err[:3] = pos - d.site_xpos[self.site]
            r_err = mat @ d.site_xmat[self.site].reshape(3, 3).T
            mujoco.mju_mat2Quat(self._quat, r_err.reshape(-1))
            mujoco.mju_quat2Vel(self._vel, self._quat, 1.0)
            err[3:] = self._vel
            mujoco.mj_jacSite(m, d, jac[:3], jac[3:], self.site)
            j_t_inv = jac.T @ np.linalg.inv(jac @ jac.T + lam2)  # [7, 6]
            dq = j_t_inv @ err
            dq += (np.eye(7) - np.linalg.pinv(jac) @ jac) @ (self.posture_gain * (self.q_rest - q))  # exact null space
            q = np.clip(q + dq, self.lo, self.hi)
        return q


class MujocoSim:
    """One Franka scene in MuJoCo. Poses are in the robot base (= world) frame; quaternions are (w, x, y, z)."""

    name = "mujoco"
    camera_names = (*CAMERAS, *COMPOSITE_CAMERAS, "wrist")
    home_qpos = HOME_QPOS

    def __init__(self, object: str = "cube", control_hz: float = 4.0, msaa: int = 4, shadows: bool = False,
                 max_image_size: int = 640, interp_fraction: float = 0.6, factors: tuple[str, ...] = ()):
        self.object_kind = object
        self.model = build_scene(SceneConfig(object=object, max_image_size=max_image_size, msaa=msaa,
                                             shadows=shadows, table_textures="table" in factors,
                                             distractors="distractors" in factors))
        self.data = mujoco.MjData(self.model)
        self.ghost = mujoco.MjData(self.model)  # scratch data for rendering arbitrary configurations
        self.ik = DLSIK(build_arm_model())
        m = self.model
        self.dt = m.opt.timestep
        self.n_substeps = max(1, round(1.0 / (control_hz * self.dt)))
        self.n_interp = max(1, round(interp_fraction * self.n_substeps))
        self.arm_qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in ARM_JOINTS])
        self.grip_qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in GRIPPER_JOINTS])
        self.pinch = m.site("pinch").id
        self.pad_bodies = {m.body(n).id for n in ("left_pad", "right_pad", "left_follower", "right_follower")}
        self.left_pads = {m.body(n).id for n in ("left_pad", "left_follower")}
        self.has_object = object != "none"
        if self.has_object:
            self.obj_body = m.body("object").id
            self.obj_qadr = m.jnt_qposadr[m.joint("object").id]
        self.object_half_width = {"cube": CUBE_HALF, "cup": CUP_RADIUS}.get(object, 0.0)
        self.object_rest_z = CUBE_HALF if object == "cube" else 0.0
        # vector from the object origin to the pinch point when grasped, in the object frame
        self.grasp_offset = np.array([0.0, 0.0, 0.0 if object == "cube" else 0.045])
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._cam_ids = {n: m.camera(n).id for n in CAMERAS} | {"wrist": m.camera("handcam_rgb").id}
        self._cam_home = {n: (m.cam_pos[i].copy(), m.cam_quat[i].copy()) for n, i in self._cam_ids.items()}
        self._light_home = (m.light_pos.copy(), m.light_dir.copy(), m.light_diffuse.copy())
        self._table = m.geom("table").id
        self._table_rgba = m.geom_rgba[self._table].copy()
        self._object_geoms = np.flatnonzero(m.geom_bodyid == self.obj_body) if self.has_object else np.zeros(0, int)
        self._object_rgba = m.geom_rgba[self._object_geoms].copy()
        self._distractor_slots = {  # shape -> [(body id, geom id)] (empty without the "distractors" factor)
            shape: [(m.body(n).id, m.geom(n).id) for n in (f"distractor_{shape}_{i}" for i in range(DISTRACTOR_COUNT[1]))]
            for shape in DISTRACTOR_SHAPES
        } if "distractors" in factors else {}
        self._calibrate_gripper()

    # ----------------------------------------------------------------------------------------------- setup
    def _calibrate_gripper(self) -> None:
        """Record the 2F-85 linkage (8 joints) and pad gap while it closes slowly in free air."""
        m, d = self.model, self.ghost
        mujoco.mj_resetData(m, d)
        d.qpos[self.arm_qadr] = HOME_QPOS
        d.ctrl[:7] = HOME_QPOS
        if self.has_object:
            d.qpos[self.obj_qadr : self.obj_qadr + 3] = [3.0, 3.0, 0.0]
        lp, rp = m.geom("left_pad1").id, m.geom("right_pad1").id
        qs, gaps = [], []
        for k in range(300):
            d.ctrl[7] = 255.0 * min(1.0, k / 250)
            mujoco.mj_step(m, d)
            if k % 3 == 0:
                qs.append(d.qpos[self.grip_qadr].copy())
                gaps.append(np.linalg.norm(d.geom_xpos[lp] - d.geom_xpos[rp]) - 2 * PAD_HALF_THICKNESS)
        order = np.argsort(qs_driver := np.array(qs)[:, 0])
        self._grip_q = np.array(qs)[order]
        self._grip_driver = qs_driver[order]
        self._grip_gap = np.array(gaps)[order]
        self.max_gap = float(self._grip_gap.max())

    def gripper_linkage(self, closedness: float) -> np.ndarray:
        """Linkage joint positions [8] for a closedness in [0, 1] (driver angle / 0.8), interpolated."""
        drv = np.clip(closedness, 0.0, 1.0) * DRIVER_RANGE
        return np.array([np.interp(drv, self._grip_driver, self._grip_q[:, j]) for j in range(8)])

    def closedness_for_gap(self, gap: float) -> float:
        """Closedness at which the pads are ``gap`` metres apart (e.g. the object width when holding it)."""
        order = np.argsort(self._grip_gap)
        return float(np.interp(gap, self._grip_gap[order], self._grip_driver[order]) / DRIVER_RANGE)

    # ----------------------------------------------------------------------------------------------- state
    def reset(self, object_pos=None, object_quat=None) -> None:
        """Robot at home with the gripper open; object (if any) at the given pose."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self.arm_qadr] = HOME_QPOS
        d.ctrl[:7] = HOME_QPOS
        d.ctrl[7] = 0.0
        if self.has_object:
            d.qpos[self.obj_qadr : self.obj_qadr + 3] = object_pos
            d.qpos[self.obj_qadr + 3 : self.obj_qadr + 7] = object_quat
        mujoco.mj_forward(m, d)

    def set_configuration(self, data: mujoco.MjData, ee_pos, ee_mat, closedness, object_pos=None,
                          object_quat=None, q_init=None) -> np.ndarray:
        """Kinematically place robot (via IK), gripper and object in ``data``; returns the arm joints [7]."""
        q = self.ik.solve(HOME_QPOS if q_init is None else q_init, np.asarray(ee_pos), np.asarray(ee_mat),
                          iterations=60)
        data.qpos[:] = 0.0
        data.qvel[:] = 0.0
        data.qpos[self.arm_qadr] = q
        data.qpos[self.grip_qadr] = self.gripper_linkage(closedness)
        data.ctrl[:7] = q
        data.ctrl[7] = 255.0 * closedness
        if self.has_object:
            data.qpos[self.obj_qadr : self.obj_qadr + 3] = object_pos
            data.qpos[self.obj_qadr + 3 : self.obj_qadr + 7] = object_quat
        mujoco.mj_forward(self.model, data)
        return q

    def place(self, ee_pos, ee_mat, closedness, object_pos=None, object_quat=None) -> None:
        """Kinematically put the physics state in a configuration (zero velocities, servos holding it)."""
        self.set_configuration(self.data, ee_pos, ee_mat, closedness, object_pos, object_quat)

    def settle(self, seconds: float) -> None:
        mujoco.mj_step(self.model, self.data, nstep=max(1, round(seconds / self.dt)))

    def set_gripper_command(self, closedness: float) -> None:
        self.data.ctrl[7] = 255.0 * float(closedness)

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured pinch (tool centre point) position [3] and rotation [3, 3]."""
        return self.data.site_xpos[self.pinch].copy(), self.data.site_xmat[self.pinch].reshape(3, 3).copy()

    def gripper_closedness(self) -> float:
        """Measured closedness in [0, 1] (0 open) from the driver joint."""
        return float(np.clip(self.data.qpos[self.grip_qadr[0]] / DRIVER_RANGE, 0.0, 1.0))

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Object origin position [3] and quaternion (w, x, y, z) [4]."""
        if not self.has_object:
            return np.full(3, np.nan), np.array([1.0, 0, 0, 0])
        a = self.obj_qadr
        return self.data.qpos[a : a + 3].copy(), self.data.qpos[a + 3 : a + 7].copy()

    def arm_qpos(self) -> np.ndarray:
        return self.data.qpos[self.arm_qadr].copy()

    def object_grasped(self) -> bool:
        """True when both the left and the right finger touch the object."""
        if not self.has_object:
            return False
        d, m = self.data, self.model
        left = right = False
        for i in range(d.ncon):
            c = d.contact[i]
            b1, b2 = m.geom_bodyid[c.geom1], m.geom_bodyid[c.geom2]
            other = b2 if b1 == self.obj_body else b1 if b2 == self.obj_body else -1
            if other in self.pad_bodies:
                left |= other in self.left_pads
                right |= other not in self.left_pads
        return left and right

    # ----------------------------------------------------------------------------------------------- control
    def servo(self, target_pos: np.ndarray, target_mat: np.ndarray, closedness: float) -> None:
        """One control period: IK to the target pose, joint targets ramped over the first part of the period."""
        m, d = self.model, self.data
        q_start = d.ctrl[:7].copy()
        q_goal = self.ik.solve(q_start, target_pos, target_mat)
        d.ctrl[7] = 255.0 * float(closedness)
        chunk = max(1, self.n_interp // 10)
        done = 0
        while done < self.n_interp:
            n = min(chunk, self.n_interp - done)
            d.ctrl[:7] = q_start + (q_goal - q_start) * (done + n) / self.n_interp
            mujoco.mj_step(m, d, nstep=n)
            done += n
        if self.n_substeps > self.n_interp:
            mujoco.mj_step(m, d, nstep=self.n_substeps - self.n_interp)

    def commanded_arm_qpos(self) -> np.ndarray:
        return self.data.ctrl[:7].copy()

    # ----------------------------------------------------------------------------------------------- rendering
    def _renderer(self, height: int, width: int) -> mujoco.Renderer:
        key = (height, width)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height, width)
        return self._renderers[key]

    def render(self, camera: str = "exterior_1", height: int = 256, width: int = 256, data=None) -> np.ndarray:
        """uint8 [H, W, 3] image of the current state (or of ``data``) from a named camera."""
        if camera in COMPOSITE_CAMERAS:
            return render_composite(lambda c, h, w: self.render(c, h, w, data=data), camera, height, width)
        if camera not in self._cam_ids:
            raise ValueError(f"camera must be one of {list(self.camera_names)}, got {camera!r}")
        r = self._renderer(height, width)
        r.update_scene(self.data if data is None else data, self._cam_ids[camera])
        return r.render()

    def render_configuration(self, ee_pos, ee_mat, closedness, object_pos=None, object_quat=None,
                             camera: str = "exterior_1", height: int = 256, width: int = 256) -> np.ndarray:
        """Image of an arbitrary configuration (robot by IK, gripper, object) without touching the physics state."""
        self.set_configuration(self.ghost, ee_pos, ee_mat, closedness, object_pos, object_quat)
        return self.render(camera, height, width, data=self.ghost)

    def set_appearance(self, appearance: Appearance | None) -> None:
        """Apply one reset's :class:`envs.factors.Appearance` to the model (``None``: the nominal scene, exactly);
        the physics data is updated at once (``mj_forward``), goal-image renders (``self.ghost``) at their own
        ``mj_forward``. Table textures and distractors need the sim built with the "table" / "distractors" factor."""
        m, a = self.model, appearance or Appearance()
        # lighting: the key light turned about its aim point on the table top; the diffuse light scaled and tinted
        pos, direction, diffuse = self._light_home
        m.light_pos[:], m.light_dir[:] = pos, direction
        if a.light_yaw or a.light_tilt:
            key = m.light("key").id
            reach = -pos[key][2] / direction[key][2]  # along the beam down to the table top (z = 0)
            m.light_dir[key] = light_rotation(direction[key], a.light_yaw, a.light_tilt) @ direction[key]
            m.light_pos[key] = pos[key] + reach * (direction[key] - m.light_dir[key])
        m.light_diffuse[:] = diffuse * a.light_scale * np.asarray(a.light_tint)
        # table colour and texture
        m.geom_rgba[self._table] = self._table_rgba if a.table_rgba is None else a.table_rgba
        m.geom_matid[self._table] = -1
        if a.table_texture != "plain":
            mat = m.material(f"table_{a.table_texture}").id  # KeyError: not built with the "table" factor
            m.geom_matid[self._table] = mat
            m.mat_texrepeat[mat] = TEXREPEAT_SPAN / texture_period(a)
        # object colour (every geom of the object)
        m.geom_rgba[self._object_geoms] = self._object_rgba if a.object_rgba is None else a.object_rgba
        # exterior cameras: shifted along the world axes, turned in their own frame
        for name in CAMERAS:
            i = self._cam_ids[name]
            m.cam_pos[i], m.cam_quat[i] = self._cam_home[name]
            if name in a.camera_offsets:
                dpos, drot = a.camera_offsets[name]
                frame = np.zeros(9)
                mujoco.mju_quat2Mat(frame, m.cam_quat[i])
                mujoco.mju_mat2Quat(m.cam_quat[i], turned_frame(frame.reshape(3, 3), drot).reshape(-1))
                m.cam_pos[i] += np.asarray(dpos)
        # distractors: the k-th one of a shape takes that shape's slot k; unused slots stay parked
        if a.distractors and not self._distractor_slots:
            raise ValueError("distractors need the MuJoCo scene built with the 'distractors' factor")
        for slots in self._distractor_slots.values():
            for body, _ in slots:
                m.body_pos[body] = DISTRACTOR_PARK
        used = dict.fromkeys(DISTRACTOR_SHAPES, 0)
        for d in a.distractors:
            body, geom = self._distractor_slots[d.shape][used[d.shape]]
            used[d.shape] += 1
            m.body_pos[body] = d.pos
            m.geom_size[geom] = [d.size / 2] * 3 if d.shape == "box" else [d.size / 2, d.size / 2, 0.0]
            m.geom_rgba[geom] = d.rgba
        mujoco.mj_forward(m, self.data)

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
