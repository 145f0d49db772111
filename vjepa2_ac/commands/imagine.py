"""``vjepa2-ac imagine``: look at what the world model predicts. Resets a simulated task, executes ``--actions``
(a JSON list of 7-vectors, or a ``.json`` / ``.npy`` file) or the model's own CEM plan each step (``--plan``), and
decodes to pixels, with the model's decoder (``<model dir>/decoder/``, see ``vjepa2-ac train-decoder``):

* the real frames and their reconstructions (decoder of the encoded frame: what the latent keeps);
* the one-step predictions: ``WorldModel.rollout`` of the executed action from the real latent and state of the
  step before (with ``--plan``: the first frame of the plan's imagined rollout);
* the open-loop prediction: the rollout of all executed actions from the first frame alone (as far as the
  predictor's time steps go);
* the goal images and their reconstructions.

Writes ``DIR/imagine.png`` (rows real / decoded real / predicted, columns time, goals at the end),
``DIR/imagine.mp4`` (the same side by side, one video frame per step) and ``DIR/imagine.json`` (actions, latent L1
of each prediction to the encoded real frame, decoder reconstruction errors). The decoder is only for looking: the
planner never sees it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vjepa2_ac.commands.common import (
    BACKENDS,
    TASK_CHOICES,
    add_model_arguments,
    check_output_dir,
    load_model_or_exit,
    write_json,
)

ROWS = ("real", "decoded real", "predicted 1 step", "predicted open loop")
MAX_COLUMNS = 16  # time columns of the PNG; longer episodes show evenly spaced steps


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="pick-place", help=f"one of {', '.join(TASK_CHOICES)} (default: %(default)s)")
    parser.add_argument("--object", default="cube", help="object of the task (default: %(default)s)")
    parser.add_argument("--backend", default="mujoco", choices=BACKENDS)
    parser.add_argument("--seed", type=int, default=0, help="env (and planner) seed (default: %(default)s)")
    parser.add_argument("--actions", default=None, metavar="FILE_OR_JSON",
                        help="actions to execute: a JSON list of 7-vectors [dx, dy, dz, droll, dpitch, dyaw, dg], "
                             "or a .json / .npy file holding one")
    parser.add_argument("--plan", action="store_true", help="execute the model's own plan (its agent) each step")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps to run (default: all --actions; with --plan the task's max_steps)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--decoder", default=None, metavar="DIR",
                        help="decoder directory (default: the model's decoder/; needed with --checkpoint)")
    add_model_arguments(parser)
    parser.add_argument("--fps", type=float, default=2.0, help="video frame rate (default: %(default)s)")


# ---------------------------------------------------------------------------------------------------- inputs
def read_actions(text: str) -> Any:
    """``--actions``: a JSON list of 7-vectors, or a ``.json`` / ``.npy`` file -> float32 ``[T, 7]``."""
    import json

    import numpy as np

    path = Path(text).expanduser()
    try:
        if path.is_file():
            if path.suffix.lower() == ".npy":
                data = np.load(path, allow_pickle=False)
            elif path.suffix.lower() == ".json":
                data = json.loads(path.read_text())
            else:
                raise SystemExit(f"--actions {text}: expected a .json or .npy file")
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                raise SystemExit(f"--actions {text!r}: no such file, and not a JSON list of 7-vectors") from None
        actions = np.asarray(data, dtype=np.float32)
    except (OSError, ValueError, TypeError) as err:
        raise SystemExit(f"--actions {text}: cannot read actions ({err})") from None
    if actions.ndim == 1 and actions.shape == (7,):
        actions = actions[None]
    if actions.ndim != 2 or actions.shape[1] != 7 or len(actions) == 0:
        raise SystemExit(f"--actions: expected a list of 7-vectors [T >= 1, 7] (dx, dy, dz, droll, dpitch, dyaw, dg), "
                         f"got shape {list(actions.shape)}")
    if not np.isfinite(actions).all():
        raise SystemExit("--actions: contains NaN or inf")
    return actions


def _check_args(args: argparse.Namespace) -> None:
    from envs.tasks import task_spec

    if args.task not in TASK_CHOICES:
        raise SystemExit(f"--task: unknown task {args.task!r}; expected one of {list(TASK_CHOICES)}")
    objects = task_spec(args.task).objects
    if args.object not in objects:
        raise SystemExit(f"--object: unknown object {args.object!r} for task {args.task}; expected one of "
                         f"{list(objects)}")
    if (args.actions is None) == (not args.plan):
        raise SystemExit("give one of --actions FILE_OR_JSON or --plan")
    if args.steps is not None and args.steps < 1:
        raise SystemExit(f"--steps must be >= 1, got {args.steps}")
    if not args.fps > 0:
        raise SystemExit(f"--fps must be > 0, got {args.fps}")


def _load_decoder(args: argparse.Namespace):
    """The decoder of ``--decoder`` or of ``--model`` (on the CPU), or one line naming the argument."""
    from vjepa2_ac.model.decoder import LatentDecoder, decoder_dir, load_decoder

    if args.decoder is not None:
        try:
            return LatentDecoder.from_pretrained(args.decoder)
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f"--decoder {args.decoder}: {err}") from None
    if args.checkpoint is not None:
        raise SystemExit("--checkpoint: a released checkpoint has no decoder; pass --decoder DIR")
    try:
        directory = decoder_dir(args.model)
    except FileNotFoundError as err:
        raise SystemExit(f"--model {args.model}: {err}") from None
    try:
        return load_decoder(args.model)
    except FileNotFoundError:
        raise SystemExit(f"--model {args.model} has no decoder ({directory}: decoder/ next to config.json); train "
                         f"one with `vjepa2-ac train-decoder --data DATASET --model {args.model} --out RUN_DIR "
                         "--install`") from None


def _goal_list(goals: dict, names: list[str] | None = None) -> list[tuple[str, Any]]:
    """``(name, image)`` of the goals named (default: all), without a repeated image (``final`` aliases one)."""
    import numpy as np

    picked: list[tuple[str, Any]] = []
    for name in names or list(goals):
        image = goals.get(name)
        if image is not None and not any(np.array_equal(image, other) for _, other in picked):
            picked.append((name, image))
    return picked


# ---------------------------------------------------------------------------------------------------- episode
def _run_episode(args, wm, planning, actions) -> dict[str, Any]:
    """Reset, step, record frames / states / actions (and, with ``--plan``, each step's plan and its imagined
    rollout's first latent)."""
    import numpy as np
    import torch

    from vjepa2_ac.agent import build_agent, make_env

    task_steps = planning.task(args.task).max_steps
    steps = args.steps or (len(actions) if actions is not None else task_steps)
    if actions is not None and steps > len(actions):
        raise SystemExit(f"--steps {steps} exceeds the {len(actions)} actions given by --actions")
    env = make_env(planning, args.task, object=args.object, backend=args.backend, max_steps=max(steps, task_steps))
    plans, imagined, energies, phases = [], [], [], []
    try:
        obs, info = env.reset(seed=args.seed)
        agent = None
        if args.plan:
            agent = build_agent(wm, planning, args.task, info["goals"], seed=args.seed)
            names = list(dict.fromkeys(spec.goal for spec in planning.task(args.task).phases))
            goals = _goal_list(info["goals"], names)
        else:
            goals = _goal_list(info["goals"])
        frames, states, done = [obs["pixels"]], [obs["agent_pos"]], []
        for t in range(steps):
            if agent is not None:
                action = agent.act(obs["pixels"], obs["agent_pos"])
                record = agent.records[-1]
                plan = record.plan.actions.detach().float()  # [H, 7]
                with torch.no_grad():
                    z = wm.encode(np.asarray(obs["pixels"])[None])  # [1, 1, N, D]
                    s = torch.as_tensor(np.asarray(obs["agent_pos"], np.float32), device=z.device).reshape(1, 1, 7)
                    z_plan, _ = wm.rollout(z, s, plan[None].to(z.device))  # [1, H, N, D]: the imagined rollout
                plans.append(plan.cpu().numpy())
                imagined.append(z_plan[0, 0].cpu())
                energies.append(float(record.plan_energy))
                phases.append(int(record.phase))
            else:
                action = actions[t]
            obs, _, terminated, truncated, info = env.step(np.asarray(action, np.float32))
            frames.append(obs["pixels"])
            states.append(obs["agent_pos"])
            done.append(np.asarray(action, np.float32))
            if terminated or truncated:
                break
    finally:
        env.close()
    return {"frames": np.stack(frames), "states": np.stack(states).astype(np.float32), "actions": np.stack(done),
            "goals": goals, "plans": plans, "imagined": imagined, "plan_energies": energies, "phases": phases,
            "success": bool(info.get("is_success", False))}


def predict(wm, frames, states, actions) -> dict[str, Any]:
    """Encoded real latents ``[T+1, N, D]``, one-step predictions ``[T, N, D]`` (each from the real latent and state
    before it) and the open-loop prediction ``[L, N, D]`` from frame 0 (``L = min(T, predictor time steps)``)."""
    import torch

    with torch.no_grad():
        z = wm.encode(frames)[0]  # [T+1, N, D]
        s = torch.as_tensor(states, device=z.device)
        a = torch.as_tensor(actions, device=z.device)
        one_step, _ = wm.rollout(z[:-1, None], s[:-1, None], a[:, None])  # [T, 1, N, D]
        horizon = min(len(a), wm.config.max_steps)
        open_loop, _ = wm.rollout(z[None, :1], s[None, :1], a[None, :horizon])  # [1, L, N, D]
    return {"real": z.cpu(), "one_step": one_step[:, 0].cpu(), "open_loop": open_loop[0].cpu()}


def _l1(a, b) -> list[float]:
    """Per-row mean absolute difference of two ``[T, ...]`` tensors."""
    return [round(float(x), 6) for x in (a - b).abs().flatten(1).mean(1)]


# ---------------------------------------------------------------------------------------------------- outputs
def plot_grid(path: Path, rows: list[list[Any]], col_titles: list[str], title: str, *, cell: float = 0.95,
              dpi: int = 100) -> Path:
    """PNG grid (matplotlib ``Figure`` API): ``rows[r][c]`` a uint8 ``[S, S, 3]`` image or ``None`` (empty cell)."""
    from matplotlib.figure import Figure

    from vjepa2_ac.eval.plots import save_figure

    n_rows, n_cols = len(rows), len(col_titles)
    fig = Figure(figsize=(cell * n_cols + 0.6, cell * n_rows + 0.5), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            image = rows[r][c]
            if image is not None:
                ax.imshow(image, interpolation="nearest")
            if r == 0:
                ax.set_title(col_titles[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(ROWS[r].replace(" ", "\n", 1), fontsize=7)
    fig.suptitle(title, fontsize=8)
    return save_figure(fig, path, dpi=dpi)


def video_frames(columns: list[list[Any]], labels: list[str], scale: int = 2):
    """uint8 ``[T, H, W, 3]``: each video frame the panels of one column side by side (labels on a strip above;
    empty panels black), upscaled ``scale`` x."""
    import numpy as np
    from PIL import Image, ImageDraw

    size = next(p for col in columns for p in col if p is not None).shape[0] * scale
    header = 14
    out = []
    for col, label in zip(columns, labels):
        canvas = Image.new("RGB", (size * len(col), size + header))
        draw = ImageDraw.Draw(canvas)
        for i, panel in enumerate(col):
            if panel is not None:
                canvas.paste(Image.fromarray(panel).resize((size, size), Image.NEAREST), (i * size, header))
                draw.text((i * size + 3, 1), f"{ROWS[i]}  {label}" if i == 0 else ROWS[i], fill=(255, 255, 255))
        out.append(np.asarray(canvas))
    return np.stack(out)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from vjepa2_ac.data.video import write_video
    from vjepa2_ac.model.decoder import target_images

    _check_args(args)
    actions = read_actions(args.actions) if args.actions is not None else None
    out = check_output_dir(args.out)
    decoder = _load_decoder(args)
    wm, planning, description = load_model_or_exit(args)
    decoder.to(wm.device)
    dc = decoder.config
    if (dc.num_tokens, dc.embed_dim) != (wm.tokens_per_frame, wm.embed_dim):
        raise SystemExit(f"--decoder: made for latents [N={dc.num_tokens}, D={dc.embed_dim}], but the model gives "
                         f"[N={wm.tokens_per_frame}, D={wm.embed_dim}]")
    ep = _run_episode(args, wm, planning, actions)
    pred = predict(wm, ep["frames"], ep["states"], ep["actions"])
    if args.plan:  # the one-step prediction is the plan's imagined first frame
        pred["one_step"] = torch.stack(ep["imagined"])
    z_real, steps = pred["real"], len(ep["actions"])

    # decode: frames, predictions, goals
    size = dc.image_size
    as_uint8 = lambda x: (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # noqa: E731
    real_t = target_images(ep["frames"], size)  # [T+1, 3, S, S] in [0, 1]
    with torch.no_grad():
        rec_t = decoder(z_real.to(decoder.device)).cpu()
        one_t = decoder(pred["one_step"].to(decoder.device)).cpu()
        open_t = decoder(pred["open_loop"].to(decoder.device)).cpu()
        goal_frames = np.stack([g for _, g in ep["goals"]]) if ep["goals"] else None
        z_goal = wm.encode(goal_frames)[0].cpu() if goal_frames is not None else None
        goal_rec_t = decoder(z_goal.to(decoder.device)).cpu() if z_goal is not None else None
    goal_real_t = target_images(goal_frames, size) if goal_frames is not None else None

    # errors
    recon = _l1(rec_t, real_t)
    summary = {
        "task": args.task, "object": args.object, "backend": args.backend, "seed": args.seed,
        "mode": "plan" if args.plan else "actions", "model": description, "steps": steps, "success": ep["success"],
        "actions": ep["actions"].round(6).tolist(),
        "latent_l1_one_step": _l1(pred["one_step"], z_real[1:]),
        "latent_l1_open_loop": _l1(pred["open_loop"], z_real[1:1 + len(pred["open_loop"])]),
        "latent_l1_no_change": _l1(z_real[:-1], z_real[1:]),  # baseline: predict that nothing moves
        "pixel_l1_one_step": _l1(one_t, real_t[1:]),
        "pixel_l1_open_loop": _l1(open_t, real_t[1:1 + len(open_t)]),
        "decoder_recon_l1": recon,
        "decoder_recon_l1_mean": float(np.mean(recon)),
        "goals": {name: {"decoder_recon_l1": e} for (name, _), e in
                  zip(ep["goals"], _l1(goal_rec_t, goal_real_t) if goal_rec_t is not None else [])},
        "open_loop_steps": len(pred["open_loop"]),
    }
    if args.plan:
        summary.update(plans=[p.round(6).tolist() for p in ep["plans"]], plan_energies=ep["plan_energies"],
                       phases=ep["phases"])

    # images per column: time t = 0..T, then the goals
    real, rec, one, opn = as_uint8(real_t), as_uint8(rec_t), as_uint8(one_t), as_uint8(open_t)
    columns = [[real[t], rec[t], one[t - 1] if t else None, opn[t - 1] if 0 < t <= len(opn) else None]
               for t in range(steps + 1)]
    labels = [f"t={t}" for t in range(steps + 1)]
    if goal_rec_t is not None:
        g_real, g_rec = as_uint8(goal_real_t), as_uint8(goal_rec_t)
        columns += [[g_real[i], g_rec[i], None, None] for i in range(len(g_real))]
        labels += [f"goal: {name}" for name, _ in ep["goals"]]
    shown = list(range(steps + 1))
    if len(shown) > MAX_COLUMNS:
        shown = sorted(set(np.linspace(0, steps, MAX_COLUMNS).round().astype(int).tolist()))
    shown += list(range(steps + 1, len(columns)))
    mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    title = (f"{args.task} / {args.object}, seed {args.seed}, {summary['mode']}: latent L1 one-step "
             f"{mean(summary['latent_l1_one_step']):.3f}, open loop {mean(summary['latent_l1_open_loop']):.3f}, "
             f"no change {mean(summary['latent_l1_no_change']):.3f}; decoder recon L1 "
             f"{summary['decoder_recon_l1_mean']:.3f}\n{args.model if args.checkpoint is None else description}")
    out.mkdir(parents=True, exist_ok=True)
    png = plot_grid(out / "imagine.png", [[columns[c][r] for c in shown] for r in range(len(ROWS))],
                    [labels[c] for c in shown], title)
    video = write_video(video_frames(columns, labels), out / "imagine.mp4", fps=args.fps)
    summary.update(png=str(png), video=str(video))
    write_json(out / "imagine.json", summary)
    print(f"{steps} steps ({summary['mode']}): mean latent L1 one-step {mean(summary['latent_l1_one_step']):.4f}, "
          f"open loop {mean(summary['latent_l1_open_loop']):.4f} (no-change baseline "
          f"{mean(summary['latent_l1_no_change']):.4f}); decoder recon L1 {summary['decoder_recon_l1_mean']:.4f}")
    print(f"wrote {png}, {video} and {out / 'imagine.json'}")
    return 0
