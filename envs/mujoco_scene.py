"""MjSpec scene: menagerie Panda + Robotiq 2F-85 (vendored, decimated), table, object, DROID-like cameras.

World frame = robot base frame: the Panda base sits at the origin on the table top (z = 0), x points away from
the robot. Physics: dt 2 ms, implicitfast, elliptic cones, impratio 10, gravity-compensated arm driven by joint
position servos with the MuJoCo Menagerie gains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from envs.factors import DISTRACTOR_COUNT, DISTRACTOR_SHAPES, DISTRACTOR_SIZE, TEXTURE_CELLS, texture_image
from envs.scene_layout import (  # noqa: F401  (re-exported)
    CAMERA_FOVY,
    CAMERA_FOVYS,
    CAMERAS,
    COMPOSITE_CAMERAS,
    CUBE_HALF,
    CUP_HEIGHT,
    CUP_RADIUS,
    CUP_WALL,
    EXTERIOR_CAMERAS,
    HOME_QPOS,
    OBJECT_RGBA,
    TABLE_RGBA,
    camera_fovy,
    render_composite,
)

ASSETS = Path(__file__).parent / "assets"
ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
GRIPPER_JOINTS = tuple(
    f"{side}_{part}_joint" for side in ("right", "left") for part in ("driver", "coupler", "spring_link", "follower")
)
SERVO_KP = np.array([4500, 4500, 3500, 3500, 2000, 2000, 2000], dtype=float)
SERVO_FORCE = np.array([87, 87, 87, 87, 12, 12, 12], dtype=float)
DISTRACTOR_PARK = (0.0, 0.0, -10.0)  # where unused distractor bodies wait, far below the floor


@dataclass
class SceneConfig:
    """What goes into the MuJoCo scene.

    object: "cube" (4 cm, 50 g), "cup" (6.4 cm wide, 8 cm tall, 100 g) or "none".
    max_image_size: offscreen framebuffer size (the largest render you will ask for).
    msaa: offscreen multisampling (0 = off; 4 looks smoother, llvmpipe cost ~2x at 256 px).
    shadows: shadow-casting lights (slow on llvmpipe: +25-40 ms per frame).
    table_textures: add the table texture materials ("table_checker", "table_noise") of the "table" factor.
    distractors: add the static distractor bodies of the "distractors" factor ("distractor_box_{i}" and
        "distractor_cylinder_{i}", i < 3, parked at DISTRACTOR_PARK; ``MujocoSim.set_appearance`` places them).
    Both off (the default) leaves the scene exactly as without factors.
    """

    object: str = "cube"
    max_image_size: int = 640
    msaa: int = 4
    shadows: bool = False
    table_textures: bool = False
    distractors: bool = False


def look_at_quat(pos, target) -> np.ndarray:
    """Quaternion (w, x, y, z) of a MuJoCo camera at ``pos`` looking at ``target`` (camera looks along -z)."""
    fwd = np.asarray(target, float) - np.asarray(pos, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    mat = np.stack([right, np.cross(right, fwd), -fwd], axis=1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat


def _robot_spec() -> mujoco.MjSpec:
    spec = mujoco.MjSpec.from_file(str(ASSETS / "panda.xml"))
    for i, act in enumerate(spec.actuators[:7]):  # torque motors -> joint position servos
        kp = SERVO_KP[i]
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.gainprm[0] = kp
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        act.biasprm[:3] = [0.0, -kp, -kp / 10.0]
        joint = spec.joint(ARM_JOINTS[i])
        act.ctrlrange = joint.range if joint.range[1] > joint.range[0] else [-2.8973, 2.8973]
        act.ctrllimited = True
        act.forcerange = [-SERVO_FORCE[i], SERVO_FORCE[i]]
        act.forcelimited = True
    for body in spec.bodies[1:]:
        body.gravcomp = 1.0
    return spec


def _add_object(spec: mujoco.MjSpec, kind: str) -> None:
    body = spec.worldbody.add_body(name="object", pos=[0.5, 0.0, 0.0])
    body.add_freejoint(name="object")
    rgba = OBJECT_RGBA[kind]
    if kind == "cube":
        body.pos = [0.5, 0.0, CUBE_HALF]
        body.add_geom(name="object_geom", type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3, mass=0.05,
                      rgba=rgba, condim=4, friction=[1.0, 0.005, 0.0001])
    elif kind == "cup":  # origin at the bottom centre; base disk + 16 wall boxes + a handle
        body.add_geom(name="object_geom", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[CUP_RADIUS, 0.003],
                      pos=[0, 0, 0.003], mass=0.02, rgba=rgba, condim=4)
        n = 16
        half_w = CUP_RADIUS * np.tan(np.pi / n) + 0.001
        for k in range(n):
            a = 2 * np.pi * k / n
            body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUP_WALL / 2, half_w, CUP_HEIGHT / 2],
                          pos=[(CUP_RADIUS - CUP_WALL / 2) * np.cos(a), (CUP_RADIUS - CUP_WALL / 2) * np.sin(a),
                               CUP_HEIGHT / 2],
                          quat=[np.cos(a / 2), 0, 0, np.sin(a / 2)], mass=0.005, rgba=rgba, condim=4)
    else:
        raise ValueError(f"object must be 'cube', 'cup' or 'none', got {kind!r}")


def build_scene(cfg: SceneConfig) -> mujoco.MjModel:
    """Compile the full scene: robot, table, optional object, lights and cameras."""
    spec = _robot_spec()
    spec.option.timestep = 0.002
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    vis = spec.visual
    vis.global_.offwidth = vis.global_.offheight = int(cfg.max_image_size)
    vis.quality.offsamples = int(cfg.msaa)
    vis.quality.shadowsize = 2048
    vis.headlight.ambient = [0.35, 0.35, 0.35]
    vis.headlight.diffuse = [0.35, 0.35, 0.35]
    vis.headlight.specular = [0.05, 0.05, 0.05]
    spec.add_texture(name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_FLAT,
                     rgb1=[0.55, 0.56, 0.58], rgb2=[0.55, 0.56, 0.58], width=32, height=32)
    world = spec.worldbody
    world.add_light(name="key", pos=[0.6, 0.6, 1.6], dir=[-0.2, -0.4, -1.0], diffuse=[0.55, 0.55, 0.55],
                    specular=[0.1, 0.1, 0.1], castshadow=cfg.shadows)
    world.add_light(name="fill", pos=[1.2, -0.8, 1.2], dir=[-0.6, 0.5, -0.6], diffuse=[0.25, 0.25, 0.25],
                    specular=[0, 0, 0], castshadow=False)
    world.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.6, 0.6, 0.02], pos=[0.45, 0.0, -0.02],
                   rgba=TABLE_RGBA, friction=[1.0, 0.005, 0.0001])
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.01], pos=[0, 0, -0.75],
                   rgba=[0.35, 0.35, 0.37, 1], contype=0, conaffinity=0)
    for name, (pos, target) in CAMERAS.items():
        world.add_camera(name=name, pos=list(pos), quat=look_at_quat(pos, target), fovy=camera_fovy(name))
    if cfg.object != "none":
        _add_object(spec, cfg.object)
    if cfg.table_textures:
        _add_table_materials(spec)
    if cfg.distractors:
        _add_distractors(spec)
    return spec.compile()


def _add_table_materials(spec: mujoco.MjSpec) -> None:
    """One material per textured table of the "table" factor; texrepeat and the colour are set at run time."""
    for kind in TEXTURE_CELLS:
        img = texture_image(kind)
        tex = spec.add_texture(name=f"table_{kind}", type=mujoco.mjtTexture.mjTEXTURE_2D, width=img.shape[1],
                               height=img.shape[0], nchannel=3)
        tex.data = img.tobytes()
        mat = spec.add_material(name=f"table_{kind}", texuniform=True, texrepeat=[1.0, 1.0])
        mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = f"table_{kind}"


def _add_distractors(spec: mujoco.MjSpec) -> None:
    """Jointless (static) distractor bodies, one per shape and slot, built at the largest size (so the collision
    bounds stay conservative when ``geom_size`` shrinks at run time) and parked far below the floor."""
    half = DISTRACTOR_SIZE[1] / 2
    sizes = {"box": [half] * 3, "cylinder": [half, half, 0.0]}
    types = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER}
    for shape in DISTRACTOR_SHAPES:
        for i in range(DISTRACTOR_COUNT[1]):
            body = spec.worldbody.add_body(name=f"distractor_{shape}_{i}", pos=list(DISTRACTOR_PARK))
            body.add_geom(name=f"distractor_{shape}_{i}", type=types[shape], size=sizes[shape],
                          rgba=[0.5, 0.5, 0.5, 1.0], friction=[1.0, 0.005, 0.0001])


def build_arm_model() -> mujoco.MjModel:
    """Arm-only kinematic model for IK: the 7 arm joints and a ``pinch`` site at the 2F-85 tool centre point."""
    full = _robot_spec().compile()
    data = mujoco.MjData(full)
    mujoco.mj_kinematics(full, data)
    att = full.body("attachment").id
    site = full.site("pinch").id
    r_att = data.xmat[att].reshape(3, 3)
    rel_pos = r_att.T @ (data.site_xpos[site] - data.xpos[att])
    rel_mat = r_att.T @ data.site_xmat[site].reshape(3, 3)
    rel_quat = np.zeros(4)
    mujoco.mju_mat2Quat(rel_quat, rel_mat.reshape(-1))

    spec = mujoco.MjSpec.from_file(str(ASSETS / "panda.xml"))
    for act in list(spec.actuators):
        spec.delete(act)
    for sensor in list(spec.sensors):
        spec.delete(sensor)
    for eq in list(spec.equalities):
        spec.delete(eq)
    for tendon in list(spec.tendons):
        spec.delete(tendon)
    for exclude in list(spec.excludes):
        spec.delete(exclude)
    spec.delete(spec.body("base_mount"))
    for geom in list(spec.geoms):
        spec.delete(geom)
    spec.body("attachment").add_site(name="pinch", pos=rel_pos, quat=rel_quat)
    return spec.compile()
