"""`megathink plot RUN_DIR [--out DIR]`: draw a run folder's figures as PNG files;
`megathink plot --compare RUN_DIR... --out DIR`: several runs' summaries side by side.

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
from megathink.plotting.compare import COMPARE_FILE, plot_comparison


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="megathink plot",
        description="Draw PNG figures from a run folder: think ratio per level over RL steps (the "
        "Thinkless U-curve), per-level think ratio and accuracy before vs after RL, loss curves.",
    )
    parser.add_argument(
        "run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="a job's output folder (holds sft/, rl/, ...)"
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help=f"where the PNGs go (default: RUN_DIR/{PLOTS_DIR})")
    parser.add_argument(
        "--compare", action="store_true",
        help="draw one figure of every RUN_DIR's summary.json side by side (per-level short / NoThinking "
        f"ratio, accuracy, length) as DIR/{COMPARE_FILE}; needs --out",
    )
    return parser


def main(argv: list[str]) -> int:
    """Run the command; returns the exit status (0 drawn, 2 nothing to draw or bad RUN_DIR)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for run_dir in args.run_dirs:
        if not run_dir.is_dir():
            print(f"megathink plot: error: RUN_DIR {run_dir} is not a folder", file=sys.stderr)
            return 2
    if args.compare:
        return _compare(args.run_dirs, args.out)
    if len(args.run_dirs) > 1:
        print("megathink plot: error: give one RUN_DIR, or several with --compare --out DIR", file=sys.stderr)
        return 2
    args.run_dir = args.run_dirs[0]
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


def _compare(run_dirs: list[Path], out: Path | None) -> int:
    if out is None:
        print("megathink plot: error: --compare needs --out DIR (where compare.png goes)", file=sys.stderr)
        return 2
    notes: list[str] = []
    path = plot_comparison(run_dirs, out, notes)
    for note in notes:
        print(f"note: {note}")
    if path is None:
        print("megathink plot: error: no RUN_DIR has a summary.json to compare", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
