"""`megathink` console entry point: `megathink <command> [hydra overrides]`.

Each command is a Hydra app whose primary config is `hydra_conf/<command>.yaml`, so every
Hydra feature works unchanged: `group=option`, `a.b=value`, `-m` multirun sweeps, launchers,
`--cfg job`, and `megathink <command> --help`, which lists the config groups.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from megathink.config import RunConfig
from megathink.errors import MegathinkError
from megathink.launch import check_command
from megathink.launch.check_command import SUMMARY as CHECK_SUMMARY
from megathink.launch.check_command import run_check_command
from megathink.launch.config_groups import (
    CONFIG_PACKAGE,
    config_groups,
    group_options,
    unknown_group_option,
)
from megathink.launch.eval_command import SUMMARY as EVAL_SUMMARY
from megathink.launch.eval_command import run_eval_command
from megathink.launch.plan_command import SUMMARY as PLAN_SUMMARY
from megathink.launch.plan_command import check_before_training, run_plan_command
from megathink.launch.preflight import require_preflight
from megathink.launch.presample_command import SUMMARY as PRESAMPLE_SUMMARY
from megathink.launch.presample_command import run_presample_command
from megathink.launch.schema import register_schema, to_run_config
from megathink.trainer.preemption import StagePreempted


@dataclass(frozen=True)
class Command:
    summary: str
    run: Callable[[RunConfig], object]


def _run_train(cfg: RunConfig) -> object:
    from megathink.trainer.pipeline import run_pipeline

    check_before_training(cfg)  # the memory planner (GPU runs only), from config.json alone
    require_preflight(cfg)  # model shape vs layout, tokenizer, data, output: before any weights load
    return run_pipeline(cfg)


def _run_sft(cfg: RunConfig) -> object:
    from megathink.trainer.pipeline import run_pipeline

    cfg = replace(cfg, stages=["sft"])
    check_before_training(cfg)
    require_preflight(cfg)
    return run_pipeline(cfg)


COMMANDS: dict[str, Command] = {
    "train": Command("run the configured pipeline stages (the main job; `stages=[...]`)", _run_train),
    "sft": Command("Thinkless stage 1: SFT warm-up on both answer forms", _run_sft),
    "eval": Command(EVAL_SUMMARY, run_eval_command),
    "presample": Command(PRESAMPLE_SUMMARY, run_presample_command),
    "plan": Command(PLAN_SUMMARY, run_plan_command),
    "check": Command(CHECK_SUMMARY, run_check_command),
}


def _run_plot(argv: list[str]) -> int:
    from megathink.launch.plot_command import main as plot_main

    return plot_main(argv)


def _run_convert(argv: list[str]) -> int:
    from megathink.launch.convert_command import main as convert_main

    return convert_main(argv)


def _run_serve(argv: list[str]) -> int:
    from megathink.launch.serve_command import main as serve_main

    return serve_main(argv)


def _run_distill(argv: list[str]) -> int:
    from megathink.launch.distill_command import main as distill_main

    return distill_main(argv)


def _run_shards(argv: list[str]) -> int:
    from megathink.data.shards.build import main as shards_main

    return shards_main(argv, prog="megathink shards")


def _run_leaderboard(argv: list[str]) -> int:
    from megathink.launch.leaderboard_command import main as leaderboard_main

    return leaderboard_main(argv)


def _run_sweep_report(argv: list[str]) -> int:
    from megathink.launch.sweep_report_command import main as sweep_report_main

    return sweep_report_main(argv)


PLAIN_COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "convert": (
        "hf-to-megatron --hf-dir IN --out OUT --tp N --pp M | megatron-to-hf --ckpt IN --out OUT",
        _run_convert,
    ),
    "plot": (
        "RUN_DIR [--out DIR]: PNG figures of a run (think ratio per level, before/after RL, losses); "
        "--compare RUN_DIR... --out DIR: runs side by side",
        _run_plot,
    ),
    "serve": (
        "--model-path DIR [--host H --port P --api-key K]: HTTP rollout server speaking SGLang's native API",
        _run_serve,
    ),
    "distill": (
        "--prompts FILE --reasoning-url URL --instruct-url URL --out FILE: Thinkless stage-1 hybrid SFT data",
        _run_distill,
    ),
    "shards": (
        "--sft-file FILE --out DIR --shard-size N [--tokenizer DIR] tokenizer=PRESET data.max_seq_len=N ...: "
        "pre-tokenized SFT shards for data.sft_shards",
        _run_shards,
    ),
    "sweep-report": ("SWEEP_DIR [--out DIR]: accuracy, think ratio and length against alpha and gamma", _run_sweep_report),
    "leaderboard": ("ROOT [--out DIR]: methods side by side, mean and spread over seeds (the toy leaderboard)", _run_leaderboard),
}
"""Commands that parse their own arguments (argparse), not Hydra overrides: (summary, run(argv) -> status)."""


def usage() -> str:
    lines = ["usage: megathink <command> [overrides...] [-m] [--help]", "", "commands:"]
    width = max(len(name) for name in [*COMMANDS, *PLAIN_COMMANDS])
    lines += [f"  {name.ljust(width)}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (summary, _) in PLAIN_COMMANDS.items()]
    lines += ["", "config groups (pick one with group=option, e.g. experiment=toy_demo):"]
    for group in config_groups():
        lines.append(f"  {group}: {', '.join(group_options(group))}")
    lines += [
        "",
        "overrides: any field as section.field=value, e.g. sft.max_steps=100 sft.optimizer.lr=3e-4",
        "options:   group=option; the optimizer group sits under each stage: optimizer@rl.optimizer=thinkless_rl",
        "sweeps:    megathink train -m algorithm.alpha=1e-3,1e-2 reward.gamma=0.5,0.8",
        "           on SLURM: add hydra/launcher=megathink_slurm; then megathink sweep-report <sweep dir>",
        "more:      megathink <command> --help   (groups and the full default config)",
    ]
    return "\n".join(lines)


def _hydra_app(name: str, command: Command) -> Callable[[], None]:
    def task(dict_cfg: DictConfig) -> None:
        try:
            run_cfg = to_run_config(dict_cfg)
            experiment = HydraConfig.get().runtime.choices.get("experiment")
            if run_cfg.logger.run_name is None and experiment:  # the metric sinks name the job after it
                run_cfg.logger.run_name = experiment
            command.run(run_cfg)
        except MegathinkError as err:  # the user's input: one line naming the field and the fix
            print(f"megathink {name}: error: {err}", file=sys.stderr)
            sys.exit(2)
        except StagePreempted as stop:  # SIGTERM / SIGUSR1: the stage checkpointed and stopped; rerun resumes
            print(f"megathink {name}: {stop}", file=sys.stderr)
            sys.exit(stop.exit_code)

    return hydra.main(version_base=None, config_path=f"pkg://{CONFIG_PACKAGE}", config_name=name)(task)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    name = argv[0]
    if name in PLAIN_COMMANDS:
        sys.exit(PLAIN_COMMANDS[name][1](argv[1:]))
    command = COMMANDS.get(name)
    if command is None:
        known = ", ".join([*COMMANDS, *PLAIN_COMMANDS])
        print(f"megathink: unknown command {name!r}; choose one of: {known}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        sys.exit(2)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "-m" not in argv[1:] and not any(
        arg.startswith(("hydra.run.dir=", "output_dir=")) for arg in argv[1:]
    ):
        print(
            f"megathink {name}: error: under torchrun ({os.environ['WORLD_SIZE']} processes) every rank must write "
            "into one folder: pass hydra.run.dir=DIR (the default folder name holds a timestamp that differs "
            "between ranks).",
            file=sys.stderr,
        )
        sys.exit(2)
    if name == "check" and check_command.PRESAMPLE_FIRST_FLAG in argv:
        argv.remove(check_command.PRESAMPLE_FIRST_FLAG)
        check_command.presample_first = True
    unknown = unknown_group_option(argv[1:])
    if unknown:
        print(f"megathink {name}: error: {unknown}", file=sys.stderr)
        sys.exit(2)
    register_schema()
    extra = []
    if int(os.environ.get("RANK", "0")) > 0:  # torchrun: rank 0 alone writes .hydra/ and the log file
        extra = ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
    sys.argv = [f"megathink-{name}", *argv[1:], *extra]
    _hydra_app(name, command)()


if __name__ == "__main__":
    main()
