"""Which implementation computes the per-token log-probs and entropies of the policy.

`logprob` picks the path of `HFBackend.logprobs` (and the Megatron backend's): 'fused' (the
Triton kernels, lm_head matmul and softmax in one pass; CUDA only), 'chunked' (plain torch,
the lm_head matmul taken a chunk of tokens at a time; any device) or 'naive' (the model's full
`[B, T, V]` logits, then `token_logprobs`; the baseline). 'fused' on a machine without
triton or CUDA is refused when the backend is built, naming what is missing; it never falls
back silently (docs/KERNELS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.validation import check_choice, check_int

LOGPROB_IMPLS = ("fused", "chunked", "naive")


@dataclass(kw_only=True)
class KernelsConfig:
    logprob: str = "chunked"
    """'fused' (Triton, CUDA), 'chunked' (torch, any device) or 'naive' (full logits)."""

    chunk_tokens: int = 0
    """Tokens per chunk of the lm_head matmul in the backward (and the chunked forward); 0 picks
    ~256 MiB of fp32 logits per chunk ('chunked') or 1 GiB in the model dtype ('fused')."""

    def __post_init__(self) -> None:
        check_choice("kernels.logprob", self.logprob, LOGPROB_IMPLS)
        check_int("kernels.chunk_tokens", self.chunk_tokens, low=0)
