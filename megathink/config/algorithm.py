"""RL algorithm and its loss settings (ALGORITHMS.md): GRPO, DeGRPO (Thinkless), AdaptThink.

Defaults are the authors': DeGRPO alpha 1e-3 with the code's `batch_token` response
normalisation, clip 0.2, k3 KL and entropy coefficients 1e-3; AdaptThink delta 0.05 with
the code's length-normalised sequence ratio, half of each prompt's samples forced to open with
`</think>` and half with "Alright", and K = 16 reference samples per prompt for Rbar_ref (the
`megathink presample` pass). AdaptThink uses neither KL nor entropy terms, so with
name='adaptthink' their coefficients must be 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from megathink.config.validation import ConfigError, check_choice, check_float, check_int, check_nonempty_str, fail

ALGORITHMS = ("grpo", "degrpo", "adaptthink")
GRPO_AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")
RESPONSE_NORMS = ("batch_token", "sequence")
KL_ESTIMATORS = ("k1", "k2", "k3")
ADAPTTHINK_FORMS = ("code", "paper")


@dataclass(kw_only=True)
class AlgorithmConfig:
    name: str = "degrpo"
    """'grpo', 'degrpo' (Thinkless) or 'adaptthink'."""

    clip_eps: float = 0.2
    """PPO clip range: ratios are clipped to [1 - clip_eps, 1 + clip_eps]."""

    alpha: float = 1e-3
    """DeGRPO weight of the control-token term against the response term."""

    response_norm: str = "batch_token"
    """DeGRPO response-term normalisation: 'batch_token' (authors' code) or 'sequence' (paper)."""

    agg: str = "token_mean"
    """GRPO loss aggregation: 'token_mean', 'seq_mean_token_mean' or 'seq_mean_token_sum_norm'."""

    std_normalize: bool = False
    """Divide group-relative advantages by the group std (+1e-6); Thinkless does not."""

    kl_coef: float = 1e-3
    """Weight of the KL penalty to the reference policy; 0 disables it (and the reference)."""

    kl_estimator: str = "k3"
    """KL estimator: 'k1', 'k2' or 'k3' (k3 is clamped to [-10, 10])."""

    entropy_coef: float = 1e-3
    """Weight of the entropy bonus (token mean); 0 disables it."""

    delta: float = 0.05
    """AdaptThink bonus for NoThinking responses (1/lambda of the constrained objective)."""

    importance_sampling: bool = True
    """AdaptThink's cold start: force `nothinking_share` of each prompt's samples to open with
    the end-of-thinking token and the rest with `thinking_opener` (pi_IS of the opener is that
    share). False is the naive baseline: every response sampled from the policy, no forcing,
    the plain sequence ratio against the old policy."""

    nothinking_share: float = 0.5
    """AdaptThink: share of each prompt's `rollout.n_samples` forced to NoThinking (rounded;
    at least one of each kind). It is pi_IS of the NoThinking opener, 1 - it of the Thinking one."""

    thinking_opener: str = "Alright"
    """AdaptThink: the text forced at the start of Thinking samples (a word that opens the
    reference model's thoughts; tokenised without special tokens, every token forced)."""

    nothinking_max_new_tokens: Optional[int] = None
    """AdaptThink: generated-token cap of NoThinking samples; None: rollout.max_new_tokens
    (the authors: 4096)."""

    thinking_max_new_tokens: Optional[int] = None
    """AdaptThink: generated-token cap of Thinking samples; None: rollout.max_new_tokens
    (the authors: 16384)."""

    form: str = "code"
    """AdaptThink loss: 'code' (length-normalised sequence ratio, the released models) or
    'paper' (full-sequence ratio, Eq. 9)."""

    presample_k: int = 16
    """AdaptThink: samples of the reference model per training prompt whose mean accuracy is
    Rbar_ref (`megathink presample`; the paper's K = 16)."""

    presample_limit: int = 0
    """`megathink presample`: only the first N distinct training prompts (smoke runs); 0 = all."""

    reference_accuracy_path: Optional[str] = None
    """AdaptThink's per-prompt Rbar_ref file (.jsonl) that `megathink presample` writes and
    AdaptThink training reads; None: `<output_dir>/reference_accuracy.jsonl`."""

    def __post_init__(self) -> None:
        check_choice("algorithm.name", self.name, ALGORITHMS)
        check_float("algorithm.clip_eps", self.clip_eps, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        check_float("algorithm.alpha", self.alpha, low=0.0)
        check_choice("algorithm.response_norm", self.response_norm, RESPONSE_NORMS)
        check_choice("algorithm.agg", self.agg, GRPO_AGGREGATIONS)
        check_float("algorithm.kl_coef", self.kl_coef, low=0.0)
        check_choice("algorithm.kl_estimator", self.kl_estimator, KL_ESTIMATORS)
        check_float("algorithm.entropy_coef", self.entropy_coef, low=0.0)
        check_float("algorithm.delta", self.delta, low=0.0)
        check_float(
            "algorithm.nothinking_share", self.nothinking_share, low=0.0, high=1.0,
            low_inclusive=False, high_inclusive=False,
        )
        check_nonempty_str("algorithm.thinking_opener", self.thinking_opener)
        for key in ("nothinking_max_new_tokens", "thinking_max_new_tokens"):
            if getattr(self, key) is not None:
                check_int(f"algorithm.{key}", getattr(self, key), low=1)
        if not isinstance(self.importance_sampling, bool):
            fail("algorithm.importance_sampling", self.importance_sampling, "must be true or false")
        if self.name == "adaptthink":
            for key in ("kl_coef", "entropy_coef"):
                if getattr(self, key) != 0:
                    raise ConfigError(
                        f"algorithm.{key} = {getattr(self, key)!r} is invalid with algorithm.name='adaptthink': "
                        f"the AdaptThink loss has no such term; set algorithm.{key}=0 (algorithm=adaptthink does)."
                    )
        check_choice("algorithm.form", self.form, ADAPTTHINK_FORMS)
        check_int("algorithm.presample_k", self.presample_k, low=1)
        check_int("algorithm.presample_limit", self.presample_limit, low=0)
        path = self.reference_accuracy_path
        if path is not None and (not isinstance(path, str) or not path.endswith(".jsonl")):
            fail("algorithm.reference_accuracy_path", path, "must be a .jsonl file path or null")
