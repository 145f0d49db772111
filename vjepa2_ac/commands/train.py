"""``vjepa2-ac train``: post-train the AC predictor on episode datasets or latent caches (torchrun for many GPUs)."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vjepa2_ac.atomic import removed_if_left_empty
from vjepa2_ac.commands.common import add_threads_argument, apply_threads, one_line


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (YAML value), e.g. --set total_steps=100; a field of a "
                             "mapping with a dotted key (--set predictor.depth=2); a mapping value merges into the "
                             "file's (repeatable)")


def _merged(base: dict, update: dict) -> dict:
    """``base`` with ``update`` merged in, nested mappings key by key."""
    out = dict(base)
    for key, value in update.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def apply_overrides(config_cls, config, overrides: list[str], prog: str = "train"):
    """``config`` with ``KEY=VALUE`` pairs applied (values parsed as YAML). ``a.b=V`` sets field ``b`` of the mapping
    field ``a``; a mapping value for a mapping field merges into it (``predictor={depth: 2}`` keeps the file's other
    predictor fields)."""
    import yaml

    if not overrides:
        return config
    d = config.to_dict()
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or "" in key.split("."):
            raise SystemExit(f"{prog}: --set expects KEY=VALUE (KEY may be dotted: predictor.depth), got {item!r}")
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise SystemExit(f"{prog}: --set {item}: not a YAML value ({one_line(err)})") from None
        *parents, last = key.split(".")
        target = d
        for i, part in enumerate(parents):
            if i == 0 and part not in target:
                raise SystemExit(f"{prog}: --set {item}: unknown {config_cls.__name__} key {part!r}; valid keys: "
                                 f"{sorted(d)}")
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise SystemExit(f"{prog}: --set {item}: {'.'.join(parents[:i + 1])} is not a mapping")
        target[last] = _merged(target[last], value) if isinstance(value, dict) and isinstance(target.get(last),
                                                                                           dict) else value
    try:
        return config_cls.from_dict(d)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"{prog}: --set: {one_line(err)}") from None


def load_config(config_cls, args: argparse.Namespace, prog: str = "train"):
    """The run's config from ``--config`` with ``--set`` overrides; ``None`` when resuming without ``--config``.

    A missing or unreadable file, invalid YAML, unknown keys and bad values exit with one line naming the file."""
    import yaml

    if args.config is None and not args.resume:
        raise SystemExit(f"{prog}: --config is required (unless --resume)")
    if args.config is None:
        if args.overrides:
            raise SystemExit(f"{prog}: --set needs --config")
        return None
    if not Path(args.config).is_file():
        raise SystemExit(f"{prog}: --config {args.config}: no such file")
    try:
        config = config_cls.from_yaml(args.config)
    except (OSError, TypeError, ValueError, yaml.YAMLError) as err:
        raise SystemExit(f"{prog}: --config {args.config}: {one_line(err)}") from None
    return apply_overrides(config_cls, config, args.overrides, prog)


def check_inputs(prog: str, option: str, paths: list[str] | None) -> None:
    """Every path of ``option`` (``--data`` ...) exists and is readable, or exit with one line naming it."""
    for p in paths or []:
        path = Path(p).expanduser()
        if not path.exists():
            raise SystemExit(f"{prog}: {option} {p}: no such file or directory")
        if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
            raise SystemExit(f"{prog}: {option} {p}: not readable")


@contextlib.contextmanager
def user_errors(prog: str, out: str | os.PathLike) -> Iterator[None]:
    """Run a command's work with a fail-safe ``--out``:

    * ``--out`` must be a writable directory (created here if missing), else exit with one line;
    * expected user errors (``ValueError``: bad values or data; ``OSError``: missing / unreadable / unwritable
      paths) exit with one line ``PROG: message`` instead of a traceback;
    * on any failure, the directories this command created for ``--out`` are removed again if no file was
      written into them.
    """
    with removed_if_left_empty(out) as path:
        if path.exists() and not path.is_dir():
            raise SystemExit(f"{prog}: --out {out}: not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as err:
            raise SystemExit(f"{prog}: --out {out}: not writable ({one_line(err)})") from None
        try:
            yield
        except (ValueError, OSError) as err:
            raise SystemExit(f"{prog}: {one_line(err)}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", metavar="DIR",
                        help="episode datasets (our HDF5 episodes, raw DROID, LeRobot v3) or latent caches; optional "
                             "with --resume (default: the run's)")
    parser.add_argument("--config", help="TrainConfig YAML (e.g. configs/ac_small_cpu.yaml); optional with --resume")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (checkpoints, metrics, model/)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in RUN_DIR from its latest checkpoint with the run's own --config, "
                             "--init, --data and --val-data (given again, each must be the run's; --data/--val-data "
                             "may name a moved dataset once the recorded path is gone)")
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
    if not args.data and not args.resume:
        raise SystemExit("train: --data is required (unless --resume)")
    config = load_config(TrainConfig, args)
    check_inputs("train", "--data", args.data)
    check_inputs("train", "--val-data", args.val_data)
    try:
        with user_errors("train", args.out):
            model_dir = train(config, args.data, args.out, resume=args.resume, init=args.init,
                              val_data=args.val_data, device=args.device, progress=not args.no_progress)
    finally:
        cleanup_distributed()
    print(f"saved world model to {model_dir}")
    return 0


if __name__ == "__main__":  # `torchrun --nproc_per_node K -m vjepa2_ac.commands.train ...` (same as the CLI)
    import sys

    _parser = argparse.ArgumentParser(prog="vjepa2-ac train")
    configure(_parser)
    sys.exit(run(_parser.parse_args()))
