"""``vjepa2-ac convert CHECKPOINT --out DIR``: a released V-JEPA 2-AC checkpoint (``vjepa2-ac-vitg.pt``) or a jepa-wms
one (``droid_vj2ac_noprop.pth.tar``) as a predictor-only model directory (``config.json`` +
``predictor.safetensors``, the encoder recorded by hub id) that ``WorldModel.from_pretrained`` loads. Only the
predictor is read: the 11.7 GB released file gives about 1.2 GB."""

from __future__ import annotations

import argparse

from vjepa2_ac.commands.common import add_cost_arguments, check_context_window, check_output_dir, one_line


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="the checkpoint file or URL")
    parser.add_argument("--out", required=True, help="the model directory to write (replaced atomically)")
    parser.add_argument("--encoder", default="facebook/vjepa2-vitg-fpc64-256",
                        help="hub id or directory of the encoder the model records (default: %(default)s)")
    parser.add_argument("--layout", choices=("official", "jepa-wms"), default=None,
                        help="checkpoint layout (default: detected from the predictor's keys)")
    parser.add_argument("--predictor", default=None, metavar="JSON",
                        help="ACPredictorConfig fields the weights cannot tell (default: the released img_size 256, "
                             "num_heads 16), e.g. '{\"img_size\": 64, \"num_heads\": 2}'")
    add_cost_arguments(parser, saved=True)


def run(args: argparse.Namespace) -> int:
    import json

    from vjepa2_ac.model.checkpoint import CheckpointError
    from vjepa2_ac.model.world_model import WorldModel

    check_context_window(args, "convert")
    try:
        fields = json.loads(args.predictor) if args.predictor else None
    except json.JSONDecodeError as err:
        raise SystemExit(f"convert: --predictor is not JSON ({one_line(err)})") from None
    if fields is not None and not isinstance(fields, dict):
        raise SystemExit(f"convert: --predictor must be a JSON object of ACPredictorConfig fields, got {args.predictor}")
    check_output_dir(args.out)
    try:
        wm = WorldModel.from_official_checkpoint(args.checkpoint, load_encoder=False, layout=args.layout,
                                                 predictor_config=fields, cost=args.cost,
                                                 context_window=args.context_window)
    except (OSError, CheckpointError, ValueError, TypeError) as err:
        raise SystemExit(f"convert: {args.checkpoint}: {one_line(err)}") from None
    try:
        out = wm.save_pretrained(args.out, encoder_reference=args.encoder)
    except OSError as err:
        raise SystemExit(f"convert: --out {args.out}: {one_line(err)}") from None
    size = sum(f.stat().st_size for f in out.iterdir())
    params = sum(p.numel() for p in wm.predictor.parameters())
    print(f"wrote {out}: predictor {params:,} parameters ({size / 2**20:.1f} MiB), encoder {args.encoder}, "
          f"state tokens {wm.config.state_tokens}, cost {wm.cost}, context window {wm.context_window}")
    return 0
