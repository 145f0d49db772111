"""One-off tool: vendor the Panda + Robotiq 2F-85 assets from the ``gym-hil==0.1.14`` wheel, decimating visuals.

The MuJoCo Menagerie meshes inside that wheel are ~35 MB of text OBJ/STL with ~198k visual triangles; llvmpipe
rendering is vertex bound, so we keep a decimated copy (``fast-simplification``) that looks the same at 256 px.

Usage (run once; the result is committed under ``envs/assets/``)::

    pip download --no-deps gym-hil==0.1.14 -d /tmp/x && unzip -q /tmp/x/gym_hil-0.1.14-*.whl -d /tmp/x/w
    pip install fast-simplification
    python envs/assets/tools/decimate_meshes.py /tmp/x/w/gym_hil/assets --reduction 0.8

Visual meshes with more than ``--min-faces`` triangles are reduced by ``--reduction``; all meshes are written as
compact OBJ (positions + faces; MuJoCo recomputes normals). Collision meshes are copied unchanged.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1]


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [V, 3] and triangles [F, 3] of a (triangulated) OBJ, ignoring normals/uvs."""
    verts, faces = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            idx = [int(tok.split("/")[0]) - 1 for tok in line.split()[1:]]
            faces.extend([idx[0], idx[i], idx[i + 1]] for i in range(1, len(idx) - 1))
    return np.asarray(verts, np.float64), np.asarray(faces, np.int64)


def read_stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Binary STL -> vertices [3F, 3], triangles [F, 3]."""
    raw = path.read_bytes()
    n = int(np.frombuffer(raw[80:84], np.uint32)[0])
    rec = np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    tri = np.frombuffer(raw[84 : 84 + n * rec.itemsize], rec)["v"].astype(np.float64)
    return tri.reshape(-1, 3), np.arange(3 * n).reshape(n, 3)


def weld(verts: np.ndarray, faces: np.ndarray, tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """Merge duplicate vertices (the source files repeat them per face), drop degenerate triangles."""
    key = np.round(verts / tol).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return verts[first], faces[keep]


def write_obj(path: Path, verts: np.ndarray, faces: np.ndarray, source: str) -> None:
    lines = [f"# decimated from {source} (gym-hil 0.1.14 / MuJoCo Menagerie) by decimate_meshes.py"]
    lines += [f"v {x:.6g} {y:.6g} {z:.6g}" for x, y, z in verts]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="gym_hil/assets folder of the unpacked gym-hil 0.1.14 wheel")
    ap.add_argument("--reduction", type=float, default=0.8, help="fraction of triangles removed (0..1)")
    ap.add_argument("--min-faces", type=int, default=1500, help="meshes with fewer faces are not decimated")
    args = ap.parse_args()
    import fast_simplification

    xml = (args.src / "panda.xml").read_text()
    total_in = total_out = 0
    for rel in sorted(set(re.findall(r'file="([^"]+)"', xml))):
        src = args.src / rel
        collision = rel.startswith("franka_emika_panda") and (rel.endswith(".stl") or "collision" in rel)
        dst = OUT / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if collision:
            shutil.copyfile(src, dst)
            continue
        verts, faces = read_stl(src) if src.suffix == ".stl" else read_obj(src)
        verts, faces = weld(verts, faces)
        total_in += len(faces)
        if len(faces) > args.min_faces:
            verts, faces = fast_simplification.simplify(verts, faces, target_reduction=args.reduction)
        total_out += len(faces)
        dst = dst.with_suffix(".obj")
        write_obj(dst, verts, faces, rel)
        xml = xml.replace(f'file="{rel}"', f'file="{Path(rel).with_suffix(".obj").as_posix()}"')
    (OUT / "panda.xml").write_text(
        "<!-- MuJoCo Menagerie Panda + Robotiq 2F-85 as shipped in gym-hil 0.1.14 (Apache-2.0; 2F-85 BSD-2-Clause);\n"
        "     visual meshes decimated by tools/decimate_meshes.py. -->\n" + xml
    )
    print(f"visual triangles: {total_in} -> {total_out}")


if __name__ == "__main__":
    main()
