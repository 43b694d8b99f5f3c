"""Where metrics go: console, a jsonl file (always), TensorBoard, optionally wandb, a progress bar.

wandb stays off unless asked for: `wandb_mode` unset means "offline" when a `wandb_project` is
named and "disabled" otherwise; `resolved_wandb_mode` gives the mode the run will use. A stage's
wandb run is named `<run_name>/<output folder>/<stage>` and keeps one id across resumes and
requeues (trainer/metrics.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from megathink.config.validation import check_choice, check_nonempty_str, fail

WANDB_MODES = ("disabled", "offline", "online")
DEFAULT_WANDB_PROJECT = "megathink"


@dataclass(kw_only=True)
class LoggerConfig:
    console: bool = True
    """Print metric lines to stdout."""

    progress_bar: bool = True
    """Show a progress bar with ETA on long loops (written to stderr)."""

    tensorboard: bool = True
    """Also write every scalar metric to `<stage>/tensorboard/` (needs `pip install tensorboard`)."""

    wandb_mode: Optional[str] = None
    """'disabled', 'offline' (no network or key needed) or 'online'; unset (null): 'offline' when
    wandb_project is set, else 'disabled'. The mode is always passed to wandb.init explicitly, so
    the WANDB_MODE environment variable never decides it."""

    wandb_project: Optional[str] = None
    """wandb project name; setting it alone turns wandb on in offline mode. Unset: 'megathink'."""

    run_name: Optional[str] = None
    """This job's name in the metric sinks; unset, the command line fills in the experiment it runs
    (`experiment=...`; the SLURM recipes also pass `logger.run_name=$EXPERIMENT`), and without an
    experiment the output folder's name alone names the job."""

    wandb_run_name: Optional[str] = None
    """wandb run name of every stage; unset: `<run_name>/<output folder>/<stage>` (the run name
    left out when unset or equal to the folder's name)."""

    def __post_init__(self) -> None:
        if self.wandb_mode is not None:
            check_choice("logger.wandb_mode", self.wandb_mode, WANDB_MODES)
        if self.wandb_project is not None:
            check_nonempty_str("logger.wandb_project", self.wandb_project)
        if self.run_name is not None:
            check_nonempty_str("logger.run_name", self.run_name)
        if self.wandb_run_name is not None:
            check_nonempty_str("logger.wandb_run_name", self.wandb_run_name)
        if not isinstance(self.tensorboard, bool):
            fail("logger.tensorboard", self.tensorboard, "must be true or false")

    @property
    def resolved_wandb_mode(self) -> str:
        """The wandb mode this run uses: the explicit one, else offline iff a project is named."""
        if self.wandb_mode is not None:
            return self.wandb_mode
        return "offline" if self.wandb_project is not None else "disabled"

    @property
    def resolved_wandb_project(self) -> str:
        return self.wandb_project if self.wandb_project is not None else DEFAULT_WANDB_PROJECT
