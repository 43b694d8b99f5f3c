"""Which implementations compute the policy's log-probs and its GRPO / DeGRPO loss.

`logprob` picks the path of `HFBackend.logprobs` (and the Megatron backend's): 'fused' (the
Triton kernels, lm_head matmul and softmax in one pass; CUDA only), 'chunked' (plain torch,
the lm_head matmul taken a chunk of tokens at a time; any device) or 'naive' (the model's full
`[B, T, V]` logits, then `token_logprobs`; the baseline). 'auto' (the default) is 'naive' for
vocabularies of at most `naive_max_vocab` tokens, where the full logits are small and the plain
path is fastest, and 'chunked' above it, so no training path of a real model (R1-Distill-Qwen:
152K tokens) ever stores fp32 `[N, V]` logits unless 'naive' is asked for by name. 'fused' on
a machine without triton or CUDA is refused when the backend is built, naming what is
missing; it never falls back silently (docs/KERNELS.md).

`policy_loss` picks the loss of `trainer.rl_update` for GRPO and DeGRPO: 'reference' (the
`megathink.algorithms` functions) or 'fused' (`megathink.kernels.policy_loss`, one autograd
node; the same loss and metrics, gradients equal to rounding). It is plain torch and runs on
any device.
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.validation import check_choice, check_int

LOGPROB_IMPLS = ("fused", "chunked", "naive")
LOGPROB_CHOICES = ("auto", *LOGPROB_IMPLS)
POLICY_LOSS_IMPLS = ("fused", "reference")


@dataclass(kw_only=True)
class KernelsConfig:
    logprob: str = "auto"
    """'auto' (naive up to naive_max_vocab tokens, chunked above), 'fused' (Triton, CUDA),
    'chunked' (torch, any device) or 'naive' (full logits)."""

    naive_max_vocab: int = 4096
    """'auto' computes full logits only for vocabularies up to this size (toy models); larger
    ones take the chunked path."""

    chunk_tokens: int = 0
    """Size of the logits buffer of 'chunked' (forward and backward) and of the backward of
    'fused', in tokens' worth of full-vocabulary logits: the lm_head is taken a vocabulary tile
    at a time, every token's logits over the tile filling at most chunk_tokens * V elements;
    0 picks ~256 MiB of fp32 logits ('chunked') or 1 GiB in the model dtype ('fused')."""

    policy_loss: str = "reference"
    """GRPO / DeGRPO loss of the RL update: 'reference' (`megathink.algorithms`) or 'fused'
    (`megathink.kernels.policy_loss`: one autograd node saving a single [B, T] tensor; loss and
    metrics bit-identical, gradients equal to rounding). AdaptThink always uses its reference
    loss (there is no fused AdaptThink loss), whatever this says."""

    def __post_init__(self) -> None:
        check_choice("kernels.logprob", self.logprob, LOGPROB_CHOICES)
        check_int("kernels.naive_max_vocab", self.naive_max_vocab, low=0)
        check_int("kernels.chunk_tokens", self.chunk_tokens, low=0)
        check_choice("kernels.policy_loss", self.policy_loss, POLICY_LOSS_IMPLS)

    def logprob_for(self, vocab_size: int) -> str:
        """The implementation `logprob` means for a model of `vocab_size` tokens ('auto' resolved)."""
        if self.logprob != "auto":
            return self.logprob
        return "naive" if vocab_size <= self.naive_max_vocab else "chunked"
