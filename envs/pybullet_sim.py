"""PyBullet backend with the same interface as :class:`envs.mujoco_sim.MujocoSim`.

Robot: ``pybullet_data/franka_panda/panda.urdf`` (Franka hand; the URDF ``<mimic>`` is ignored by PyBullet so the
fingers are coupled by a gear constraint). Tool centre point: the ``panda_grasptarget`` link. 240 Hz physics,
position-controlled joints, TinyRenderer (no GL needed). Determinism: the world is rebuilt on every reset (an
in-place reset keeps contact warm-start caches). A second, never-stepped client renders
arbitrary configurations (goal images) without touching the physics client.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pybullet as pb
import pybullet_data
from PIL import Image
from scipy.spatial.transform import Rotation

from envs.factors import (
    Appearance,
    light_rotation,
    look_at_frame,
    texture_image,
    texture_period,
    turned_frame,
)
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
TABLE_HALF, TABLE_POS = (0.6, 0.6, 0.02), (0.45, 0.0, -0.02)
LIGHT = {"lightDirection": (0.6, 0.6, 1.6), "lightDiffuseCoeff": 0.7}  # TinyRenderer light (ambient 0.45)
TEXTURE_DIR = Path(tempfile.gettempdir()) / "vjepa2ac_textures"


def _wxyz(q_xyzw) -> np.ndarray:
    return np.array([q_xyzw[3], q_xyzw[0], q_xyzw[1], q_xyzw[2]])


def _xyzw(q_wxyz) -> list:
    return [q_wxyz[1], q_wxyz[2], q_wxyz[3], q_wxyz[0]]


def texture_file(kind: str) -> Path:
    """PNG of ``envs.factors.texture_image(kind)`` in a cache directory (named by its content, written atomically)."""
    img = texture_image(kind)
    path = TEXTURE_DIR / f"{kind}_{hashlib.sha1(img.tobytes()).hexdigest()[:12]}.png"
    if not path.exists():
        TEXTURE_DIR.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".png", dir=TEXTURE_DIR)
        try:
            with os.fdopen(fd, "wb") as f:
                Image.fromarray(img).save(f, format="PNG")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def _box_mesh(half, period: float) -> dict:
    """Vertices, indices, normals and UVs of a box (``half`` extents) whose faces repeat a texture every ``period``
    metres (PyBullet's own box has no usable UVs; TinyRenderer wraps UVs beyond [0, 1])."""
    half = np.asarray(half, float)
    verts, idx, normals, uvs = [], [], [], []
    for axis in range(3):
        u_ax, v_ax = [a for a in range(3) if a != axis]
        for sign in (1.0, -1.0):
            n = np.zeros(3)
            n[axis] = sign
            base = len(verts)
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = np.zeros(3)
                p[axis], p[u_ax], p[v_ax] = sign * half[axis], du * half[u_ax], dv * half[v_ax]
                verts.append(p.tolist())
                normals.append(n.tolist())
                uvs.append([p[u_ax] / period, p[v_ax] / period])
            quad = [0, 1, 2, 0, 2, 3] if sign * (1 if (v_ax - u_ax) % 3 == 1 else -1) > 0 else [0, 2, 1, 0, 3, 2]
            idx.extend(base + k for k in quad)
    return {"vertices": verts, "indices": idx, "normals": normals, "uvs": uvs}


class _World:
    """One PyBullet client holding table, robot, object and (with factors) the :class:`Appearance`'s distractors;
    :meth:`build` applies ``self.appearance`` (``None``: the nominal scene)."""

    def __init__(self, object_kind: str):
        self.client = pb.connect(pb.DIRECT)
        self.object_kind = object_kind
        self.appearance: Appearance | None = None
        self.build()

    def build(self) -> None:
        c = self.client
        pb.resetSimulation(physicsClientId=c)
        pb.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=c)
        pb.setGravity(0, 0, -9.81, physicsClientId=c)
        pb.setTimeStep(1.0 / PHYSICS_HZ, physicsClientId=c)
        a = self.appearance or Appearance()
        table_rgba = TABLE_RGBA if a.table_rgba is None else a.table_rgba
        col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=TABLE_HALF, physicsClientId=c)
        if a.table_texture == "plain":
            vis = pb.createVisualShape(pb.GEOM_BOX, halfExtents=TABLE_HALF, rgbaColor=table_rgba, physicsClientId=c)
        else:
            vis = pb.createVisualShape(pb.GEOM_MESH, rgbaColor=table_rgba, physicsClientId=c,
                                       **_box_mesh(TABLE_HALF, texture_period(a)))
        self.table = pb.createMultiBody(0, col, vis, TABLE_POS, physicsClientId=c)
        if a.table_texture != "plain":
            tex = pb.loadTexture(str(texture_file(a.table_texture)), physicsClientId=c)
            pb.changeVisualShape(self.table, -1, textureUniqueId=tex, rgbaColor=table_rgba, physicsClientId=c)
        self.robot = pb.loadURDF("franka_panda/panda.urdf", [0, 0, 0], useFixedBase=True,
                                 flags=pb.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT, physicsClientId=c)
        gear = pb.createConstraint(self.robot, FINGERS[0], self.robot, FINGERS[1], pb.JOINT_GEAR, [1, 0, 0],
                                   [0, 0, 0], [0, 0, 0], physicsClientId=c)
        pb.changeConstraint(gear, gearRatio=-1, erp=0.1, maxForce=50, physicsClientId=c)
        for link in FINGERS:
            pb.changeDynamics(self.robot, link, lateralFriction=1.5, spinningFriction=0.002, physicsClientId=c)
        self.object = None
        if self.object_kind != "none":
            self.object = self._make_object(OBJECT_RGBA[self.object_kind] if a.object_rgba is None else a.object_rgba)
        self.distractors = [self._make_distractor(d) for d in a.distractors]
        self.reset_robot(HOME_QPOS, 0.0)

    def _make_distractor(self, d) -> int:
        """A static (mass 0) box or cylinder resting on the table top."""
        c, half = self.client, d.size / 2
        if d.shape == "box":
            col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[half] * 3, physicsClientId=c)
            vis = pb.createVisualShape(pb.GEOM_BOX, halfExtents=[half] * 3, rgbaColor=d.rgba, physicsClientId=c)
        else:
            col = pb.createCollisionShape(pb.GEOM_CYLINDER, radius=half, height=d.size, physicsClientId=c)
            vis = pb.createVisualShape(pb.GEOM_CYLINDER, radius=half, length=d.size, rgbaColor=d.rgba,
                                       physicsClientId=c)
        return pb.createMultiBody(0, col, vis, list(d.pos), physicsClientId=c)

    def _make_object(self, rgba) -> int:
        c = self.client
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
        nominal = Appearance()
        self._ghost_scene = (None, nominal.table_texture, nominal.table_texture_scale, None, ())
        self._light = dict(LIGHT)
        self._cams = {n: (np.array(p, float), np.array(t, float), (0, 0, 1)) for n, (p, t) in CAMERAS.items()}
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
            eye, target, up = self._cams[camera]
            fov = camera_fovy(camera)
        else:
            raise ValueError(f"camera must be one of {list(self.camera_names)}, got {camera!r}")
        view = pb.computeViewMatrix(list(eye), list(target), list(up), physicsClientId=world.client)
        proj = pb.computeProjectionMatrixFOV(fov, width / height, 0.01, 5.0, physicsClientId=world.client)
        img = pb.getCameraImage(width, height, view, proj, renderer=pb.ER_TINY_RENDERER, shadow=int(self.shadows),
                                lightAmbientCoeff=0.45, lightSpecularCoeff=0.05, flags=pb.ER_NO_SEGMENTATION_MASK,
                                physicsClientId=world.client, **self._light)[2]
        return np.asarray(img, np.uint8).reshape(height, width, 4)[:, :, :3].copy()

    def render(self, camera: str = "exterior_1", height: int = 256, width: int = 256) -> np.ndarray:
        return self._render_world(self.world, camera, height, width)

    def render_configuration(self, ee_pos, ee_mat, closedness, object_pos=None, object_quat=None,
                             camera: str = "exterior_1", height: int = 256, width: int = 256) -> np.ndarray:
        self._configure(self.ghost, ee_pos, ee_mat, closedness, object_pos, object_quat)
        return self._render_world(self.ghost, camera, height, width)

    def set_appearance(self, appearance: Appearance | None) -> None:
        """Use one reset's :class:`envs.factors.Appearance` (``None``: the nominal scene): light and cameras at once,
        the scene content (table, object colour, distractors) in the goal-image world at once and in the physics
        world from its next rebuild (:meth:`reset`; the env calls this just before it)."""
        a = appearance or Appearance()
        self.world.appearance = self.ghost.appearance = appearance
        scene = (a.table_rgba, a.table_texture, a.table_texture_scale, a.object_rgba, a.distractors)
        if scene != self._ghost_scene:  # the goal-image world shows the new scene content
            self.ghost.build()
            self._ghost_scene = scene
        self._light = dict(LIGHT)
        if appearance is not None:
            direction = np.asarray(LIGHT["lightDirection"])  # towards the light
            self._light = {
                "lightDirection": list(light_rotation(direction, a.light_yaw, a.light_tilt) @ direction),
                "lightDiffuseCoeff": LIGHT["lightDiffuseCoeff"] * a.light_scale,
                "lightColor": list(a.light_tint),
            }
        self._cams = {}
        for name, (eye, target) in CAMERAS.items():
            eye, target, up = np.array(eye, float), np.array(target, float), (0, 0, 1)
            if name in a.camera_offsets:
                dpos, drot = a.camera_offsets[name]
                frame = turned_frame(look_at_frame(eye, target), drot)
                dist = np.linalg.norm(target - eye)
                eye = eye + np.asarray(dpos)
                target, up = eye - dist * frame[:, 2], tuple(frame[:, 1])
            self._cams[name] = (eye, target, up)

    def close(self) -> None:
        for w in (self.world, self.ghost):
            if w.client is not None and pb.isConnected(w.client):
                pb.disconnect(w.client)
            w.client = None
