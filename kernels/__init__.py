"""Per-token log-prob ops, installed as `megathink.kernels` (never as a bare `kernels`).

* `linear_logprob(hidden, weight, targets)`: log-probs (and entropies) straight from hidden
  states and the lm_head weight, never storing the `[N, V]` logits; one dispatch over the
  fused Triton kernels, the chunked torch implementation and the naive reference
  (`dispatch.py`). `vocab_parallel_linear_logprob` is its tensor-parallel form.
* `token_logprobs` / `token_entropy`: the same from already computed `[B, T, V]` logits (the
  `kernels.logprob=naive` path of the HF backend, and the rollout engine).
* `policy_loss`: GRPO / DeGRPO's clipped surrogate with its normalisation in one autograd op.

Triton is imported only by `linear_logprob_triton.py`, and only when 'fused' is asked for.
See docs/KERNELS.md.
"""

if __name__ != "megathink.kernels":
    # Imported as a bare top-level `kernels` because the repository root is on sys.path: hand the
    # name over to the installed package of that name (PyPI's `kernels`), never this folder.
    from megathink.shadowed_imports import hand_over_to_installed

    hand_over_to_installed(__name__, __file__)
else:
    from megathink.kernels.dispatch import IMPLS, fused_unavailable_reason, resolve_impl
    from megathink.kernels.linear_logprob import linear_logprob
    from megathink.kernels.linear_logprob_naive import naive_linear_logprob
    from megathink.kernels.policy_loss import policy_loss
    from megathink.kernels.token_entropy import token_entropy
    from megathink.kernels.token_logprobs import token_logprobs
    from megathink.kernels.vocab_parallel import vocab_parallel_linear_logprob

    __all__ = [
        "IMPLS",
        "fused_unavailable_reason",
        "linear_logprob",
        "naive_linear_logprob",
        "policy_loss",
        "resolve_impl",
        "token_entropy",
        "token_logprobs",
        "vocab_parallel_linear_logprob",
    ]
