"""Metric sinks: `<out>/metrics.jsonl` (always), compact console lines, optional wandb.

One json object per `log` call: `{"step": s, "time": unix_seconds, **metrics}`. The file is
opened in append mode, so a resumed run adds to the same file; steps between the resumed
checkpoint and the crash then appear twice, and readers keep the last line per step.
wandb is imported only when `logger.wandb_mode` is not "disabled".
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

from tqdm import tqdm

from megathink.config.logger import LoggerConfig

METRICS_FILE = "metrics.jsonl"


class MetricsLogger:
    """Append metrics to `<out_dir>/metrics.jsonl`, echo them to stdout, mirror them to wandb."""

    def __init__(self, out_dir: Path, logger_cfg: LoggerConfig, run_name: str, config_dict: dict[str, Any]) -> None:
        self.path = Path(out_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cfg = logger_cfg
        self._wandb: Optional[Any] = None
        if logger_cfg.wandb_mode != "disabled":
            self._wandb = _start_wandb(logger_cfg, run_name, config_dict, Path(out_dir))
        self._file = self.path.open("a", encoding="utf-8")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record `metrics` (numbers or short strings) for optimizer step `step`."""
        plain = {k: v.item() if hasattr(v, "item") else v for k, v in metrics.items()}
        row = {"step": int(step), "time": round(time.time(), 3), **{k: _json_safe(v) for k, v in plain.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self.cfg.console:
            tqdm.write(format_console_line(step, plain), file=sys.stdout)
        if self._wandb is not None:
            self._wandb.log(plain, step=int(step))

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


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


def _json_safe(value: Any) -> Any:
    """NaN/inf as strings, so every line is strict json."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _start_wandb(cfg: LoggerConfig, run_name: str, config_dict: dict[str, Any], out_dir: Path) -> Any:
    try:
        import wandb
    except ImportError as err:
        raise ImportError(
            f"logger.wandb_mode = {cfg.wandb_mode!r} needs wandb, which is not installed: "
            "`pip install -c constraints.txt wandb` (or the `wandb` extra: pip install -e '.[wandb]'), "
            "or set logger.wandb_mode=disabled."
        ) from err
    return wandb.init(
        project=cfg.wandb_project,
        name=cfg.wandb_run_name or run_name,
        mode=cfg.wandb_mode,
        dir=str(out_dir),
        config=config_dict,
    )
