"""Per-token log-prob ops, installed as `megathink.kernels` (never as a bare `kernels`).

`token_logprobs` (and `token_entropy`, for the entropy bonus) is the one entry point the models, losses and trainers call. Today it is the
chunked plain-torch reference in `token_logprobs.py`; fused Triton kernels land beside it and
are chosen behind this same function, so callers never change.
"""

from megathink.kernels.token_entropy import token_entropy
from megathink.kernels.token_logprobs import token_logprobs

__all__ = ["token_entropy", "token_logprobs"]
