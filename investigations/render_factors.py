"""Example images of every factor of variation (``envs.factors``) for docs/factors.md.

One PNG per backend and factor level (``nominal`` and each factor alone), pick-and-place with the cube, seeds 0
and 1 (one row each): the first frame from ``exterior_1`` at 256 x 256, and from ``dual`` (the bundled model's
observation) at 128 x 128 over that camera's final goal image. Same seed = same task in every image; only what the
factor changes differs. PNGs are palette-quantised (where that is lossless to the eye) to keep docs/images/factors/ small.

    python investigations/render_factors.py                       # writes docs/images/factors/*.png
    python investigations/render_factors.py --out /tmp/factors --seeds 3 4
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import envs  # noqa: E402, F401  (registers the envs)
from envs.factors import FACTORS  # noqa: E402
from envs.franka_env import BACKENDS  # noqa: E402

NOMINAL = "nominal"


def example_row(backend: str, level: str, seed: int) -> np.ndarray:
    """uint8 [256, 384, 3]: exterior_1 frame (256 px) | dual frame (128 px) over dual final goal image (128 px)."""
    factors = [] if level == NOMINAL else [level]
    parts = {}
    for camera, size in (("exterior_1", 256), ("dual", 128)):
        env = gymnasium.make("vjepa2ac/FrankaPickPlace-v0", backend=backend, object="cube", camera=camera,
                             image_size=size, factors=factors)
        obs, info = env.reset(seed=seed)
        parts[camera] = (obs["pixels"], info["goal_pixels"])
        env.close()
    dual = np.concatenate(parts["dual"], axis=0)
    return np.concatenate([parts["exterior_1"][0], dual], axis=1)


def save_png(img: np.ndarray, path: Path, max_error: int = 24) -> None:
    """Palette PNG (256 colours, no dithering) when no pixel moves more than ``max_error`` (sum over RGB), else
    RGB; written to a temporary file and moved into place."""
    out = Image.fromarray(img).quantize(256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE)
    if np.abs(np.asarray(out.convert("RGB"), int) - img).sum(-1).max() > max_error:
        out = Image.fromarray(img)
    tmp = path.with_suffix(".tmp.png")
    out.save(tmp, optimize=True)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "factors")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for backend in BACKENDS:
        for level in (NOMINAL, *FACTORS):
            img = np.concatenate([example_row(backend, level, s) for s in args.seeds], axis=0)
            path = args.out / f"{backend}_{level}.png"
            save_png(img, path)
            total += path.stat().st_size
            print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)", flush=True)
    print(f"total {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
