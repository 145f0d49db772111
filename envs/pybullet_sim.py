"""PyBullet backend with the same interface as :class:`envs.mujoco_sim.MujocoSim`.

Robot: ``pybullet_data/franka_panda/panda.urdf`` (Franka hand; the URDF ``<mimic>`` is ignored by PyBullet so the
fingers are coupled by a gear constraint). Tool centre point: the ``panda_grasptarget`` link. 240 Hz physics,
position-controlled joints, TinyRenderer (no GL needed). Determinism: the world is rebuilt on every reset (an
in-place reset keeps contact warm-start caches). A second, never-stepped client renders
arbitrary configurations (goal images) without touching the physics client.
"""

from __future__ import annotations

import numpy as np
import pybullet as pb
import pybullet_data
from scipy.spatial.transform import Rotation

from envs.scene_layout import (
    CAMERAS,
    COMPOSITE_CAMERAS,
    CUBE_HALF,
    CUP_HEIGHT,
    CUP_RADIUS,
    CUP_WALL,
    HOME_QPOS,
    OBJECT_RGBA,
    TABLE_RGBA,
    camera_fovy,
    render_composite,
)

ARM_FORCE = np.array([87, 87, 87, 87, 12, 12, 12], dtype=float)
EE_LINK, FINGERS, FINGER_OPEN = 11, (9, 10), 0.04
FINGER_FORCE = 40.0
PHYSICS_HZ = 240.0


def _wxyz(q_xyzw) -> np.ndarray:
    return np.array([q_xyzw[3], q_xyzw[0], q_xyzw[1], q_xyzw[2]])


def _xyzw(q_wxyz) -> list:
    return [q_wxyz[1], q_wxyz[2], q_wxyz[3], q_wxyz[0]]


class _World:
    """One PyBullet client holding table, robot and object."""

    def __init__(self, object_kind: str):
        self.client = pb.connect(pb.DIRECT)
        self.object_kind = object_kind
        self.table_rgba = TABLE_RGBA
        self.build()

    def build(self) -> None:
        c = self.client
        pb.resetSimulation(physicsClientId=c)
        pb.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=c)
        pb.setGravity(0, 0, -9.81, physicsClientId=c)
        pb.setTimeStep(1.0 / PHYSICS_HZ, physicsClientId=c)
        col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[0.6, 0.6, 0.02], physicsClientId=c)
        vis = pb.createVisualShape(pb.GEOM_BOX, halfExtents=[0.6, 0.6, 0.02], rgbaColor=self.table_rgba,
                                   physicsClientId=c)
        self.table = pb.createMultiBody(0, col, vis, [0.45, 0, -0.02], physicsClientId=c)
        self.robot = pb.loadURDF("franka_panda/panda.urdf", [0, 0, 0], useFixedBase=True,
                                 flags=pb.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT, physicsClientId=c)
        gear = pb.createConstraint(self.robot, FINGERS[0], self.robot, FINGERS[1], pb.JOINT_GEAR, [1, 0, 0],
                                   [0, 0, 0], [0, 0, 0], physicsClientId=c)
        pb.changeConstraint(gear, gearRatio=-1, erp=0.1, maxForce=50, physicsClientId=c)
        for link in FINGERS:
            pb.changeDynamics(self.robot, link, lateralFriction=1.5, spinningFriction=0.002, physicsClientId=c)
        self.object = None
        if self.object_kind != "none":
            self.object = self._make_object()
        self.reset_robot(HOME_QPOS, 0.0)

    def _make_object(self) -> int:
        c, rgba = self.client, OBJECT_RGBA[self.object_kind]
        if self.object_kind == "cube":
            col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[CUBE_HALF] * 3, physicsClientId=c)
            vis = pb.createVisualShape(pb.GEOM_BOX, halfExtents=[CUBE_HALF] * 3, rgbaColor=rgba, physicsClientId=c)
            body = pb.createMultiBody(0.05, col, vis, [0.5, 0, CUBE_HALF], physicsClientId=c)
        else:  # cup: base disk + 16 wall boxes, origin at the bottom centre
            n = 16
            half_w = CUP_RADIUS * np.tan(np.pi / n) + 0.001
            types, sizes, poss, orns = [pb.GEOM_BOX], [[CUP_RADIUS * 0.7, CUP_RADIUS * 0.7, 0.003]], [[0, 0, 0.003]], [
                [0, 0, 0, 1]]
            for k in range(n):
                a = 2 * np.pi * k / n
                types.append(pb.GEOM_BOX)
                sizes.append([CUP_WALL / 2, half_w, CUP_HEIGHT / 2])
                r = CUP_RADIUS - CUP_WALL / 2
                poss.append([r * np.cos(a), r * np.sin(a), CUP_HEIGHT / 2])
                orns.append([0, 0, np.sin(a / 2), np.cos(a / 2)])
            col = pb.createCollisionShapeArray(types, halfExtents=sizes, collisionFramePositions=poss,
                                               collisionFrameOrientations=orns, physicsClientId=c)
            vis = pb.createVisualShapeArray(types, halfExtents=sizes, visualFramePositions=poss,
                                            visualFrameOrientations=orns, physicsClientId=c)
            body = pb.createMultiBody(0.1, col, vis, [0.5, 0, 0], physicsClientId=c)
            pb.changeVisualShape(body, -1, rgbaColor=rgba, physicsClientId=c)  # (rgbaColors= segfaults 3.2.7)
        pb.changeDynamics(body, -1, lateralFriction=1.5, spinningFriction=0.002, physicsClientId=c)
        return body

    def reset_robot(self, q: np.ndarray, closedness: float) -> None:
        c, finger = self.client, FINGER_OPEN * (1.0 - closedness)
        for j in range(7):
            pb.resetJointState(self.robot, j, q[j], physicsClientId=c)
        for j in FINGERS:
            pb.resetJointState(self.robot, j, finger, physicsClientId=c)
        self.command(q, closedness)

    def command(self, q: np.ndarray, closedness: float) -> None:
        c = self.client
        pb.setJointMotorControlArray(self.robot, list(range(7)), pb.POSITION_CONTROL, targetPositions=list(q),
                                     forces=list(ARM_FORCE), physicsClientId=c)
        pb.setJointMotorControlArray(self.robot, list(FINGERS), pb.POSITION_CONTROL,
                                     targetPositions=[FINGER_OPEN * (1.0 - closedness)] * 2,
                                     forces=[FINGER_FORCE] * 2, physicsClientId=c)

    def set_object(self, pos, quat_wxyz) -> None:
        if self.object is not None:
            pb.resetBasePositionAndOrientation(self.object, list(pos), _xyzw(quat_wxyz), physicsClientId=self.client)
            pb.resetBaseVelocity(self.object, [0, 0, 0], [0, 0, 0], physicsClientId=self.client)

    def set_table_color(self, rgba) -> None:
        self.table_rgba = tuple(rgba)
        pb.changeVisualShape(self.table, -1, rgbaColor=list(rgba), physicsClientId=self.client)


class BulletSim:
    """Franka scene in PyBullet; same public methods as ``MujocoSim``. Quaternions are (w, x, y, z)."""

    name = "pybullet"
    camera_names = (*CAMERAS, *COMPOSITE_CAMERAS, "wrist")
    home_qpos = HOME_QPOS

    def __init__(self, object: str = "cube", control_hz: float = 4.0, shadows: bool = False):
        self.object_kind = object
        self.has_object = object != "none"
        self.world = _World(object)
        self.ghost = _World(object)
        self.n_substeps = max(1, round(PHYSICS_HZ / control_hz))
        self.n_interp = max(1, round(0.6 * self.n_substeps))
        self.shadows = shadows
        self.object_half_width = {"cube": CUBE_HALF, "cup": CUP_RADIUS}.get(object, 0.0)
        self.object_rest_z = CUBE_HALF if object == "cube" else 0.0
        self.grasp_offset = np.array([0.0, 0.0, 0.0 if object == "cube" else 0.045])
        self.max_gap = 2 * FINGER_OPEN
        self._light_scale = 1.0
        self._cams = {n: (np.array(p, float), np.array(t, float)) for n, (p, t) in CAMERAS.items()}
        self._cams_home = dict(self._cams)
        info = [pb.getJointInfo(self.world.robot, j, physicsClientId=self.world.client) for j in range(7)]
        self.lo = np.array([i[8] for i in info])
        self.hi = np.array([i[9] for i in info])
        self._q_cmd = HOME_QPOS.copy()

    # ----------------------------------------------------------------------------------------------- state
    def reset(self, object_pos=None, object_quat=None) -> None:
        self.world.build()  # full rebuild: bit-identical rollouts under the same seed
        if self.has_object:
            self.world.set_object(object_pos, object_quat)
        self._q_cmd = HOME_QPOS.copy()
        self._g_cmd = 0.0

    def closedness_for_gap(self, gap: float) -> float:
        return float(np.clip(1.0 - gap / (2 * FINGER_OPEN), 0.0, 1.0))

    def _ik(self, world: _World, pos, mat, q_rest) -> np.ndarray:
        quat = Rotation.from_matrix(mat).as_quat()  # xyzw
        q = pb.calculateInverseKinematics(
            world.robot, EE_LINK, list(pos), list(quat), lowerLimits=list(self.lo), upperLimits=list(self.hi),
            jointRanges=list(self.hi - self.lo), restPoses=list(q_rest), maxNumIterations=100,
            residualThreshold=1e-6, physicsClientId=world.client)
        return np.clip(np.array(q[:7]), self.lo, self.hi)

    def _configure(self, world: _World, ee_pos, ee_mat, closedness, object_pos, object_quat) -> np.ndarray:
        world.reset_robot(HOME_QPOS, closedness)
        q = HOME_QPOS
        for _ in range(3):  # IK from the current joints: repeat to converge from home
            q = self._ik(world, ee_pos, ee_mat, HOME_QPOS)
            world.reset_robot(q, closedness)
        if self.has_object and object_pos is not None:
            world.set_object(object_pos, object_quat)
        return q

    def place(self, ee_pos, ee_mat, closedness, object_pos=None, object_quat=None) -> None:
        self._q_cmd = self._configure(self.world, ee_pos, ee_mat, closedness, object_pos, object_quat)

    def settle(self, seconds: float) -> None:
        for _ in range(max(1, round(seconds * PHYSICS_HZ))):
            pb.stepSimulation(physicsClientId=self.world.client)

    def set_gripper_command(self, closedness: float) -> None:
        self._g_cmd = float(closedness)
        self.world.command(self._q_cmd, self._g_cmd)

    def _link_pose(self, world: _World, link: int) -> tuple[np.ndarray, np.ndarray]:
        s = pb.getLinkState(world.robot, link, computeForwardKinematics=True, physicsClientId=world.client)
        return np.array(s[4]), np.array(pb.getMatrixFromQuaternion(s[5])).reshape(3, 3)

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self._link_pose(self.world, EE_LINK)

    def gripper_closedness(self) -> float:
        c = self.world.client
        w = sum(pb.getJointState(self.world.robot, j, physicsClientId=c)[0] for j in FINGERS)
        return float(np.clip(1.0 - w / (2 * FINGER_OPEN), 0.0, 1.0))

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.has_object:
            return np.full(3, np.nan), np.array([1.0, 0, 0, 0])
        pos, quat = pb.getBasePositionAndOrientation(self.world.object, physicsClientId=self.world.client)
        return np.array(pos), _wxyz(quat)

    def arm_qpos(self) -> np.ndarray:
        c = self.world.client
        return np.array([pb.getJointState(self.world.robot, j, physicsClientId=c)[0] for j in range(7)])

    def object_grasped(self) -> bool:
        if not self.has_object:
            return False
        w = self.world
        return all(len(pb.getContactPoints(w.robot, w.object, linkIndexA=f, physicsClientId=w.client)) > 0
                   for f in FINGERS)

    # ----------------------------------------------------------------------------------------------- control
    def servo(self, target_pos, target_mat, closedness: float) -> None:
        q_start = self._q_cmd.copy()
        q_goal = self._ik(self.world, target_pos, target_mat, HOME_QPOS)
        self._g_cmd = float(closedness)
        c = self.world.client
        for k in range(self.n_substeps):
            if k < self.n_interp:
                self.world.command(q_start + (q_goal - q_start) * (k + 1) / self.n_interp, self._g_cmd)
            pb.stepSimulation(physicsClientId=c)
        self._q_cmd = q_goal

    def commanded_arm_qpos(self) -> np.ndarray:
        return self._q_cmd.copy()

    # ----------------------------------------------------------------------------------------------- rendering
    def _render_world(self, world: _World, camera: str, height: int, width: int) -> np.ndarray:
        if camera in COMPOSITE_CAMERAS:
            return render_composite(lambda c, h, w: self._render_world(world, c, h, w), camera, height, width)
        if camera == "wrist":
            pos, mat = self._link_pose(world, 8)  # hand frame: z along the fingers
            eye = pos + mat @ np.array([0.06, 0.0, 0.02])
            target = eye + mat @ np.array([-0.03, 0.0, 0.2])
            up = mat @ np.array([1.0, 0.0, 0.0])
            fov = 70.0
        elif camera in self._cams:
            eye, target = self._cams[camera]
            up, fov = [0, 0, 1], camera_fovy(camera)
        else:
            raise ValueError(f"camera must be one of {list(self.camera_names)}, got {camera!r}")
        view = pb.computeViewMatrix(list(eye), list(target), list(up), physicsClientId=world.client)
        proj = pb.computeProjectionMatrixFOV(fov, width / height, 0.01, 5.0, physicsClientId=world.client)
        img = pb.getCameraImage(width, height, view, proj, renderer=pb.ER_TINY_RENDERER, shadow=int(self.shadows),
                                lightDirection=[0.6, 0.6, 1.6], lightDiffuseCoeff=0.7 * self._light_scale,
                                lightAmbientCoeff=0.45, lightSpecularCoeff=0.05, flags=pb.ER_NO_SEGMENTATION_MASK,
                                physicsClientId=world.client)[2]
        return np.asarray(img, np.uint8).reshape(height, width, 4)[:, :, :3].copy()

    def render(self, camera: str = "exterior_1", height: int = 256, width: int = 256) -> np.ndarray:
        return self._render_world(self.world, camera, height, width)

    def render_configuration(self, ee_pos, ee_mat, closedness, object_pos=None, object_quat=None,
                             camera: str = "exterior_1", height: int = 256, width: int = 256) -> np.ndarray:
        self._configure(self.ghost, ee_pos, ee_mat, closedness, object_pos, object_quat)
        return self._render_world(self.ghost, camera, height, width)

    def set_appearance(self, table_rgba=None, light_scale: float = 1.0, camera_offsets=None) -> None:
        rgba = TABLE_RGBA if table_rgba is None else tuple(table_rgba)
        self.world.table_rgba = self.ghost.table_rgba = rgba  # survives the rebuild on reset
        self.ghost.set_table_color(rgba)
        self._light_scale = float(light_scale)
        self._cams = {n: (p + (camera_offsets[n][0] if camera_offsets else 0.0),
                          t + (camera_offsets[n][1] if camera_offsets else 0.0))
                      for n, (p, t) in self._cams_home.items()}

    def close(self) -> None:
        for w in (self.world, self.ghost):
            if w.client is not None and pb.isConnected(w.client):
                pb.disconnect(w.client)
            w.client = None
