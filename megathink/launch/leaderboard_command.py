"""`megathink leaderboard ROOT [--out DIR] [--order A,B,...]`: methods side by side over seeds.

ROOT is what examples/toy_leaderboard.sh writes: `ROOT/<entry>/seed_<n>/` run folders with an
RL summary each (megathink/plotting/leaderboard.py). Writes leaderboard.md, .csv and .png into
--out (default ROOT) and prints the markdown table. Exit 2 with one line for a bad ROOT.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from megathink.errors import MegathinkError

SUMMARY = "ROOT [--out DIR] [--order A,B]: the toy leaderboard, every method's mean and spread over seeds"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="megathink leaderboard", description=SUMMARY)
    parser.add_argument("root", type=Path, help="folder with <entry>/<seed run>/summary.json")
    parser.add_argument("--out", type=Path, default=None, help="where the table and figure go (default: ROOT)")
    parser.add_argument("--order", default="", help="comma-separated entry names, the table's row order")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from megathink.plotting.leaderboard import collect, markdown, write_leaderboard

    order = [name for name in args.order.split(",") if name]
    try:
        paths = write_leaderboard(args.root, args.out or args.root, order)
        print(markdown(collect(args.root, order)), end="")
    except MegathinkError as err:
        print(f"megathink leaderboard: error: {err}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"wrote {path}")
    return 0


__all__ = ["SUMMARY", "build_parser", "main"]
