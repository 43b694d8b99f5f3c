"""How long and on what the training loops run: steps, batch sizes, device, seed, cadence."""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.validation import ConfigError, check_choice, check_float, check_int

DEVICES = ("auto", "cpu", "cuda")


@dataclass(kw_only=True)
class TrainerConfig:
    max_steps: int = 1000
    """Optimizer steps to run (the learning-rate schedule spans exactly this many)."""

    max_time_minutes: float = 0.0
    """Stop early (with a checkpoint) after this much wall time; 0 means no time limit."""

    micro_batch_size: int = 16
    """SFT: questions per micro-batch (each contributes its long AND its short answer, so a
    micro-batch holds twice as many sequences). RL: sequences per forward/backward."""

    grad_accum_steps: int = 1
    """Micro-batches accumulated into one optimizer step."""

    device: str = "auto"
    """'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'."""

    seed: int = 0
    """Seed for model initialisation, dropout and sampling."""

    num_threads: int = 0
    """torch CPU threads; 0 keeps torch's default."""

    log_every: int = 10
    """Write metrics every this many optimizer steps."""

    eval_every: int = 0
    """Run the held-out evaluation every this many steps; 0 evaluates only at the end."""

    def __post_init__(self) -> None:
        check_int("trainer.max_steps", self.max_steps, low=1)
        check_float("trainer.max_time_minutes", self.max_time_minutes, low=0.0)
        check_int("trainer.micro_batch_size", self.micro_batch_size, low=1)
        check_int("trainer.grad_accum_steps", self.grad_accum_steps, low=1)
        check_choice("trainer.device", self.device, DEVICES)
        check_int("trainer.seed", self.seed, low=0)
        check_int("trainer.num_threads", self.num_threads, low=0)
        check_int("trainer.log_every", self.log_every, low=1)
        check_int("trainer.eval_every", self.eval_every, low=0)
        if self.eval_every and self.eval_every > self.max_steps:
            raise ConfigError(
                f"trainer.eval_every = {self.eval_every} is invalid: larger than trainer.max_steps "
                f"({self.max_steps}); use 0 to evaluate only at the end."
            )
