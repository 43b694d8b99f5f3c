"""From graded rollout samples to the tensors the RL update consumes.

Prompts are left-padded and responses right-padded around one shared boundary column P, so
every row's response starts at column P: `input_ids [B, P + T]`, and the response-aligned
tensors the losses take (`logp[:, P:]`, `response_mask [B, T]`) have column 0 = the first
generated token (the control token in Thinkless). Rollout log-probs from the engine are laid
out the same way so the trainer can log how far its own recomputation is from them.

A micro-batch does not need the whole batch's width: `RLBatch.window(rows)` cuts its rows to
their own longest prompt and response (`MicroWindow`), so a batch with one 24K-token response
does not make every micro-batch 24K wide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from megathink.rollout.types import Sample


@dataclass
class MicroWindow:
    """Rows of an `RLBatch` cut to their own longest prompt (p columns) and response (r columns)."""

    rows: torch.Tensor  # [b] long, row indices into the batch
    input_ids: torch.Tensor  # [b, p + r] long
    attention_mask: torch.Tensor  # [b, p + r] long
    prompt_cols: int  # p: the response starts at this column
    resp_cols: int  # r >= 1: response-aligned tensors of these rows are [b, r]


@dataclass
class RLBatch:
    """One rollout batch, padded. B sequences, P prompt columns, T response columns."""

    input_ids: torch.Tensor  # [B, P + T] long
    attention_mask: torch.Tensor  # [B, P + T] long
    response_mask: torch.Tensor  # [B, T] float, 1 on response tokens
    rollout_logp: torch.Tensor  # [B, T] float32, the engine's log-probs (0 on padding)
    advantages: torch.Tensor  # [B] float32
    group_ids: torch.Tensor  # [B] long
    prompt_len: int  # P
    forced: torch.Tensor  # [B] long, leading response tokens that were forced (AdaptThink openers)
    opener_prob: torch.Tensor  # [B] float32, pi_IS of the forced opener (1 where nothing was forced)
    control_advantages: Optional[torch.Tensor] = None  # [B] float32: a method's own advantage of column 0

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    def prompt_lengths(self) -> torch.Tensor:
        """[B] long: real prompt tokens of each row."""
        return self.attention_mask[:, : self.prompt_len].sum(dim=1)

    def response_lengths(self) -> torch.Tensor:
        """[B] long: real response tokens of each row."""
        return self.response_mask.sum(dim=1).long()

    def row_lengths(self) -> list[int]:
        """Real tokens (prompt + response) of each row: what a micro-batch's token budget counts."""
        return (self.prompt_lengths() + self.response_lengths()).tolist()

    def window(self, rows: torch.Tensor) -> MicroWindow:
        """`rows` cut to columns [P - p, P + r): p, r their longest prompt and response (r >= 1)."""
        p = int(self.prompt_lengths()[rows].max())
        r = max(int(self.response_lengths()[rows].max()), 1)
        columns = slice(self.prompt_len - p, self.prompt_len + r)
        return MicroWindow(rows, self.input_ids[rows, columns], self.attention_mask[rows, columns], p, r)

    def select(self, rows: torch.Tensor) -> "RLBatch":
        """The sub-batch of `rows` (a [b] long index), keeping the shared boundary P."""
        return RLBatch(
            input_ids=self.input_ids[rows],
            attention_mask=self.attention_mask[rows],
            response_mask=self.response_mask[rows],
            rollout_logp=self.rollout_logp[rows],
            advantages=self.advantages[rows],
            group_ids=self.group_ids[rows],
            prompt_len=self.prompt_len,
            forced=self.forced[rows],
            opener_prob=self.opener_prob[rows],
            control_advantages=None if self.control_advantages is None else self.control_advantages[rows],
        )


def build_rl_batch(
    samples: Sequence[Sample], advantages: torch.Tensor, *, pad_id: int, opener_prob: Optional[torch.Tensor] = None,
    control_advantages: Optional[torch.Tensor] = None,
) -> RLBatch:
    """Pad `samples` (prompt left, response right) into an `RLBatch` with `advantages` [B] (and
    `opener_prob` [B], the proposal probability of each forced opener, default all 1;
    `control_advantages` [B], a separate advantage of the first response token for methods that
    train the mode choice apart from the response, e.g. both-mode groups)."""
    if not samples:
        raise ValueError("build_rl_batch: no samples.")
    prompt_len = max(len(s.prompt_ids) for s in samples)
    resp_len = max(max(len(s.response_ids) for s in samples), 1)
    batch = len(samples)
    input_ids = torch.full((batch, prompt_len + resp_len), pad_id, dtype=torch.long)
    attention = torch.zeros((batch, prompt_len + resp_len), dtype=torch.long)
    response_mask = torch.zeros((batch, resp_len), dtype=torch.float32)
    rollout_logp = torch.zeros((batch, resp_len), dtype=torch.float32)
    for row, sample in enumerate(samples):
        p, r = len(sample.prompt_ids), len(sample.response_ids)
        input_ids[row, prompt_len - p : prompt_len] = torch.tensor(sample.prompt_ids, dtype=torch.long)
        attention[row, prompt_len - p : prompt_len + r] = 1
        if r:
            input_ids[row, prompt_len : prompt_len + r] = torch.tensor(sample.response_ids, dtype=torch.long)
            response_mask[row, :r] = 1.0
            rollout_logp[row, :r] = torch.tensor(sample.logprobs, dtype=torch.float32)
    return RLBatch(
        input_ids=input_ids,
        attention_mask=attention,
        response_mask=response_mask,
        rollout_logp=rollout_logp,
        advantages=advantages.to(torch.float32),
        group_ids=torch.tensor([s.group_id for s in samples], dtype=torch.long),
        prompt_len=prompt_len,
        forced=torch.tensor([s.forced for s in samples], dtype=torch.long),
        opener_prob=torch.ones(batch) if opener_prob is None else opener_prob.to(torch.float32),
        control_advantages=None if control_advantages is None else control_advantages.to(torch.float32),
    )


def split_by_groups(batch: RLBatch, parts: int) -> list[torch.Tensor]:
    """Row indices of `parts` mini-batches holding whole groups, in group order."""
    groups = torch.unique(batch.group_ids)
    chunks = torch.tensor_split(groups, min(parts, len(groups)))
    return [torch.nonzero(torch.isin(batch.group_ids, chunk)).flatten() for chunk in chunks if len(chunk)]


def nonzero_advantage_rows(batch: RLBatch) -> torch.Tensor:
    """Rows of groups with at least one non-zero advantage, the control token's own included
    (for rl.filter_zero_advantage)."""
    signal = batch.advantages != 0
    if batch.control_advantages is not None:
        signal = signal | (batch.control_advantages != 0)
    keep_groups = torch.unique(batch.group_ids[signal])
    return torch.nonzero(torch.isin(batch.group_ids, keep_groups)).flatten()
