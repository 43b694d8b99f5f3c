"""The SFT warm-up stage (Thinkless stage 1): length, batch sizes and its optimizer."""

from __future__ import annotations

from dataclasses import dataclass, field

from megathink.config.optimizer import OptimizerConfig
from megathink.config.validation import ConfigError, check_int, fail


@dataclass(kw_only=True)
class SFTConfig:
    max_steps: int = 1000
    """Optimizer steps to run (the learning-rate schedule spans exactly this many)."""

    micro_batch_size: int = 16
    """Questions per micro-batch; each contributes its long AND its short answer, so a
    micro-batch holds twice as many sequences (once, with template='adaptthink' and
    nothinking_answers=False)."""

    grad_accum_steps: int = 1
    """Micro-batches accumulated into one optimizer step."""

    max_tokens_per_micro_batch: int = 0
    """Token budget of a forward/backward pass: when > 0, the sequences of an optimizer step
    (micro_batch_size x grad_accum_steps questions, both answer forms) are regrouped into
    micro-batches by real token count, balanced (Karmarkar-Karp) and over the data-parallel
    replicas, each padded only to its own longest row (HF backend) or packed (megatron, with
    parallel.pack_sequences). The step's loss (a per-token mean over the whole step) is unchanged.
    0: micro-batches of micro_batch_size questions."""

    nothinking_answers: bool = True
    """With tokenizer.template='adaptthink' (a model warmed up to think, for AdaptThink): also
    train a NoThinking example per question (prompt, `</think>`, the short answer) with the
    `</think>` itself left out of the loss. The model then never opens with `</think>` by
    itself but answers after a forced one, as R1-distilled models do (their SFT data held
    answers with empty thoughts). False: Thinking examples only. Ignored for 'thinkless'."""

    eval_every: int = 0
    """Run the forced-mode evaluation every this many steps; 0 evaluates only at the end."""

    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    """AdamW and the schedule of this stage (defaults: the Thinkless 1.5B SFT recipe)."""

    def __post_init__(self) -> None:
        check_int("sft.max_steps", self.max_steps, low=1)
        check_int("sft.micro_batch_size", self.micro_batch_size, low=1)
        check_int("sft.grad_accum_steps", self.grad_accum_steps, low=1)
        check_int("sft.max_tokens_per_micro_batch", self.max_tokens_per_micro_batch, low=0)
        check_int("sft.eval_every", self.eval_every, low=0)
        if not isinstance(self.nothinking_answers, bool):
            fail("sft.nothinking_answers", self.nothinking_answers, "must be true or false")
        if self.eval_every > self.max_steps:
            raise ConfigError(
                f"sft.eval_every = {self.eval_every} is invalid: larger than sft.max_steps "
                f"({self.max_steps}); use 0 to evaluate only at the end."
            )
