"""Stop a training stage cleanly on SIGTERM or SIGUSR1: checkpoint the last finished step, exit 75.

A cluster stops a job with SIGTERM (scancel, preemption, the time limit; SIGKILL follows after
SLURM's KillWait) and warns it with SIGUSR1 before the time limit (`#SBATCH --signal`). While a
stage runs, `signal_handlers()` replaces the handlers of both signals with one that only records
the signal; the SFT and RL loops call `stop_requested()` after every optimizer step / RL step and,
when it is true, write the same atomic checkpoint the periodic save writes (unless that step was
just saved) and raise `StagePreempted`. The pipeline then runs neither the stage's final
evaluation and HF export nor the next stage, and the command exits with `PREEMPTED_EXIT_CODE`.
Rerunning the same command resumes from that checkpoint (`checkpoint.resume=auto`), so at most
the step in flight when the signal came is lost (it runs to its end first).

Under torchrun the signal may reach only some ranks, or reach them on either side of a step
boundary: `stop_requested()` is a collective (an all-reduce of one int, MAX over the ranks), so
every rank sees the same answer at the same step and they checkpoint (a collective for sharded
checkpoints) and stop together. Every rank must therefore call it at the same points.

torch is imported only inside `stop_requested`, so the command line can import `StagePreempted`
without paying for torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Optional

log = logging.getLogger(__name__)

PREEMPTED_EXIT_CODE = 75
"""Exit status of a command whose stage stopped on SIGTERM / SIGUSR1 after checkpointing (BSD's
EX_TEMPFAIL: "try again later"). Distinct from 1 (an error), 2 (a config error) and 143 (killed
by SIGTERM before any stage could checkpoint)."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
"""The signals that ask a running stage to checkpoint and stop."""

PREEMPTED_FILE = "preempted.json"
"""Written into the output folder (rank 0) when a stage stopped on a signal: stage, step,
checkpoint, signal. Removed when the pipeline starts again; the SLURM job library reads it to
tell a checkpointed stop (requeue) from a failure, since torchrun reports its workers' exit
statuses as 1."""

_received: Optional[int] = None  # the signal number this process got; written only by the handler


class StagePreempted(Exception):
    """A stage stopped at a step boundary on a stop signal, after checkpointing that step."""

    exit_code = PREEMPTED_EXIT_CODE

    def __init__(
        self, stage: str, step: int, checkpoint_root: Optional[Path], *, finished: bool = False,
        signal_name: Optional[str] = None,
    ) -> None:
        from megathink.trainer.checkpoint import step_dir_name  # (imports torch: raised only while training)

        self.stage = stage
        self.step = step
        self.finished = finished
        self.checkpoint = Path(checkpoint_root) / step_dir_name(step) if checkpoint_root is not None else None
        self.signal_name = signal_name if signal_name is not None else received_signal_name()
        if finished:
            what = f"stage {stage} finished (step {step}); stopped on {self.signal_name} before the next stage"
        else:
            what = (
                f"stage {stage} stopped on {self.signal_name} at step {step}, checkpoint {self.checkpoint}; "
                "its final evaluation and export and any later stage did not run"
            )
        super().__init__(f"{what}; run the same command again to resume")

    def record(self) -> dict[str, Any]:
        """What `PREEMPTED_FILE` holds."""
        return {
            "stage": self.stage, "step": self.step, "finished": self.finished, "signal": self.signal_name,
            "checkpoint": str(self.checkpoint) if self.checkpoint is not None else None, "time": round(time.time(), 3),
        }


def _record_signal(signum: int, frame: Optional[FrameType]) -> None:
    """The handler: remember the signal, nothing else (the loop acts at its next step boundary)."""
    global _received
    _received = signum


@contextlib.contextmanager
def signal_handlers(enabled: bool = True) -> Iterator[None]:
    """SIGTERM and SIGUSR1 only set a flag while the block runs; the previous handlers after.

    A flag left from an earlier block is cleared on entry. Outside the main thread (where Python
    cannot install handlers) and with `enabled=False` nothing changes.
    """
    global _received
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    previous = {sig: signal.signal(sig, _record_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def received_signal_name() -> str:
    """The signal this process got ('SIGTERM', 'SIGUSR1'), or a note that another rank got it."""
    return signal.Signals(_received).name if _received is not None else "a stop signal to another rank"


def stop_requested() -> bool:
    """True when a stop signal reached this process or, under torchrun, any rank of the job.

    Collective with a process group of more than one rank: every rank must call it at the same
    step boundary (one int all-reduced with MAX; on the GPU with NCCL).
    """
    import torch
    import torch.distributed as dist

    from megathink.trainer.ranks import distributed

    local = _received is not None
    if not distributed():
        return local
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    flag = torch.tensor([int(local)], dtype=torch.int32, device=device)  # [1]
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def write_record(out_dir: Path, stop: StagePreempted) -> Path:
    """Write `PREEMPTED_FILE` into `out_dir` (call on rank 0 only)."""
    path = Path(out_dir) / PREEMPTED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stop.record(), indent=2) + "\n", encoding="utf-8")
    return path


def clear_record(out_dir: Path) -> None:
    """Remove a `PREEMPTED_FILE` left by an earlier, stopped run (rank 0, before the stages)."""
    (Path(out_dir) / PREEMPTED_FILE).unlink(missing_ok=True)
