"""Plain records that flow between data, rollout, rewards and trainer.

Token tensors are shaped `[B, T]` (batch, time); `loss_mask` is 1 on tokens whose prediction
is trained (the response tokens, the control token and the closing EOS), 0 on the prompt and
padding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Optional

import torch


def prompt_id(problem: str) -> str:
    """Stable id of a prompt: the first 16 hex digits of the SHA-256 of its text."""
    return hashlib.sha256(problem.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class PromptRecord:
    """One question with its reference answer (RL and evaluation).

    `budget` is the token budget the prompt states (L1's "Think for N tokens.", rendered by
    `chat_template`, read by the L1 reward), None for none; `effort` names the effort level
    (`data.effort_levels`) the budget came from, None when the budget is the data's own or absent.
    """

    problem: str
    answer: str
    level: Optional[int] = None
    source: str = ""
    budget: Optional[int] = None
    effort: Optional[str] = None

    @property
    def prompt_id(self) -> str:
        return prompt_id(self.problem)


@dataclass(frozen=True)
class HybridSFTRecord:
    """One question with both answer forms (Thinkless stage-1 distillation data).

    `long` is the text that follows the think control token: the chain of thought, exactly one
    end-of-thinking token, then the final answer. `short` is the text that follows the short
    control token: the direct answer. Neither includes the control token itself or EOS.
    `budget` / `effort` as in `PromptRecord` (set on toy records by `data.effort_assignment`).
    """

    problem: str
    answer: str
    long: str
    short: str
    level: Optional[int] = None
    budget: Optional[int] = None
    effort: Optional[str] = None


@dataclass(frozen=True)
class ControlTokenIds:
    """Token ids of the two control tokens and of the end-of-thinking token."""

    short: int
    think: int
    end_think: int


@dataclass
class TokenizerBundle:
    """A HF tokenizer with the ids the pipeline needs resolved once.

    `tokenizer` is a `transformers` tokenizer (`len(tokenizer)` is the vocabulary the model
    must have); `vocab_grew` is True when control tokens were added (embeddings need resizing).
    """

    tokenizer: Any
    control: ControlTokenIds
    eos_id: int
    pad_id: int
    vocab_grew: bool = False

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)


@dataclass
class SFTBatch:
    """A padded SFT micro-batch (right padding).

    input_ids [B, T] long, attention_mask [B, T] long (1 on real tokens),
    loss_mask [B, T] float: 1 where the token at t is a training target (predicted from t-1).
    modes: the answer form of each row ("think" / "short"), or () when unknown.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    modes: tuple[str, ...] = ()

    @property
    def num_target_tokens(self) -> int:
        return int(self.loss_mask.sum().item())
