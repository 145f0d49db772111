"""Factors of variation ("distribution shift") of the Franka envs: what each one changes, at which fixed level.

An env built with ``factors=(...)`` (names of :data:`FACTORS`; ``gymnasium.make(id, factors=["lighting"])``) draws
one :class:`Appearance` per reset with :func:`sample_appearance` and applies it before the first frame and the goal
images, which therefore show the same shifted scene. The task's own randomisation (object pose, goal) is untouched:
the same seed gives the same task with and without factors. The levels below are fixed here, in code, so every
evaluation's shifted cells are comparable; they are the same for both backends.

``lighting``
    direction: the key light turned about the vertical (through the point it aims at) by U(-35, 35) deg and its
    elevation tilted by U(-15, 15) deg; intensity: the diffuse light of the scene lights x U(0.5, 1.5); colour:
    each RGB channel of that diffuse light x U(0.75, 1.0) (warm, cool or tinted light).
``table``
    colour: HSV hue U(0, 1), saturation U(0, 0.4), value U(0.25, 0.75) (never white or black like the robot),
    redrawn while within 0.3 (RGB distance) of the nominal table colour or a nominal object colour; texture: "plain", "checker" or "noise"
    (grey speckle), equally likely, multiplied by the colour; scale: a checker square U(0.04, 0.12) m, a noise
    speckle U(0.01, 0.03) m.
``object_color``
    every geom of the object gets HSV hue U(0, 1), saturation U(0.7, 1), value U(0.6, 1), redrawn while within 0.3
    of the nominal table colour or a nominal object colour (red cube, blue cup).
``camera``
    every exterior camera (each of ``CAMERAS``, independently; the wrist camera is not moved): position + U(-0.02,
    0.02) m per world axis, orientation turned by U(-3, 3) deg about each axis of its own frame (x right: pitch, y
    up: yaw, z backward: roll; ``new = old @ Rotation.from_euler("xyz", drot)``).
``distractors``
    1-3 (uniform) static objects on the table top: a box (edge s) or a cylinder (diameter and height s), equally
    likely, s U(0.02, 0.05) m, colour HSV hue U(0, 1), saturation U(0.3, 1), value U(0.3, 1) redrawn while within
    0.3 of a nominal object colour; centre uniform in x [0.30, 0.72], y [-0.30, 0.30] m with every point of the
    footprint >= 0.10 m (xy) from each keep-out point (the object's start, the goal / target, the gripper's home)
    and 0.02 m from the other distractors (fewer only if no free spot is found in 200 tries). They are in the
    observations and in the goal images.

Each factor draws from its own stream, so a factor's draw for a seed does not depend on which other factors are on.
``"all"`` is not an env factor (evaluation suites expand it to :data:`FACTORS`). No simulator imports here.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

from envs.scene_layout import CAMERAS, OBJECT_RGBA, TABLE_RGBA

FACTORS = ("lighting", "table", "object_color", "camera", "distractors")

# lighting
LIGHT_YAW_DEG = 35.0  # key light turned about the vertical by U(-35, 35) deg
LIGHT_TILT_DEG = 15.0  # and its elevation tilted by U(-15, 15) deg
LIGHT_SCALE = (0.5, 1.5)  # diffuse x U(0.5, 1.5)
LIGHT_TINT = (0.75, 1.0)  # each RGB channel of the diffuse light x U(0.75, 1.0)
# table
TABLE_HSV = ((0.0, 0.0, 0.25), (1.0, 0.4, 0.75))  # (low, high) of hue, saturation, value
TABLE_TEXTURES = ("plain", "checker", "noise")
TEXTURE_SCALE = {"plain": (0.0, 0.0), "checker": (0.04, 0.12), "noise": (0.01, 0.03)}  # square / speckle size (m)
TEXTURE_CELLS = {"checker": 2, "noise": 16}  # squares / speckles per side of a texture image (one period)
TEXTURE_PIXELS = 64  # texture images are 64 x 64
# object colour
OBJECT_HSV = ((0.0, 0.7, 0.6), (1.0, 1.0, 1.0))
MIN_COLOR_DISTANCE = 0.3  # RGB distance a drawn table / object / distractor colour keeps from the nominal colours
# camera
CAMERA_SHIFT = 0.02  # m, per world axis
CAMERA_TURN_DEG = 3.0  # per camera axis
# distractors
DISTRACTOR_COUNT = (1, 3)
DISTRACTOR_SHAPES = ("box", "cylinder")
DISTRACTOR_SIZE = (0.02, 0.05)  # box edge / cylinder diameter and height (m)
DISTRACTOR_HSV = ((0.0, 0.3, 0.3), (1.0, 1.0, 1.0))
DISTRACTOR_AREA = ((0.30, -0.30), (0.72, 0.30))  # (low, high) xy of distractor centres: reachable, in view
DISTRACTOR_CLEARANCE = 0.10  # m (xy) from every keep-out point to the nearest point of a distractor
DISTRACTOR_GAP = 0.02  # m between distractors
DISTRACTOR_TRIES = 200


class Distractor(NamedTuple):
    """One static distractor: ``shape`` "box" | "cylinder", ``size`` (m; box edge, cylinder diameter and height),
    ``pos`` its centre [3] (resting on the table top: z = size / 2), ``rgba`` [4]."""

    shape: str
    size: float
    pos: tuple[float, float, float]
    rgba: tuple[float, float, float, float]

    @property
    def footprint_radius(self) -> float:
        """Radius (m) of the smallest vertical cylinder around it (boxes are axis-aligned)."""
        return self.size / 2 * (np.sqrt(2.0) if self.shape == "box" else 1.0)


@dataclass(frozen=True)
class Appearance:
    """What one reset draws; fields of factors that are off keep their nominal values (see the module docstring).

    factors: the factors applied.
    light_yaw / light_tilt: key light turn about the vertical / elevation change (rad).
    light_scale / light_tint: diffuse light multiplier and per-channel RGB multipliers [3].
    table_rgba: table colour [4] (None: nominal). table_texture: a name of TABLE_TEXTURES.
    table_texture_scale: checker square / noise speckle size (m; 0 for "plain").
    object_rgba: colour [4] of every object geom (None: nominal).
    camera_offsets: {exterior camera name: (dpos [3] (m, world axes), drot [3] (rad, camera-frame xyz Euler))}.
    distractors: the static distractors on the table.
    """

    factors: tuple[str, ...] = ()
    light_yaw: float = 0.0
    light_tilt: float = 0.0
    light_scale: float = 1.0
    light_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    table_rgba: tuple[float, float, float, float] | None = None
    table_texture: str = "plain"
    table_texture_scale: float = 0.0
    object_rgba: tuple[float, float, float, float] | None = None
    camera_offsets: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = field(
        default_factory=dict)
    distractors: tuple[Distractor, ...] = ()


def check_factors(names) -> tuple[str, ...]:
    """``names`` as a tuple after checking them; ``ValueError`` naming ``factors``, the bad names and the valid ones."""
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise ValueError(f"factors must be a list or tuple of names from {list(FACTORS)}, got {names!r}")
    names = tuple(names)
    unknown = [n for n in names if n not in FACTORS]
    if unknown:
        hint = (" ('all' is expanded by the evaluation suite, not by the env: pass factors=envs.factors.FACTORS)"
                if "all" in unknown else "")
        raise ValueError(f"factors: unknown name(s) {unknown}{hint}; valid: {list(FACTORS)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"factors: {repeated} given more than once; valid: {list(FACTORS)}")
    return names


# ---------------------------------------------------------------------------------------------------- sampling
def _rgb_distance(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a[:3], float) - np.asarray(b[:3], float)))


def _hsv_color(rng: np.random.Generator, hsv_range, avoid: Sequence) -> tuple[float, float, float, float]:
    """An opaque RGBA colour drawn uniformly in HSV ``(low, high)``, redrawn (up to 100 times) while within
    MIN_COLOR_DISTANCE of any colour of ``avoid``."""
    for _ in range(100):
        rgb = colorsys.hsv_to_rgb(*rng.uniform(*hsv_range))
        if all(_rgb_distance(rgb, c) >= MIN_COLOR_DISTANCE for c in avoid):
            break
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]), 1.0)


def _sample_distractors(rng: np.random.Generator, keep_out_xy: np.ndarray) -> tuple[Distractor, ...]:
    count = int(rng.integers(DISTRACTOR_COUNT[0], DISTRACTOR_COUNT[1] + 1))
    placed: list[Distractor] = []
    for _ in range(count):
        shape = DISTRACTOR_SHAPES[int(rng.integers(len(DISTRACTOR_SHAPES)))]
        size = float(rng.uniform(*DISTRACTOR_SIZE))
        rgba = _hsv_color(rng, DISTRACTOR_HSV, list(OBJECT_RGBA.values()))
        radius = Distractor(shape, size, (0.0, 0.0, 0.0), rgba).footprint_radius
        for _ in range(DISTRACTOR_TRIES):
            xy = rng.uniform(*DISTRACTOR_AREA)
            clear = all(np.linalg.norm(xy - k) >= DISTRACTOR_CLEARANCE + radius for k in keep_out_xy)
            apart = all(np.linalg.norm(xy - np.asarray(d.pos[:2])) >= radius + d.footprint_radius + DISTRACTOR_GAP
                        for d in placed)
            if clear and apart:
                placed.append(Distractor(shape, size, (float(xy[0]), float(xy[1]), size / 2), rgba))
                break
    return tuple(placed)


def sample_appearance(factors: Iterable[str], rng: np.random.Generator, keep_out_xy=()) -> Appearance:
    """Draw one reset's :class:`Appearance` for ``factors`` from ``rng``.

    ``keep_out_xy``: xy points [k, 2] the distractors keep DISTRACTOR_CLEARANCE from (object start, goal, home).
    ``rng`` gives one seed per factor of FACTORS (always all of them, in order), so a factor's draw does not
    depend on which others are on.
    """
    factors = check_factors(tuple(factors))
    streams = {name: np.random.default_rng(int(s)) for name, s in zip(FACTORS, rng.integers(2**63, size=len(FACTORS)))}
    kw: dict = {"factors": factors}
    if "lighting" in factors:
        r = streams["lighting"]
        kw["light_yaw"] = float(np.radians(r.uniform(-LIGHT_YAW_DEG, LIGHT_YAW_DEG)))
        kw["light_tilt"] = float(np.radians(r.uniform(-LIGHT_TILT_DEG, LIGHT_TILT_DEG)))
        kw["light_scale"] = float(r.uniform(*LIGHT_SCALE))
        kw["light_tint"] = tuple(float(t) for t in r.uniform(*LIGHT_TINT, size=3))
    if "table" in factors:
        r = streams["table"]
        kw["table_rgba"] = _hsv_color(r, TABLE_HSV, [TABLE_RGBA, *OBJECT_RGBA.values()])
        texture = TABLE_TEXTURES[int(r.integers(len(TABLE_TEXTURES)))]
        kw["table_texture"] = texture
        kw["table_texture_scale"] = float(r.uniform(*TEXTURE_SCALE[texture])) if texture != "plain" else 0.0
    if "object_color" in factors:
        kw["object_rgba"] = _hsv_color(streams["object_color"], OBJECT_HSV, [TABLE_RGBA, *OBJECT_RGBA.values()])
    if "camera" in factors:
        r = streams["camera"]
        turn = np.radians(CAMERA_TURN_DEG)
        kw["camera_offsets"] = {
            name: (tuple(float(x) for x in r.uniform(-CAMERA_SHIFT, CAMERA_SHIFT, 3)),
                   tuple(float(x) for x in r.uniform(-turn, turn, 3)))
            for name in CAMERAS
        }
    if "distractors" in factors:
        keep = np.asarray(keep_out_xy, float).reshape(-1, 2)
        kw["distractors"] = _sample_distractors(streams["distractors"], keep)
    return Appearance(**kw)


# ---------------------------------------------------------------------------------------------------- geometry
def light_rotation(direction, yaw: float, tilt: float) -> np.ndarray:
    """Rotation [3, 3] that tilts ``direction`` [3] by ``tilt`` (rad, about the horizontal axis perpendicular to
    it: an elevation change) and then turns it by ``yaw`` (rad) about the vertical."""
    d = np.asarray(direction, float)
    axis = np.cross(d, [0.0, 0.0, 1.0])
    n = np.linalg.norm(axis)
    axis = axis / n if n > 1e-9 else np.array([1.0, 0.0, 0.0])
    return (Rotation.from_euler("z", yaw) * Rotation.from_rotvec(axis * tilt)).as_matrix()


def look_at_frame(eye, target) -> np.ndarray:
    """Camera frame [3, 3] (columns: right, up, backward; the camera looks along -z) at ``eye`` looking at
    ``target`` with the world z up (the MuJoCo camera convention)."""
    fwd = np.asarray(target, float) - np.asarray(eye, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(right, fwd), -fwd], axis=1)


def turned_frame(frame, drot) -> np.ndarray:
    """A camera frame [3, 3] turned by ``drot`` (rad, xyz Euler in its own axes): ``frame @ R(drot)``."""
    return np.asarray(frame, float) @ Rotation.from_euler("xyz", drot).as_matrix()


def texture_image(kind: str) -> np.ndarray:
    """uint8 [64, 64, 3] grey texture (one period) that multiplies the table colour: "checker" (2 x 2 squares,
    1.0 / 0.6) or "noise" (16 x 16 speckles, each U(0.55, 1.0); fixed seed, so both backends show the same one)."""
    n = TEXTURE_CELLS[kind]
    if kind == "checker":
        cells = np.where(np.indices((n, n)).sum(0) % 2 == 0, 1.0, 0.6)
    elif kind == "noise":
        cells = np.random.default_rng(0xFAC7).uniform(0.55, 1.0, (n, n))
    else:
        raise ValueError(f"texture must be one of {list(TEXTURE_CELLS)}, got {kind!r}")
    px = TEXTURE_PIXELS // n
    grey = np.kron(cells, np.ones((px, px)))
    return np.repeat(np.round(grey * 255).astype(np.uint8)[..., None], 3, axis=2)


def texture_period(appearance: Appearance) -> float:
    """Side (m) of one texture image on the table: cells per image x square / speckle size."""
    return TEXTURE_CELLS[appearance.table_texture] * appearance.table_texture_scale
