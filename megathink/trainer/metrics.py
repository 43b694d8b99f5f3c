"""Metric sinks: `<out>/metrics.jsonl` (always), console lines, TensorBoard, optional wandb.

One json object per `log` call: `{"step": s, "time": unix_seconds, **metrics}`. The file is
opened in append mode, so a resumed run adds to the same file; steps between the resumed
checkpoint and the crash then appear twice, and readers keep the last line per step.
TensorBoard does the same on its side: the writer starts with `purge_step` = the first step
this process logs, which hides the older events from that step on.

Values may be numbers, strings, 0-d tensors, or non-scalars (lists, dicts such as per-level
tables, larger tensors). Every value goes to the jsonl file; numbers, bools and strings also go to
the console line and wandb; only numbers (not bools) go to TensorBoard (`<out>/tensorboard/`). TensorBoard and
wandb are imported only when enabled; wandb's files go under `<out>/wandb/`, with the mode
passed explicitly so the WANDB_MODE environment variable never turns it on or off.

One wandb run per stage folder, across every process that writes into it: its id is drawn once
and kept in `<out>/wandb_run_id`, and `wandb.init(id=..., resume="allow")` continues that run
when a resumed or requeued job opens the folder again. Its name is `wandb_run_name(...)`:
`<logger.run_name>/<output folder>/<stage>`, so runs of different jobs and experiments stay
apart in one project.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Optional

from tqdm import tqdm

from megathink.config.logger import LoggerConfig
from megathink.errors import ConfigError

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
WANDB_RUN_ID_FILE = "wandb_run_id"


class MetricsLogger:
    """Append metrics to `<out_dir>/metrics.jsonl`, echo them, mirror them to TensorBoard and wandb.

    `enabled=False` (every rank but 0 of a torchrun job) records nothing and opens no file.
    """

    def __init__(
        self, out_dir: Path, logger_cfg: LoggerConfig, run_name: str, config_dict: dict[str, Any], *, enabled: bool = True
    ) -> None:
        """`run_name`: the stage this logger records (the stage folder's name), the last part of
        the wandb run name."""
        out_dir = Path(out_dir)
        self.path = out_dir / METRICS_FILE
        self.enabled = enabled
        self.cfg = logger_cfg
        self.tensorboard_dir = out_dir / TENSORBOARD_DIR
        self._writer_cls: Optional[type] = _tensorboard_writer_class() if logger_cfg.tensorboard and enabled else None
        self._writer: Optional[Any] = None
        self._wandb: Optional[Any] = None
        self._file: Optional[Any] = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if logger_cfg.resolved_wandb_mode != "disabled":
            self._wandb = _start_wandb(logger_cfg, run_name, config_dict, out_dir)
        self._file = self.path.open("a", encoding="utf-8")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record `metrics` for optimizer step `step` (see the module docstring for what goes where)."""
        if self._file is None:
            return
        step = int(step)
        plain = {key: to_plain(value) for key, value in metrics.items()}
        row = {"step": step, "time": round(time.time(), 3), **{k: _json_safe(v) for k, v in plain.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        flat = {key: value for key, value in plain.items() if isinstance(value, (int, float, str))}
        if self.cfg.console:
            tqdm.write(format_console_line(step, flat), file=sys.stdout)
        numbers = {key: float(value) for key, value in flat.items() if _is_number(value)}
        if self._writer_cls is not None and numbers:
            self._write_tensorboard(step, numbers)
        if self._wandb is not None:
            self._wandb.log(flat, step=step)

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write_tensorboard(self, step: int, numbers: dict[str, float]) -> None:
        if self._writer is None:
            assert self._writer_cls is not None
            self._writer = self._writer_cls(log_dir=str(self.tensorboard_dir), purge_step=step)
        for key, value in numbers.items():
            self._writer.add_scalar(key, value, global_step=step)
        self._writer.flush()


def format_console_line(step: int, metrics: dict[str, Any]) -> str:
    """`step 10 | loss 1.234 | lr 1.00e-04 | ...`: 4 significant digits, tiny/huge in e-notation."""
    parts = [f"step {step}"]
    for key, value in metrics.items():
        if isinstance(value, float):
            text = f"{value:.2e}" if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5) else f"{value:.4g}"
        else:
            text = str(value)
        parts.append(f"{key} {text}")
    return " | ".join(parts)


def to_plain(value: Any) -> Any:
    """Tensors and numpy values as Python numbers or (nested) lists; dicts and lists recursively."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if not _is_number(value) and callable(getattr(value, "tolist", None)):  # torch / numpy values
        return to_plain(value.tolist())
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_safe(value: Any) -> Any:
    """NaN/inf as strings (also inside lists and dicts), so every line is strict json."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _tensorboard_writer_class() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ConfigError(
            "logger.tensorboard = True needs the tensorboard package, which is not installed: "
            "`pip install -c constraints.txt tensorboard` (or the extra: pip install -e '.[tensorboard]'), "
            "or set logger.tensorboard=false."
        ) from err
    return SummaryWriter


def wandb_run_name(cfg: LoggerConfig, stage: str, out_dir: Path) -> str:
    """`logger.wandb_run_name`, else `<logger.run_name>/<output folder>/<stage>`, where the output
    folder is the stage folder's parent (`out_dir` is `<output_dir>/<stage>`); the run name is left
    out when unset or equal to the folder's name (the SLURM recipes' RUN_DIR is named after it)."""
    if cfg.wandb_run_name:
        return cfg.wandb_run_name
    folder = Path(out_dir).resolve().parent.name
    parts = [cfg.run_name] if cfg.run_name and cfg.run_name != folder else []
    return "/".join([*parts, folder, stage])


def wandb_run_id(out_dir: Path) -> str:
    """The wandb run id of the stage folder `out_dir`: read from `<out_dir>/wandb_run_id`, or drawn
    at random and written there (atomically) on first use, so every later process that writes into
    the folder (a resume, a requeue) continues the same wandb run, and no other folder shares it."""
    path = Path(out_dir) / WANDB_RUN_ID_FILE
    if path.is_file():
        stored = path.read_text(encoding="utf-8").strip()
        if stored:
            return stored
    run_id = secrets.token_hex(8)  # 16 of [0-9a-f]: valid in a wandb id, unique in a project
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{WANDB_RUN_ID_FILE}.{os.getpid()}")
    tmp.write_text(run_id + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return run_id


def _start_wandb(cfg: LoggerConfig, stage: str, config_dict: dict[str, Any], out_dir: Path) -> Any:
    mode = cfg.resolved_wandb_mode
    try:
        import wandb
    except ImportError as err:
        raise ConfigError(
            f"logger.wandb_mode = {mode!r} needs wandb, which is not installed: "
            "`pip install -c constraints.txt wandb` (or the `wandb` extra: pip install -e '.[wandb]'), "
            "or set logger.wandb_mode=disabled."
        ) from err
    return wandb.init(
        project=cfg.resolved_wandb_project,
        name=wandb_run_name(cfg, stage, out_dir),
        id=wandb_run_id(out_dir),
        resume="allow",
        mode=mode,
        dir=str(out_dir),
        config=config_dict,
    )
