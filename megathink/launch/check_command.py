"""`megathink check <same overrides as train>`: will this run start? Every check, no weights.

Composes and validates the whole config (every dataclass rule; a bad value exits 2 naming the
field, as every command does), then runs megathink/launch/preflight.py's checks: the model's
config.json and architecture, the parallel layout against the heads, layers and world size
(torchrun's WORLD_SIZE, or plan.world_size, which the sbatch library sets), the tokenizer and
its control tokens, the data files and their columns, the output folder, and the memory planner.
Prints one screen, one line per check, and exits 0 iff all pass, 1 otherwise. The sbatch
library runs it before it starts engines or torchrun (with `--presample-first` when its
AdaptThink job writes the Rbar_ref file itself before RL); `megathink train` / `sft` run the same
checks at start-up.
"""

from __future__ import annotations

import sys

from megathink.config import RunConfig

SUMMARY = "validate a run before the allocation: config, model shape vs layout, tokenizer, data, output, memory; exit 0 iff all pass"


def format_checks(cfg: RunConfig, results: list) -> str:
    p = cfg.parallel
    lines = [
        f"megathink check: stages {', '.join(cfg.stages)}; algorithm {cfg.algorithm.name}; backend {p.backend}"
        + (f" (tp {p.tp}, pp {p.pp}, cp {p.cp})" if p.backend == "megatron" else ""),
        "  [ok]   config     composed and validated",
    ]
    width = max(len(r.name) for r in results) if results else 0
    for result in results:
        mark = "[ok]  " if result.ok else "[FAIL]"
        lines.append(f"  {mark} {result.name.ljust(width)}  {result.detail}")
    failed = [r.name for r in results if not r.ok]
    lines.append("all checks passed" if not failed else f"{len(failed)} check(s) failed: {', '.join(failed)}")
    return "\n".join(lines)


PRESAMPLE_FIRST_FLAG = "--presample-first"
"""Command-line flag (not a config field): a presample pass runs before RL and writes Rbar_ref."""

presample_first = False
"""Set by the CLI from `PRESAMPLE_FIRST_FLAG` before the Hydra app runs."""


def run_check_command(cfg: RunConfig) -> None:
    from megathink.launch.preflight import preflight, world_size_of

    results = preflight(cfg, world_size=world_size_of(cfg), presample_first=presample_first)
    print(format_checks(cfg, results))
    sys.stdout.flush()
    sys.exit(0 if all(r.ok for r in results) else 1)


__all__ = ["PRESAMPLE_FIRST_FLAG", "SUMMARY", "format_checks", "run_check_command"]
