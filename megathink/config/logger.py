"""Where metrics go: console, a jsonl file (always), optionally wandb and a progress bar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from megathink.config.validation import check_choice

WANDB_MODES = ("disabled", "offline", "online")


@dataclass(kw_only=True)
class LoggerConfig:
    console: bool = True
    """Print metric lines to stdout."""

    progress_bar: bool = True
    """Show a progress bar with ETA on long loops (written to stderr)."""

    wandb_mode: str = "disabled"
    """'disabled', 'offline' (no network or key needed) or 'online'."""

    wandb_project: str = "megathink"
    """wandb project name."""

    wandb_run_name: Optional[str] = None
    """wandb run name; defaults to the output directory's name."""

    def __post_init__(self) -> None:
        check_choice("logger.wandb_mode", self.wandb_mode, WANDB_MODES)
