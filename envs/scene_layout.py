"""Scene layout shared by the MuJoCo and PyBullet backends (no simulator imports): home pose, cameras, colours,
object sizes, and composite camera views."""

from __future__ import annotations

import numpy as np

# DROID-style home: gripper pointing down ~0.25 m above the table in front of the robot.
HOME_QPOS = np.array([0.0, -0.2, 0.0, -2.3, 0.0, 2.1, 0.785398])
# Exterior cameras (DROID-like: beside and in front of the robot, looking at the workspace) and their look-at point.
CAMERAS = {
    "exterior_1": ((1.05, 0.55, 0.85), (0.38, 0.0, 0.16)),
    "exterior_2": ((1.05, -0.55, 0.85), (0.38, 0.0, 0.16)),
    # Closer exterior view framing only the task area (objects, goals, gripper): what small encoders plan from.
    "workspace": ((0.95, 0.38, 0.56), (0.48, 0.0, 0.13)),
    # The two halves of the "dual" view: a side view (x right, z up; the depth lost by one camera is y) and a high
    # front view (x and y), both framing the whole task workspace at every reachable gripper height.
    "side": ((0.48, 1.10, 0.45), (0.48, 0.0, 0.20)),
    "top": ((0.95, 0.0, 1.10), (0.48, 0.0, 0.12)),
    # The halves of "dual_close": the same two viewpoints zoomed ~1.5x onto the task volume, each rendered square and
    # squeezed into its band (SQUEEZED_COMPOSITES). Gripper positions of the reach box (x 0.35-0.65, |y| <= 0.22,
    # z 0.02-0.40) stay in view, a gripper that wanders beyond it can leave the view (docs/experiments.md: reach suffers).
    "side_close": ((0.50, 1.10, 0.24), (0.50, 0.0, 0.22)),
    "top_close": ((0.95, 0.0, 1.10), (0.50, 0.0, 0.14)),
}
EXTERIOR_CAMERAS = tuple(CAMERAS)
CAMERA_FOVY = 55.0
CAMERA_FOVYS = {"side": 42.0, "top": 38.0, "side_close": 28.0, "top_close": 34.0}  # vertical field of view (deg) where not CAMERA_FOVY
# Composite views: named cameras rendered into horizontal bands, stacked top to bottom. "dual" (side over top)
# removes the single camera's line-of-sight valley; it is the bundled model's observation. "dual_wrist" adds the
# wrist camera as a third band, as a real Franka cell has one: a held object fills it, one left on the table does not;
# "dual_wrist_large" gives the wrist band half the height (COMPOSITE_ROWS), so the energy weighs it as much as both
# exterior views together. A band may be a tuple of cameras, tiled side by side (equal widths, leftover columns first):
# "dual_wrist_tiled" puts side and top next to each other in the upper half and the wrist view in the lower half, so
# each exterior view is square (4 x 4 patches at 128 px) instead of a 2-patch-high strip as in "dual_wrist_large".
COMPOSITE_CAMERAS = {"dual": ("side", "top"), "dual_close": ("side_close", "top_close"),
                     "dual_wrist": ("side", "top", "wrist"), "dual_wrist_large": ("side", "top", "wrist"),
                     "dual_wrist_tiled": (("side", "top"), "wrist")}
COMPOSITE_ROWS = {"dual_wrist_large": (1, 1, 2)}  # relative band heights where not equal
# Composites whose parts are rendered with the band's width and k = round(width / band height) times its height, then
# averaged over each k rows: a square field of view squeezed into a wide band, so the task volume fills the band and
# objects get k times the horizontal resolution of a plain band (4 cm cube: ~9 x 5 px at 128 px vs ~3 x 3 in "dual").
SQUEEZED_COMPOSITES = frozenset({"dual_close"})


def band_rows(camera: str, height: int) -> list[int]:
    """Rows of each band of composite ``camera`` at ``height``: proportional to its COMPOSITE_ROWS weights (equal by
    default), rounded down, the first bands taking one leftover row each."""
    weights = COMPOSITE_ROWS.get(camera, (1,) * len(COMPOSITE_CAMERAS[camera]))
    if height < sum(weights):
        raise ValueError(f"height must be >= {sum(weights)} for camera {camera!r}, got {height}")
    return split(height, weights)


def split(total: int, weights) -> list[int]:
    """``total`` split in proportion to ``weights``, rounded down, the first parts taking one leftover each."""
    sizes = [total * w // sum(weights) for w in weights]
    return [n + (i < total - sum(sizes)) for i, n in enumerate(sizes)]


def composite_parts(camera: str) -> tuple[str, ...]:
    """The plain cameras of composite ``camera``, band by band and left to right."""
    return tuple(n for band in COMPOSITE_CAMERAS[camera] for n in ((band,) if isinstance(band, str) else band))


def camera_fovy(name: str) -> float:
    """Vertical field of view (degrees) of an exterior camera."""
    return CAMERA_FOVYS.get(name, CAMERA_FOVY)


def render_composite(render_view, camera: str, height: int, width: int) -> np.ndarray:
    """uint8 [height, width, 3] image of composite ``camera``: ``render_view(name, h, w)`` per part, stacked in
    bands of :func:`band_rows` rows; a band of several cameras tiles them side by side in equal columns
    (:func:`split`)."""
    bands = []
    for band, h in zip(COMPOSITE_CAMERAS[camera], band_rows(camera, height)):
        names = (band,) if isinstance(band, str) else band
        if width < len(names):
            raise ValueError(f"width must be >= {len(names)} for camera {camera!r}, got {width}")
        tiles = []
        for name, w in zip(names, split(width, (1,) * len(names))):
            k = max(1, round(w / h)) if camera in SQUEEZED_COMPOSITES else 1
            img = render_view(name, h * k, w)
            if k > 1:  # average each k rows (rounded): the square view squeezed into its band
                img = ((img.reshape(h, k, w, -1).astype(np.uint16).sum(axis=1) + k // 2) // k).astype(np.uint8)
            tiles.append(img)
        bands.append(np.concatenate(tiles, axis=1))
    return np.concatenate(bands, axis=0)


TABLE_RGBA = (0.62, 0.48, 0.33, 1.0)
OBJECT_RGBA = {"cube": (0.85, 0.15, 0.12, 1.0), "cup": (0.15, 0.35, 0.8, 1.0)}
CUBE_HALF = 0.02
CUP_RADIUS, CUP_HEIGHT, CUP_WALL = 0.032, 0.08, 0.004
