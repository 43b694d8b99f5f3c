"""`megathink plot RUN_DIR [--out DIR]`: draw a run folder's figures as PNG files.

A plain command (argparse, no Hydra config): it reads what a finished or running job wrote
(`<stage>/metrics.jsonl`, `<stage>/eval/before.json` / `after.json`) and draws with
`megathink.plotting.plot_run`. Prints a note per skipped figure and the path of each file
written; exits 2 when nothing could be plotted or RUN_DIR is not a folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from megathink.plotting import PLOTS_DIR, plot_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="megathink plot",
        description="Draw PNG figures from a run folder: think ratio per level over RL steps (the "
        "Thinkless U-curve), per-level think ratio and accuracy before vs after RL, loss curves.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a job's output folder (holds sft/, rl/, ...)")
    parser.add_argument("--out", type=Path, metavar="DIR", help=f"where the PNGs go (default: RUN_DIR/{PLOTS_DIR})")
    return parser


def main(argv: list[str]) -> int:
    """Run the command; returns the exit status (0 drawn, 2 nothing to draw or bad RUN_DIR)."""
    args = build_parser().parse_args(argv)
    if not args.run_dir.is_dir():
        print(f"megathink plot: error: RUN_DIR {args.run_dir} is not a folder", file=sys.stderr)
        return 2
    report = plot_run(args.run_dir, args.out)
    for note in report.notes:
        print(f"note: {note}")
    if not report.written:
        print(
            f"megathink plot: error: nothing to plot under {args.run_dir} "
            "(no metrics.jsonl with numeric metrics, no eval/before.json or eval/after.json)",
            file=sys.stderr,
        )
        return 2
    for path in report.written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
