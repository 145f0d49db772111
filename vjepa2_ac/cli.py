"""``vjepa2-ac`` command-line entry point.

Each sub-command lives in ``vjepa2_ac/commands/<module>.py`` and provides ``configure(parser)`` and
``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module under vjepa2_ac.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("collect", "collect simulated episodes (expert, noisy expert, random) into an episode dataset"),
    "encode-dataset": ("encode_dataset", "run the frozen encoder once over a dataset and store normalised latents"),
    "pretrain-encoder": ("pretrain_encoder", "self-supervised V-JEPA pretraining of a small encoder on episode video"),
    "train": ("train", "post-train the AC predictor on episode datasets or latent caches (torchrun for many GPUs)"),
    "demo": ("demo", "a simulated episode (default: MuJoCo pick-and-place of the cube) planned from goal images; "
             "writes a video and a PNG sheet"),
    "eval": ("eval", "closed-loop success rates with 95%% intervals over tasks x objects x backends, with baselines"),
    "landscape": ("landscape", "energy landscape over xyz moves around the current pose for a (frame, goal) pair, "
                  "to PNG"),
    "robot": ("robot", "run the V-JEPA 2-AC planner on a robot (real or SimDriver); capture goal images"),
    "upgrade-planning": ("upgrade_planning", "convert a planning.json of the format before phases into phases"),
}


def build_parser() -> argparse.ArgumentParser:
    from vjepa2_ac import __version__

    parser = argparse.ArgumentParser(prog="vjepa2-ac", description="Robot planning with the V-JEPA 2-AC world model.")
    parser.add_argument("--version", action="version", version=f"vjepa2-ac {__version__}")
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
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
