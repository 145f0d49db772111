"""``vjepa2-ac train``: post-train the AC predictor on episode datasets or latent caches (torchrun for many GPUs)."""

from __future__ import annotations

import argparse

from vjepa2_ac.commands.common import add_threads_argument, apply_threads


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (YAML value), e.g. --set total_steps=100 (repeatable)")


def apply_overrides(config_cls, config, overrides: list[str]):
    """``config`` with ``KEY=VALUE`` pairs applied (values parsed as YAML)."""
    import yaml

    if not overrides:
        return config
    d = config.to_dict()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        d[key.strip()] = yaml.safe_load(value)
    try:
        return config_cls.from_dict(d)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"--set: {err}") from err


def load_config(config_cls, args: argparse.Namespace):
    """The run's config from ``--config`` with ``--set`` overrides; ``None`` when resuming without ``--config``."""
    if args.config is None and not args.resume:
        raise SystemExit("--config is required (unless --resume)")
    if args.config is None:
        if args.overrides:
            raise SystemExit("--set needs --config")
        return None
    return apply_overrides(config_cls, config_cls.from_yaml(args.config), args.overrides)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="episode datasets (our HDF5 episodes, raw DROID, LeRobot v3) or latent caches")
    parser.add_argument("--config", help="TrainConfig YAML (e.g. configs/ac_small_cpu.yaml); optional with --resume")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (checkpoints, metrics, model/)")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its latest checkpoint")
    parser.add_argument("--init", metavar="PATH_OR_NAME",
                        help="start from an official checkpoint (.pt path or URL) or a saved/bundled world model")
    parser.add_argument("--val-data", nargs="+", metavar="DIR", help="validation datasets (else val_fraction)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK if available)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_override_argument(parser)
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    from vjepa2_ac.training.ac_trainer import train
    from vjepa2_ac.training.config import TrainConfig
    from vjepa2_ac.training.distributed import cleanup_distributed

    apply_threads(args)
    config = load_config(TrainConfig, args)
    try:
        model_dir = train(config, args.data, args.out, resume=args.resume, init=args.init, val_data=args.val_data,
                          device=args.device, progress=not args.no_progress)
    finally:
        cleanup_distributed()
    print(f"saved world model to {model_dir}")
    return 0


if __name__ == "__main__":  # `torchrun --nproc_per_node K -m vjepa2_ac.commands.train ...` (same as the CLI)
    import sys

    _parser = argparse.ArgumentParser(prog="vjepa2-ac train")
    configure(_parser)
    sys.exit(run(_parser.parse_args()))
