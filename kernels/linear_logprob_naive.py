"""The naive reference of `linear_logprob`: full `[N, V]` logits, log_softmax, gather.

`naive_linear_logprob(hidden [N, H], weight [V, H], targets [N])` is the textbook path every
other implementation is tested against (in float64 when given float64 inputs): it
materialises the logits, their log-softmax and, in the backward, their gradients, so it
needs about `4 * N * V * 4` bytes. It is also the `kernels.logprob=naive` baseline of
`benchmarks/logprob_memory.py`. Targets < 0 give log-prob 0 and entropy 0, and no gradient.
"""

from __future__ import annotations

from typing import Optional, Union

import torch


def naive_linear_logprob(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    return_entropy: bool = False,
) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """log p(targets) (and the entropy) under softmax(hidden @ weight.T / temperature), `[N]`."""
    acc = torch.promote_types(hidden.dtype, torch.float32)
    logits = (hidden @ weight.t()).to(acc)  # [N, V]
    if temperature != 1.0:  # dividing by 1 would only add a pass (and a buffer) over [N, V]
        logits = logits / temperature
    log_p = torch.log_softmax(logits, dim=-1)  # [N, V]
    valid = targets >= 0  # [N]
    picked = log_p.gather(1, targets.clamp(min=0).long()[:, None]).squeeze(1)  # [N]
    zero = torch.zeros((), dtype=acc, device=hidden.device)
    logp = torch.where(valid, picked, zero)
    if not return_entropy:
        return logp
    entropy: Optional[torch.Tensor] = -(log_p.exp() * log_p).sum(-1)  # [N]
    return logp, torch.where(valid, entropy, zero)
