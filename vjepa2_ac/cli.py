"""``vjepa2-ac`` command-line entry point.

Each sub-command lives in ``vjepa2_ac/commands/<module>.py`` and provides ``configure(parser)`` and
``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vjepa2_ac.commands.common import one_line

# command name -> (module under vjepa2_ac.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("collect", "collect simulated episodes (expert, noisy expert, random) into an episode dataset"),
    "encode-dataset": ("encode_dataset", "run the frozen encoder once over a dataset and store normalised latents"),
    "pretrain-encoder": ("pretrain_encoder", "self-supervised V-JEPA pretraining of a small encoder on episode video"),
    "train": ("train", "post-train the AC predictor on episode datasets or latent caches (torchrun for many GPUs)"),
    "demo": ("demo", "a simulated episode (default: MuJoCo pick-and-place of the cube) planned from goal images; "
             "writes a video and a PNG sheet"),
    "eval": ("eval", "closed-loop success rates of a suite (recipe, paper, shift) with 95%% intervals over tasks x "
             "objects x backends (x factors), baselines and paired tests"),
    "eval-offline": ("eval_offline", "the jepa-wms offline protocol: plan K steps on recorded segments, compare "
                     "with the recorded actions"),
    "landscape": ("landscape", "energy landscape over xyz moves around the current pose for a (frame, goal) pair, "
                  "to PNG"),
    "imagine": ("imagine", "what the world model predicts, decoded to pixels: real vs predicted frames and goals "
                "(PNG grid, MP4, JSON)"),
    "train-decoder": ("train_decoder", "train the small pixel decoder that `imagine` uses on a model's frozen latents"),
    "robot": ("robot", "run the V-JEPA 2-AC planner on a robot (real or SimDriver); capture goal images"),
    "upgrade-planning": ("upgrade_planning", "convert a planning.json of the format before phases into phases"),
    "export": ("export", "collected or robot-loop episodes as a LeRobotDataset v3.0 directory"),
    "convert": ("convert", "a released or jepa-wms AC checkpoint as a predictor-only model directory for "
                "WorldModel.from_pretrained"),
}


def build_parser() -> argparse.ArgumentParser:
    from vjepa2_ac import __version__

    parser = argparse.ArgumentParser(prog="vjepa2-ac", description="Robot planning with the V-JEPA 2-AC world model.")
    parser.add_argument("--version", action="version", version=f"vjepa2-ac {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"vjepa2_ac.commands.{module_name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except USER_ERRORS as err:  # bad values, missing / unreadable files, missing extras: one line, exit 2
        if args.debug:
            raise
        print(f"vjepa2-ac {args.command}: error: {_one_line(err)} (--debug shows the traceback)", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # a command's own one-line refusal: the same format and exit code 2
        if not isinstance(exit_.code, str) or args.debug:
            raise
        message = exit_.code.removeprefix(f"{args.command}: ")
        print(f"vjepa2-ac {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"vjepa2-ac {args.command}: interrupted", file=sys.stderr)
        return 130


# What a user can cause and fix: shown as one line. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
               ModuleNotFoundError)


def _one_line(err: BaseException) -> str:
    if isinstance(err, ModuleNotFoundError) and err.name:
        return (f"the optional package {err.name!r} is not installed (see the extras in pyproject.toml, e.g. "
                f"pip install -e '.[{_EXTRAS.get(err.name, err.name)}]')")
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.strerror or err}: {err.filename}"
    return one_line(err)


_EXTRAS = {"franky": "franky", "panda_py": "panda-py", "pyrealsense2": "realsense", "cv2": "opencv"}


if __name__ == "__main__":
    sys.exit(main())
