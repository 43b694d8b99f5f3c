"""`megathink convert hf-to-megatron | megatron-to-hf`: checkpoint conversion (argparse, no Hydra).

    megathink convert hf-to-megatron --hf-dir IN --out OUT --tp N --pp M [--precision fp32|bf16]
    megathink convert megatron-to-hf --ckpt IN --out OUT [--dtype bfloat16|float32|float16]

Each runs its own processes (no torchrun). Errors in the input (missing folder, a layout the
model cannot be split into, an unknown tensor) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from megathink.errors import MegathinkError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="megathink convert", description="Convert between HF folders and megatron checkpoints.")
    sub = parser.add_subparsers(dest="direction", required=True)
    to_mc = sub.add_parser("hf-to-megatron", help="an HF folder -> a megatron distributed checkpoint at TP x PP")
    to_mc.add_argument("--hf-dir", required=True, help="HF checkpoint folder (config.json, safetensors, tokenizer)")
    to_mc.add_argument("--out", required=True, help="new checkpoint folder")
    to_mc.add_argument("--tp", type=int, default=1, help="tensor-parallel size (default 1)")
    to_mc.add_argument("--pp", type=int, default=1, help="pipeline-parallel size (default 1)")
    to_mc.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="parameter precision")
    to_hf = sub.add_parser("megatron-to-hf", help="a megatron checkpoint (any TP x PP) -> an HF folder")
    to_hf.add_argument("--ckpt", required=True, help="megatron checkpoint folder written by megathink")
    to_hf.add_argument("--out", required=True, help="new HF folder")
    to_hf.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"), help="cast weights on export")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        from megathink.models.megatron.convert import (
            hf_to_megatron_checkpoint,
            megatron_to_hf_dir,
        )
    except ImportError as err:
        print(f"megathink convert: error: {err}; install megatron-core: pip install -e '.[megatron]'", file=sys.stderr)
        return 2
    try:
        if args.direction == "hf-to-megatron":
            if args.tp < 1 or args.pp < 1:
                raise MegathinkError(f"--tp {args.tp} --pp {args.pp} is invalid: both must be >= 1.")
            out = hf_to_megatron_checkpoint(args.hf_dir, args.out, tp=args.tp, pp=args.pp, precision=args.precision)
        else:
            out = megatron_to_hf_dir(args.ckpt, args.out, dtype=args.dtype)
    except MegathinkError as err:
        print(f"megathink convert: error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
