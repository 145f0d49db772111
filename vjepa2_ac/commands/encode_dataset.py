"""``vjepa2-ac encode-dataset``: run the frozen encoder once over a dataset and store normalised latents."""

from __future__ import annotations

import argparse

from vjepa2_ac.commands.common import add_threads_argument, apply_threads


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR", help="episode datasets, in order")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--encoder", metavar="HUB_ID_OR_DIR", help="V-JEPA 2 encoder (HF hub id or directory)")
    source.add_argument("--model", metavar="PATH_OR_NAME",
                        help="take the encoder of a world model (saved dir, bundled name, or official .pt)")
    parser.add_argument("--out", required=True, metavar="CACHE_DIR", help="cache directory (resumable)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                        help="storage dtype of the latents")
    parser.add_argument("--batch-frames", type=int, default=64, help="frames encoded at once")
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda:LOCAL_RANK if available)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from vjepa2_ac.commands.train import check_inputs, user_errors
    from vjepa2_ac.training.distributed import cleanup_distributed, setup_distributed
    from vjepa2_ac.training.latent_cache import encode_dataset

    apply_threads(args)
    check_inputs("encode-dataset", "--data", args.data)
    info = setup_distributed(args.device)
    try:
        with user_errors("encode-dataset", args.out):
            encoder = _load_encoder(args, info.device)
            with torch.inference_mode():
                out = encode_dataset(args.data, encoder, args.out, dtype=args.dtype,
                                     frames_per_batch=args.batch_frames, progress=not args.no_progress,
                                     dist_info=info)
    finally:
        cleanup_distributed()
    if info.is_main:
        print(f"wrote latent cache {out}")
    return 0


def _load_encoder(args: argparse.Namespace, device):
    """The encoder of ``--encoder`` or ``--model``; a missing / unloadable one raises ``OSError`` naming it."""
    try:
        if args.encoder:
            from vjepa2_ac.model.encoder import Encoder

            return Encoder.from_pretrained(args.encoder, device=device)
        from vjepa2_ac.training.ac_trainer import load_init_model

        encoder = load_init_model(args.model, load_encoder=True).encoder
    except OSError as err:
        option = "--encoder" if args.encoder else "--model"
        raise FileNotFoundError(f"{option} {args.encoder or args.model}: {err}") from err
    if encoder is None:
        raise SystemExit(f"encode-dataset: --model {args.model} has no encoder")
    return encoder.to(device)


if __name__ == "__main__":  # `torchrun --nproc_per_node K -m vjepa2_ac.commands.encode_dataset ...` (same as the CLI)
    import sys

    _parser = argparse.ArgumentParser(prog="vjepa2-ac encode-dataset")
    configure(_parser)
    sys.exit(run(_parser.parse_args()))
