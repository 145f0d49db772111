"""``vjepa2-ac pretrain-encoder``: self-supervised V-JEPA pretraining of a (small) encoder on episode video."""

from __future__ import annotations

import argparse

from vjepa2_ac.commands.common import add_threads_argument, apply_threads
from vjepa2_ac.commands.train import add_override_argument, check_inputs, load_config, user_errors


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", metavar="DIR",
                        help="episode datasets (frames); optional with --resume (default: the run's)")
    parser.add_argument("--config", help="PretrainConfig YAML (e.g. configs/encoder_small_cpu.yaml); optional "
                                         "with --resume")
    parser.add_argument("--out", required=True, metavar="RUN_DIR",
                        help="run directory; the encoder is saved to RUN_DIR/model (HF layout)")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its latest checkpoint with the run's own "
                             "--config, --init and --data (given again, each must be the run's)")
    parser.add_argument("--init", metavar="DIR", help="start from an HF-layout VJEPA2Model directory")
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda:LOCAL_RANK if available)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_override_argument(parser)
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    from vjepa2_ac.training.config import PretrainConfig
    from vjepa2_ac.training.distributed import cleanup_distributed
    from vjepa2_ac.training.pretrain import pretrain

    apply_threads(args)
    if not args.data and not args.resume:
        raise SystemExit("pretrain-encoder: --data is required (unless --resume)")
    config = load_config(PretrainConfig, args, "pretrain-encoder")
    check_inputs("pretrain-encoder", "--data", args.data)
    try:
        with user_errors("pretrain-encoder", args.out):
            model_dir = pretrain(config, args.data, args.out, resume=args.resume, init=args.init,
                                 device=args.device, progress=not args.no_progress)
    finally:
        cleanup_distributed()
    print(f"saved encoder to {model_dir} (load with Encoder.from_pretrained)")
    return 0


if __name__ == "__main__":  # `torchrun --nproc_per_node K -m vjepa2_ac.commands.pretrain_encoder ...` (same as the CLI)
    import sys

    _parser = argparse.ArgumentParser(prog="vjepa2-ac pretrain-encoder")
    configure(_parser)
    sys.exit(run(_parser.parse_args()))
