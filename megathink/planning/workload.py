"""What one step of a stage asks of a rank: its largest micro-batch, how many micro-batches it
runs, and what it generates.

Lengths are caps, never the data's: an RL row is at most `plan.max_prompt_tokens` (or
`data.max_seq_len` when smaller: the toy task's) + the response cap (`rollout.max_new_tokens`; AdaptThink with importance sampling: the larger of
`algorithm.nothinking_max_new_tokens` / `thinking_max_new_tokens`); an SFT row at most
`data.max_seq_len`. The largest micro-batch (`MicroBatch`) is what the trainers build
(data/micro_batching.py, trainer/rl_update.py, trainer/sft_step.py):

- fixed micro-batches (`*.max_tokens_per_micro_batch = 0`): `rl.micro_batch_size` rows, or
  2 x `sft.micro_batch_size` (both answer forms of each question), each row padded to the
  longest (worst case: the cap); with megatron THD packing the rows go end to end in one row
  as long as their sum (worst case: rows x cap).
- a token budget B (`*.max_tokens_per_micro_batch > 0`): at most max(B, longest row) token
  positions: the padded plan keeps rows x its longest <= B, the packed plan keeps the sum
  <= B, and a longer row is a micro-batch alone (megatron pads every micro-batch of a call to
  the longest of them, so every one is that long).

`MicroBatch.width` is the attention span that quadratic costs (dense masks) scale with: the
longest row for padded rows, the whole stream for a packed row (one [S, S] mask). Context
parallelism splits the tokens over cp ranks (`Layout.cp`), which the activation model applies.

The scoring passes (old and reference log-probs) use the same micro-batches without
gradients. Generation: the local rollout engine decodes `rollout.batch_size` sequences at a
time (RL: up to prompt + response cap; evaluation through the engine: up to
`eval.max_new_tokens`); SFT's forced-mode evaluation generates `eval.batch_size` sequences
through the local engine. With `rollout.engine=sglang` every generation, the SFT stage's
evaluations included (trainer/stage_eval.py), runs on the engines' own GPUs: none on the trainer's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from megathink.config.run import RunConfig
from megathink.planning.layout import Layout

SFT_FORMS = 2
"""Rows per SFT question: the long and the short answer (Thinkless), or thinking and NoThinking."""


@dataclass(frozen=True)
class MicroBatch:
    tokens: int  # token positions the forward computes (padding included)
    width: int  # attention span: the longest row, or the packed stream
    packed: bool  # one THD row (megatron pack_sequences)

    @property
    def rows(self) -> int:
        return max(1, math.ceil(self.tokens / self.width))

    def describe(self) -> str:
        if self.packed:
            return f"one packed row of {self.tokens} tokens"
        if self.tokens % self.width:  # a token budget: padded rows of up to `width`
            return f"{self.tokens} tokens in rows of up to {self.width}"
        return f"{self.rows} x {self.width} tokens" if self.rows > 1 else f"1 row of {self.width} tokens"


@dataclass(frozen=True)
class Generation:
    sequences: int  # decoded together
    length: int  # prompt + generated tokens at the end
    what: str  # 'rollout' | 'evaluation'


@dataclass(frozen=True)
class StageWork:
    stage: str  # 'sft' | 'rl' | 'presample'
    largest: MicroBatch | None  # None: the stage does not train (presample)
    micro_batches: int  # per optimizer step and data-parallel replica
    optimizer_steps: int  # per stage step (RL: rl.mini_batches)
    mean_tokens: float  # real tokens per optimizer step over all replicas (for the step time)
    computed_tokens: float  # token positions computed per optimizer step, padding included
    attention_span: float  # mean row length attention runs over (padded width, or the real length)
    longest_row: int
    scoring_passes: int  # forward-only passes over the batch per stage step (old + reference log-probs)
    entropy: bool  # the loss asks for entropies (DeGRPO / GRPO entropy bonus)
    generations: tuple[Generation, ...]  # on rank 0


def algorithm_setting(cfg: RunConfig, name: str, default: Any) -> Any:
    """`algorithm.<name>`, or `default` for a method whose config has no such field (the KL and
    entropy coefficients of AdaptThink, the forced-mode caps of GRPO / DeGRPO)."""
    return getattr(cfg.algorithm, name, default)


def kl_reference(cfg: RunConfig) -> bool:
    """Whether the RL stage keeps a frozen KL reference (algorithm.kl_coef > 0)."""
    return (algorithm_setting(cfg, "kl_coef", 0.0) or 0.0) > 0


def response_cap(cfg: RunConfig) -> int:
    """Longest RL response: rollout.max_new_tokens, or AdaptThink's larger forced-mode cap."""
    cap = cfg.rollout.max_new_tokens
    if algorithm_setting(cfg, "name", "") == "adaptthink" and algorithm_setting(cfg, "importance_sampling", False):
        caps = [algorithm_setting(cfg, key, None) for key in ("nothinking_max_new_tokens", "thinking_max_new_tokens")]
        return max(c if c is not None else cap for c in caps)
    return cap


def _largest(rows: int, row_len: int, budget: int, layout: Layout) -> MicroBatch:
    packed = layout.backend == "megatron" and layout.pack
    if budget > 0:
        tokens = max(budget, row_len)
        return MicroBatch(tokens=tokens, width=tokens if packed else row_len, packed=packed)
    tokens = rows * row_len
    return MicroBatch(tokens=tokens, width=tokens if packed else row_len, packed=packed)


def _count(rows: int, mean_len: float, mbs: int, budget: int, dp: int) -> int:
    """Micro-batches per replica for `rows` rows of mean length `mean_len`."""
    total = math.ceil(rows / mbs) if budget == 0 else max(1, math.ceil(rows * mean_len / budget))
    return max(1, math.ceil(total / dp))


def stage_work(cfg: RunConfig, stage: str, layout: Layout) -> StageWork:
    """The work of one step of `stage` ('sft', 'rl' or 'presample') on this layout."""
    fill = cfg.plan.length_fill
    prompt = min(cfg.plan.max_prompt_tokens, cfg.data.max_seq_len)  # no prompt is longer than a whole row
    if stage == "sft":
        row_len = cfg.data.max_seq_len
        rows = SFT_FORMS * cfg.sft.micro_batch_size * cfg.sft.grad_accum_steps
        budget = cfg.sft.max_tokens_per_micro_batch
        mbs = SFT_FORMS * cfg.sft.micro_batch_size
        mean_len = fill * row_len
        largest = _largest(mbs, row_len, budget, layout)
        count = _count(rows, mean_len, mbs, budget, layout.dp)
        # fixed micro-batches pad every row to its micro-batch's longest (~ the long answer)
        padded_rows = budget == 0 and not layout.pack
        padded = rows * row_len * fill if padded_rows else rows * mean_len
        evaluation = Generation(cfg.eval.batch_size, prompt + cfg.eval.max_new_tokens, "evaluation")
        generations = (evaluation,) if cfg.rollout.engine == "local" else ()
        return StageWork(
            stage=stage, largest=largest, micro_batches=count, optimizer_steps=1, mean_tokens=rows * mean_len,
            computed_tokens=padded, attention_span=row_len * fill if padded_rows else mean_len, longest_row=row_len,
            scoring_passes=0, entropy=False, generations=generations,
        )
    cap = response_cap(cfg)
    row_len = prompt + cap
    samples = cfg.rl.prompts_per_step * cfg.rollout.n_samples
    generations = []
    if cfg.rollout.engine == "local":  # SGLang engines generate on their own GPUs
        generations.append(Generation(min(cfg.rollout.batch_size, samples), row_len, "rollout"))
        if stage == "rl":
            generations.append(Generation(cfg.rollout.batch_size, prompt + cfg.eval.max_new_tokens, "evaluation"))
    if stage == "presample":
        return StageWork(
            stage=stage, largest=None, micro_batches=0, optimizer_steps=0, mean_tokens=0.0, computed_tokens=0.0,
            attention_span=0.0, longest_row=row_len, scoring_passes=0, entropy=False, generations=tuple(generations),
        )
    mini_rows = max(1, samples // cfg.rl.mini_batches)
    budget = cfg.rl.max_tokens_per_micro_batch
    mean_len = prompt * 0.5 + fill * cap
    largest = _largest(min(cfg.rl.micro_batch_size, mini_rows), row_len, budget, layout)
    count = _count(mini_rows, mean_len, cfg.rl.micro_batch_size, budget, layout.dp)
    # fixed micro-batches are cut to their own longest prompt + response (rl_batch.window): with
    # long-tailed responses that is close to the cap; budgets and packing compute real tokens
    padded_rows = budget == 0 and not layout.pack
    padded = mini_rows * row_len if padded_rows else mini_rows * mean_len
    scoring = (1 if cfg.rl.mini_batches > 1 else 0) + (1 if kl_reference(cfg) else 0)
    return StageWork(
        stage=stage, largest=largest, micro_batches=count, optimizer_steps=cfg.rl.mini_batches,
        mean_tokens=mini_rows * mean_len, computed_tokens=padded, attention_span=row_len if padded_rows else mean_len,
        longest_row=row_len, scoring_passes=scoring,
        entropy=(algorithm_setting(cfg, "entropy_coef", 0.0) or 0.0) > 0, generations=tuple(generations),
    )
