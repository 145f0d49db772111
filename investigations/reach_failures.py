"""Why did a reach episode fail: a local minimum of the encoder's energy, or the planner? Replays ``eval --json`` files.

Each failed reach episode of the files (every episode with ``--all``) is re-run from its seed with its recorded actions
(the simulators are deterministic; a replay that ends more than 1 mm from the recorded final distance is reported).
From where the arm stopped, the env's own controller then walks it in a straight line to the goal, ``--step`` per
action (no planning), and every frame on the way is encoded and scored like the planner scores: the L1 energy to the
episode's goal image. Per episode:

* **stop**: distance to the goal (cm) and energy where the episode ended;
* **max on the way**: the highest energy of the frames between the stop and the goal;
* **rise**: max on the way minus the stop energy. Above ``--tolerance`` the arm stopped in a basin of the *real*
  energy (a local minimum, or a plateau that rises before it falls): a planner that descends this energy one short
  move at a time cannot leave it, however good its predictor, so the encoder limits that episode. At or below it the
  energy falls (or stays flat) all the way to the goal, and the planner or the predictor missed a way down;
* **falls by a quarter at**: the distance to the goal (cm) at which the energy first falls a quarter of the way from
  the stop energy to the goal energy; close to the goal, though the stop is far, means a plateau;
* **goal**: the energy with the arm at the goal.

With ``--from-start`` the walk starts from the episode's start (the home pose) instead of where it stopped, so the
successes and the failures of a file can be compared on the same footing: how far from its goal the energy starts to
fall, seen from where the planner set out.

    python investigations/reach_failures.py runs/eval/reach.json [more.json ...] [--model DIR] [--all] [--from-start]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vjepa2_ac.agent import BUNDLED_MODEL, load_world_model, make_env  # noqa: E402
from vjepa2_ac.eval import load_recorded_cells, replay_recorded, task_distance  # noqa: E402

REPLAY_TOLERANCE = 0.001  # m: a replay ending farther than this from the recorded final distance is reported
ARRIVED = 0.005  # m: the straight walk stops this close to the goal


def walk_to_goal(env, wm, obs: dict, z_goal: torch.Tensor, step: float, max_steps: int = 100) -> list[tuple[float, float]]:
    """From the env's current state, step the tool centre point straight at the goal (``step`` m per action) and
    return ``[(distance m, energy)]`` of every frame, the current one first."""
    base = env.unwrapped
    goal = np.asarray(base.goal["position"], float)
    profile = []
    for _ in range(max_steps + 1):
        offset = goal - base.get_ee_pose()[0]
        distance = float(np.linalg.norm(offset))
        with torch.no_grad():
            energy = float(wm.energy(wm.encode(obs["pixels"][None]), z_goal))
        profile.append((distance, energy))
        if distance < ARRIVED:
            break
        action = np.zeros(7, np.float32)
        action[:3] = offset * min(1.0, step / distance)
        obs, *_ = env.step(action)
    return profile


def diagnose(env, wm, episode: dict, step: float, from_start: bool = False) -> dict[str, float]:
    """Replay one recorded reach episode (none of it with ``from_start``), then walk to its goal; the figures of the
    module docstring (m, energy)."""
    obs, info = replay_recorded(env, episode, steps=0 if from_start else None)
    stop_distance = task_distance(env, "reach")
    with torch.no_grad():
        z_goal = wm.encode(info["goals"]["final"][None])  # [1, 1, N, D]
    profile = walk_to_goal(env, wm, obs, z_goal, step)
    energies = [e for _, e in profile]
    quarter = energies[0] - 0.25 * (energies[0] - energies[-1])
    falls_at = next(d for d, e in profile if e <= quarter)
    return {"stop_distance": stop_distance, "stop_energy": energies[0], "max_energy": max(energies),
            "rise": max(energies) - energies[0], "falls_at": falls_at, "goal_distance": profile[-1][0],
            "goal_energy": energies[-1],
            "replay_error": 0.0 if from_start else abs(stop_distance - float(episode["final_distance"]))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSON files written by `vjepa2-ac eval --json`")
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="the model that planned the episodes "
                        "(default: the bundled one)")
    parser.add_argument("--all", action="store_true", help="every reach episode, not only the failed ones")
    parser.add_argument("--from-start", action="store_true", help="walk from the episode's start, not its end")
    parser.add_argument("--step", type=float, default=0.03, help="m per action of the straight walk (default: 0.03)")
    parser.add_argument("--tolerance", type=float, default=0.001,
                        help="energy rise above which the stop counts as a local minimum (default: 0.001)")
    args = parser.parse_args(argv)
    if not 0 < args.step <= 0.075:
        parser.error(f"--step must be in (0, 0.075] m, got {args.step}")
    if args.tolerance < 0:
        parser.error(f"--tolerance must be >= 0, got {args.tolerance}")
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        parser.error(f"files: no such file {missing}")
    wm = load_world_model(args.model)[0]
    where = "start" if args.from_start else "stop"
    print(f"| file | seed | success | {where} (cm) | {where} energy | max on the way | rise | falls by a quarter at (cm) | "
          f"goal (cm) | goal energy | real energy at the {where} |")
    print("|---" * 11 + "|")
    found: dict[bool, list[dict[str, float]]] = {True: [], False: []}  # by the episode's success
    mismatched = []
    for path in args.files:
        try:
            planning, cells = load_recorded_cells(path, "reach")
        except ValueError as err:
            raise SystemExit(f"files: {err}") from None
        for cell in cells:
            env = make_env(planning, "reach", object=cell["object"], backend=cell["backend"], max_steps=1000)
            try:
                for episode in cell["episode_results"]:
                    if episode["success"] and not args.all:
                        continue
                    d = diagnose(env, wm, episode, args.step, args.from_start)
                    found[bool(episode["success"])].append(d)
                    if d["replay_error"] > REPLAY_TOLERANCE:
                        mismatched.append(episode["seed"])
                    print(f"| {path.name} | {episode['seed']} | {episode['success']} | {100 * d['stop_distance']:.1f} | "
                          f"{d['stop_energy']:.4f} | {d['max_energy']:.4f} | {d['rise']:+.4f} | "
                          f"{100 * d['falls_at']:.1f} | {100 * d['goal_distance']:.1f} | {d['goal_energy']:.4f} | "
                          f"{'local minimum' if d['rise'] > args.tolerance else 'falls to the goal'} |")
            finally:
                env.close()
    print()
    for success, rows in found.items():
        if rows:
            minima = sum(d["rise"] > args.tolerance for d in rows)
            print(f"{'succeeded' if success else 'failed'}: {len(rows)} episodes; a local minimum of the real energy "
                  f"at the {where} (rise > {args.tolerance}): {minima}/{len(rows)}; the energy falls by a quarter at a "
                  f"median {100 * np.median([d['falls_at'] for d in rows]):.1f} cm from the goal, the {where} being "
                  f"{100 * np.median([d['stop_distance'] for d in rows]):.1f} cm from it")
    if mismatched:
        print(f"warning: the replay ends elsewhere than recorded for seeds {mismatched}", file=sys.stderr)


if __name__ == "__main__":
    main()
