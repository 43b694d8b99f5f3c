"""`megathink sweep-report SWEEP_DIR [--out DIR] [--params KEY ...]`: a sweep's results as tables and figures.

A plain command (argparse, no Hydra config) over the folder a Hydra multirun left
(`megathink train -m algorithm.alpha=... reward.gamma=...`, basic or submitit launcher): it
prints the markdown table, writes it with a CSV and one PNG per swept parameter
(`megathink.plotting.sweep_report`), and prints each file's path and a note per job or figure
left out. Exits 2 when SWEEP_DIR is not a folder or no job in it has a summary.json yet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from megathink.plotting.sweep_report import REPORT_DIR, report_sweep


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="megathink sweep-report",
        description="Tabulate (markdown + CSV) and plot (PNG) accuracy, think ratio and length of every job "
        "of a Hydra multirun sweep against its swept parameters (e.g. algorithm.alpha and reward.gamma).",
    )
    parser.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the multirun folder (holds 0/, 1/, ...)")
    parser.add_argument("--out", type=Path, metavar="DIR", help=f"where the files go (default: SWEEP_DIR/{REPORT_DIR})")
    parser.add_argument(
        "--params", nargs="+", metavar="KEY",
        help="the parameters to tabulate and plot against (default: the overrides that differ between jobs)",
    )
    return parser


def main(argv: list[str]) -> int:
    """Run the command; returns the exit status (0 written, 2 bad SWEEP_DIR or no finished job)."""
    args = build_parser().parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"megathink sweep-report: error: SWEEP_DIR {args.sweep_dir} is not a folder", file=sys.stderr)
        return 2
    report = report_sweep(args.sweep_dir, args.out, args.params)
    for note in report.notes:
        print(f"note: {note}")
    if not report.finished:
        found = len(report.sweep.points)
        print(
            f"megathink sweep-report: error: none of the {found} job folder(s) under {args.sweep_dir} has a "
            "summary.json (the RL stage writes it when it finishes)",
            file=sys.stderr,
        )
        return 2
    print(report.written[0].read_text(encoding="utf-8"), end="")
    for path in report.written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
