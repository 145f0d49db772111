"""Where does pick-and-place fail? Replays the episodes an ``eval --json`` file recorded, stage by stage.

Each pick-and-place episode of the file is re-run from its seed with its recorded actions (the simulators are
deterministic, so the replay reproduces the episode; a replayed success that differs from the recorded one is
reported). No model is needed. Per cell (task x object x backend x policy) the table counts episodes where:

Each recorded action belongs to a phase (the episode's ``phases``), and each phase plans towards a goal image named by
what it shows (the episode's ``phase_goals``): "pregrasp" (the open gripper over the object, with the env option
``pregrasp_height``), "grasped", "lifted", "placed". The stages below go by these names, so the steps towards
"pregrasp" and "grasped" are the grasp phase however many phases plan towards them (e.g. a second phase on "grasped"
that closes the gripper in place), and "switch" is the first step planned towards "lifted":

* **open at object**: at some step of the grasp phase the open gripper's pinch point is within 2 cm of the object,
  which it does not hold;
* **grasped**: both fingers touch the object at some step of the grasp phase (on the way to the "grasped" image);
* **held at switch**: the object is grasped at the last step before the switch to the "lifted" image;
* **kept 3 steps**: ... and still grasped for the first 3 steps towards the "lifted" image;
* **opens at switch**: ... and the first action towards the "lifted" image opens the gripper (negative command);
* **lifted 5 cm**: the object rose >= 5 cm above its rest height at some step;
* **success**: the replayed episode succeeded.

With ``--model DIR`` (the model that planned the episodes) it also scores, by the predictor and by the real next frame
(one physics step, rendered and encoded), two pairs of actions and counts how often each scorer prefers the second:
at the first "open at object" state, "stay" against "close the gripper" (energy to the "grasped" image); at every
"held at switch" state, "lift 5 cm, gripper held" against "lift 5 cm and open" (energy to the "lifted" image).

    python investigations/pick_place_stages.py runs/eval/pp.json [more.json ...] [--model DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from vjepa2_ac.agent import PlanningConfig, make_env  # noqa: E402
from vjepa2_ac.eval import load_recorded_cells, replay_recorded  # noqa: E402

COLUMNS = ("episodes", "open at object", "grasped", "held at switch", "kept 3 steps", "opens at switch", "lifted 5 cm",
           "success")
KEEP_STEPS = 3
LIFTED = 0.05  # m above the object's rest height
NEAR = 0.02  # m from the pinch point to the object: "open at object"
GRASP_GOALS = ("pregrasp", "grasped")  # the goal images of the grasp phase
LIFT_GOAL = "lifted"  # the goal image after the grasp: its first step is the "switch"
# the action pairs --model scores: (goal image, first action, second action, (state, first, second, preference))
CHOICES = {
    "grasp": ("grasped", np.zeros(7, np.float32), np.array([0, 0, 0, 0, 0, 0, 0.75], np.float32),
              ("open at object", "stay", "close the gripper", "prefers close")),
    "release": (LIFT_GOAL, np.array([0, 0, 0.05, 0, 0, 0, 0], np.float32),
                np.array([0, 0, 0.05, 0, 0, 0, -0.7], np.float32),
                ("held at switch", "lift 5 cm, gripper held", "lift 5 cm and open", "prefers open")),
}


def choice_energies(wm, env, episode: dict, steps: int, choice: str) -> np.ndarray:
    """``[2, 2]`` energies to the choice's goal image of (first, second action) x (predicted, real) after ``steps``
    recorded actions."""
    import torch

    goal, *pair, _ = CHOICES[choice]
    obs, info = replay_recorded(env, episode, steps)
    actions = torch.as_tensor(np.stack(pair))[:, None]  # [2, 1, 7]
    with torch.no_grad():
        z_goal = wm.encode(info["goals"][goal][None])  # [1, 1, N, D]
        z0 = wm.encode(obs["pixels"][None]).expand(2, -1, -1, -1)
        s0 = torch.as_tensor(obs["agent_pos"]).float()[None, None].expand(2, 1, 7)
        predicted = wm.energy(wm.rollout(z0, s0, actions)[0], z_goal).numpy()
        frames = np.stack([replay_recorded(env, episode, steps, a)[0]["pixels"] for a in pair])
        real = wm.energy(wm.encode(frames[:, None]), z_goal).numpy()
    return np.stack([predicted, real], axis=1)


def step_goals(episode: dict, phase_goals: Sequence[str] | None = None) -> list[str]:
    """The goal image each recorded action was planned towards: the episode's ``phases`` (phase index per action)
    mapped through its ``phase_goals`` (goal name per phase; ``phase_goals`` when the record has none)."""
    names = episode.get("phase_goals") or phase_goals
    if names is None:
        raise ValueError(f"episode of seed {episode['seed']} records no phase_goals: pass the planning config's")
    return [names[i] for i in episode["phases"]]


def replay_episode(env, episode: dict, phase_goals: Sequence[str] | None = None
                   ) -> tuple[dict[str, bool], dict[str, int]]:
    """Re-run one recorded pick-and-place episode; returns the stage flags of the module docstring and the step
    counts after which the ``--model`` choices are scored (``"grasp"``: the first open-at-object state,
    ``"release"``: the held-at-switch state; absent when the episode has none). ``phase_goals``: the goal name of
    each phase, for records without ``phase_goals`` (see :func:`step_goals`)."""
    env.reset(seed=episode["seed"])
    base = env.unwrapped
    sim = base.sim
    actions = np.asarray(episode["actions"], dtype=np.float32)  # [T, 7]
    goals = step_goals(episode, phase_goals)
    grasp_phase = [goal in GRASP_GOALS for goal in goals]  # the steps towards "pregrasp" and "grasped"
    grasped, heights, info, marks = [], [], {"is_success": False}, {}
    for t, (action, in_grasp) in enumerate(zip(actions, grasp_phase)):
        _, _, _, _, info = env.step(action)
        grasped.append(bool(sim.object_grasped()))
        heights.append(float(sim.object_pose()[0][2] - sim.object_rest_z))
        pinch = base.get_ee_pose()[0] - sim.grasp_offset
        if (in_grasp and "grasp" not in marks and base.get_commanded_state()[6] < 0.5 and not grasped[-1]
                and np.linalg.norm(pinch - sim.object_pose()[0]) < NEAR):
            marks["grasp"] = t + 1
    switch = goals.index(LIFT_GOAL) if LIFT_GOAL in goals else None  # first step planned towards the lift
    held = switch is not None and switch > 0 and grasped[switch - 1]
    if held:
        marks["release"] = switch
    return {
        "open at object": "grasp" in marks,
        "grasped": any(g for g, in_grasp in zip(grasped, grasp_phase) if in_grasp),
        "held at switch": held,
        "kept 3 steps": held and all(grasped[switch:switch + KEEP_STEPS]),
        "opens at switch": held and bool(actions[switch, 6] < 0),
        "lifted 5 cm": max(heights, default=0.0) >= LIFTED,
        "success": bool(info["is_success"]),
    }, marks


def replay_cell(cell: dict, planning: PlanningConfig, wm=None) -> tuple[dict[str, int], list[int], dict[str, list]]:
    """Stage counts for one pick-and-place cell, the seeds whose replayed success differs from the record and, with
    a world model ``wm``, the ``[2, 2]`` energies of each choice (``"grasp"``, ``"release"``) where it arises."""
    env = make_env(planning, cell["task"], object=cell["object"], backend=cell["backend"],
                   max_steps=max(len(e["actions"]) for e in cell["episode_results"]))
    counts = dict.fromkeys(COLUMNS, 0)
    mismatched, energies = [], {choice: [] for choice in CHOICES}
    phase_goals = [phase.goal for phase in planning.task("pick-place").phases]  # for records without phase_goals
    try:
        for episode in cell["episode_results"]:
            flags, marks = replay_episode(env, episode, phase_goals)
            counts["episodes"] += 1
            for key, value in flags.items():
                counts[key] += int(value)
            if flags["success"] != bool(episode["success"]):
                mismatched.append(int(episode["seed"]))
            if wm is not None:
                for choice, steps in marks.items():
                    energies[choice].append(choice_energies(wm, env, episode, steps, choice))
    finally:
        env.close()
    return counts, mismatched, energies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSON files written by `vjepa2-ac eval --json`")
    parser.add_argument("--model", default=None, help="model dir: also score closing and letting go (see above)")
    args = parser.parse_args(argv)
    wm = None
    if args.model is not None:
        from vjepa2_ac.agent import load_world_model

        wm = load_world_model(args.model)[0]
    scored: dict[str, list[np.ndarray]] = {choice: [] for choice in CHOICES}
    print("| file | object | backend | policy | " + " | ".join(COLUMNS) + " |")
    print("|---" * (4 + len(COLUMNS)) + "|")
    for path in args.files:
        try:
            planning, cells = load_recorded_cells(path, "pick-place")
        except ValueError as err:
            raise SystemExit(f"files: {err}") from None
        for cell in cells:
            counts, mismatched, energies = replay_cell(cell, planning, wm)
            for choice, found in energies.items():
                scored[choice] += found
            print(f"| {path.name} | {cell['object']} | {cell['backend']} | {cell['policy']} | "
                  + " | ".join(str(counts[c]) for c in COLUMNS) + " |")
            if mismatched:
                print(f"warning: the replay's success differs from the record for seeds {mismatched}", file=sys.stderr)
    if wm is None:
        return
    print("\nMean energy to the goal image of each choice (lower is preferred), over the states where it arises:\n")
    print("| state | scorer | first action | second action | prefers the second |\n|---|---|---|---|---|")
    for choice, found in scored.items():
        state, first, second, prefers = CHOICES[choice][-1]
        e = np.stack(found) if found else np.zeros((0, 2, 2))  # [S, 2 (first, second action), 2 (predicted, real)]
        mean = e.mean(axis=0) if len(e) else np.full((2, 2), np.nan)
        for j, scorer in enumerate(("predictor", "real next frame")):
            print(f"| {state} | {scorer} | {first}: {mean[0, j]:.5f} | {second}: {mean[1, j]:.5f} | "
                  f"{prefers}: {int((e[:, 1, j] < e[:, 0, j]).sum())}/{len(e)} |")


if __name__ == "__main__":
    main()
