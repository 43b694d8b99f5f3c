"""SFT warm-up data: token ids and loss masks for the answer forms of a question.

template="thinkless" (Thinkless stage 1): each hybrid record becomes two examples sharing one
prompt (think first, then short):

    think: prompt + [<think>] + long text + [EOS]      long text = thought, </think>, answer
    short: prompt + [<short>] + short text + [EOS]

The loss is trained on the response only: the control token, the answer text and EOS.
Both forms of a question always land in the same batch (`SFTBatchIterator`), which Thinkless
reports is needed, otherwise the warmed-up model only ever says `<short>`.

template="adaptthink" (a model warmed up to think, the starting point of AdaptThink; the
prompt itself ends with `<think>\n`, so there is no control token to learn):

    thinking:   prompt + long text + [EOS]                 all response tokens trained
    nothinking: prompt + [</think>] + short text + [EOS]   `</think>` NOT trained

The NoThinking example (`sft.nothinking_answers`, on by default) teaches the answer after a
forced `</think>` without teaching the model to choose it: like an R1-distilled model, the
result thinks by itself but can answer with an empty thought. This warm-up is a toy-task
stand-in for the papers' starting models, not part of either paper's method.

Token budgets (a record's `budget`, given to the toy task's questions by effort levels,
data/effort.py): the prompt states it ("Think for N tokens."), and with template="thinkless" a
question whose think response (control token, long text, EOS) is longer than its budget keeps
only its short example, so SFT teaches that a budget below the thought asks for the direct
answer; under a budget the thought fits, both forms are trained and the choice stays open, as
in Thinkless. With template="adaptthink" both examples are kept under any budget (the warm-up
must think by itself; AdaptThink's RL with the L1 reward learns to stop).

`long_prefix` (data.long_prefix) is put before every long text, e.g. "Alright" so thinking
responses share the opener AdaptThink forces.

Mask convention (everywhere in this package, see `SFTBatch`): `loss_mask[b, t] = 1` iff the
token `input_ids[b, t]` is a trained target. The token at t is predicted from the logits at
t-1, so a loss computes `CE(logits[:, :-1], input_ids[:, 1:])` weighted by `loss_mask[:, 1:]`.
Position 0 is never a target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from megathink.errors import DataError
from megathink.config.tokenizer import TokenizerConfig
from megathink.data.batch_order import EpochOrder
from megathink.data.chat_template import encode_record_prompt
from megathink.data.types import HybridSFTRecord, SFTBatch, TokenizerBundle

SFTPair = tuple["SFTExample", ...]
"""The examples of one question, always batched together (think first)."""


@dataclass
class SFTExample:
    """One tokenized SFT sequence; loss_mask[t] = 1 iff input_ids[t] is a trained target."""

    input_ids: list[int]
    loss_mask: list[int]
    mode: str  # "think" or "short"
    level: Optional[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_sft_pair(
    record: HybridSFTRecord,
    bundle: TokenizerBundle,
    cfg: TokenizerConfig,
    *,
    long_prefix: str = "",
    nothinking_answers: bool = True,
) -> SFTPair:
    """The examples of one hybrid record for `cfg.template` (see the module docstring): (think,
    short) for thinkless, or (short,) when the record's budget is below the think response;
    (thinking, nothinking) or (thinking,) for adaptthink."""
    prompt = encode_record_prompt(bundle, record, cfg)

    def example(mode: str, forced: list[int], trained: list[int], text: str) -> SFTExample:
        response = trained + list(bundle.tokenizer.encode(text, add_special_tokens=False)) + [bundle.eos_id]
        return SFTExample(
            input_ids=prompt + forced + response,
            loss_mask=[0] * (len(prompt) + len(forced)) + [1] * len(response),
            mode=mode,
            level=record.level,
        )

    long = long_prefix + record.long
    if cfg.template == "thinkless":
        think = example("think", [], [bundle.control.think], long)
        short = example("short", [], [bundle.control.short], record.short)
        budget = getattr(record, "budget", None)
        if budget is not None and len(think) - len(prompt) > budget:
            return (short,)
        return think, short
    thinking = example("think", [], [], long)
    if not nothinking_answers:
        return (thinking,)
    return thinking, example("short", [bundle.control.end_think], [], record.short)


def prepare_sft_pairs(
    records: Sequence[HybridSFTRecord],
    bundle: TokenizerBundle,
    cfg: TokenizerConfig,
    max_seq_len: int,
    *,
    long_prefix: str = "",
    nothinking_answers: bool = True,
) -> tuple[list[SFTPair], int]:
    """Encoded questions, without those where any example exceeds `max_seq_len`; and how many were dropped."""
    pairs = []
    dropped = 0
    for record in records:
        pair = encode_sft_pair(record, bundle, cfg, long_prefix=long_prefix, nothinking_answers=nothinking_answers)
        if pair_fits(pair, max_seq_len):
            pairs.append(pair)
        else:
            dropped += 1
    return pairs, dropped


def pair_fits(pair: SFTPair, max_seq_len: int) -> bool:
    """Whether every example of a question fits `max_seq_len` tokens (else the question is dropped)."""
    return all(len(example) <= max_seq_len for example in pair)


def collate_sft(examples: Sequence[SFTExample], pad_id: int) -> SFTBatch:
    """Right-padded batch: input_ids/attention_mask [B, T] long, loss_mask [B, T] float."""
    if not examples:
        raise DataError("collate_sft got no examples: give at least one SFTExample.")
    width = max(len(e) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)  # [B, T]
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)  # [B, T]
    loss_mask = torch.zeros((len(examples), width), dtype=torch.float32)  # [B, T]
    for row, example in enumerate(examples):
        length = len(example)
        input_ids[row, :length] = torch.tensor(example.input_ids, dtype=torch.long)
        attention_mask[row, :length] = 1
        loss_mask[row, :length] = torch.tensor(example.loss_mask, dtype=torch.float32)
    modes = tuple(e.mode for e in examples)
    return SFTBatch(input_ids=input_ids, attention_mask=attention_mask, loss_mask=loss_mask, modes=modes)


class SFTBatchIterator:
    """Endless batches of `questions_per_batch` questions, both forms of each (think, short, ...).

    Every epoch visits the pairs in a fresh order drawn from (seed, epoch); an epoch's last
    incomplete batch is skipped so every batch is full (`batch_order.EpochOrder`, shared with
    the shard readers). `state_dict()` records (epoch, position); loading it makes the
    iterator continue with exactly the batches it would have produced.
    """

    def __init__(self, pairs: Sequence[SFTPair], questions_per_batch: int, seed: int, pad_id: int) -> None:
        self.order = EpochOrder(len(pairs), questions_per_batch, seed)
        self.pairs = list(pairs)
        self.questions_per_batch = questions_per_batch
        self.seed = seed
        self.pad_id = pad_id

    @property
    def batches_per_epoch(self) -> int:
        return self.order.batches_per_epoch

    @property
    def epoch(self) -> int:
        return self.order.epoch

    @property
    def position(self) -> int:
        return self.order.position

    def __iter__(self) -> "SFTBatchIterator":
        return self

    def __next__(self) -> SFTBatch:
        chosen = self.order.next_indices()
        examples = [example for index in chosen for example in self.pairs[index]]
        return collate_sft(examples, self.pad_id)

    def state_dict(self) -> dict[str, Any]:
        return self.order.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order.load_state_dict(state)

    def close(self) -> None:
        """Nothing to release (the prefetching readers have the same method)."""
