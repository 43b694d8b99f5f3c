"""`RLMethod`: everything one RL method decides, behind one surface the RL loop calls.

A method is one module in `megathink/methods/` holding:

* its config: a subclass of `config.AlgorithmConfig` with its own fields, docstrings and
  validation (`check_run` for rules that involve other sections), registered by name;
* its rollout plan: `arms(params)`, the sampling arms of every prompt's group (free sampling;
  forced openers with their proposal probabilities; both modes forced), run by `rollout_plan`;
* its reward and advantage: `rewards` (per sample, from the judged responses) and
  `advantages` (per sample, per group or per batch, from the rewards after the composable
  shaping terms of `reward.*`; rewards/shaping.py);
* its loss: `loss_fn(cfg, impl)`, a `megathink.algorithms` function with the config's
  coefficients bound, called per micro-batch by `trainer.rl_update`;
* its metrics: `rollout_metrics` (from the graded samples) and `update_metrics` (after the
  optimizer steps, e.g. AdaptThink's NoThinking probability);
* optional state (`state_dict` / `load_state_dict`), saved in every RL checkpoint;
* what the final forced-mode evaluation forces (`forced_openers`).

The RL loop (trainer/rl.py) names no method: it builds `method_class(cfg.algorithm.name)` and
calls these. A new method = one module here (discovered on import) + one
`hydra_conf/algorithm/<name>.yaml` + its tests (docs/ARCHITECTURE.md, "Write your own method").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

import torch

from megathink.config.algorithm import AlgorithmConfig, algorithm_config_class
from megathink.config.run import RunConfig
from megathink.data.rl_prompts import RLRecord
from megathink.data.types import TokenizerBundle
from megathink.errors import ConfigError
from megathink.evaluation.policy_report import Judged
from megathink.methods.rollout_plan import RolloutArm
from megathink.rollout.types import Sample, SamplingParams

if TYPE_CHECKING:
    from megathink.trainer.rl_batch import RLBatch

LossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]
"""f(logp, old_logp, adv, mask, *, ref_logp, entropy, forced, opener_prob, control_advantages, denominators)
-> (loss, metrics)."""

Rescore = Callable[[torch.Tensor], torch.Tensor]
"""rows [k] of the step's batch -> their response log-probs [k, T] under the updated policy."""


@dataclass
class MethodContext:
    """What a method may read about the run besides its own config."""

    run: RunConfig
    bundle: TokenizerBundle
    train: Sequence[RLRecord]
    """The RL training prompts, in the order the prompt sampler indexes them."""

    template: str
    """The chat template the prompts are rendered with (the starting model's tokenizer section)."""


@dataclass
class Rollouts:
    """One step's graded samples, in batch order (`Sample.group_id` indexes `records`)."""

    samples: list[Sample]
    judged: list[Judged]
    records: Sequence[RLRecord]
    """The step's prompts (with their answers and levels)."""

    arm: torch.Tensor
    """[B] long: the arm of the method's rollout plan each sample came from."""

    opener_prob: torch.Tensor
    """[B] float32: pi_IS of each sample's forced opener, 1 where none is importance-weighted."""


class RLMethod(ABC):
    """Base of every method (see the module doc); by default one arm of free samples, no state,
    no extra metrics."""

    name: ClassVar[str]
    config_class: ClassVar[type[AlgorithmConfig]]

    def __init__(self, cfg: AlgorithmConfig, ctx: MethodContext) -> None:
        if not isinstance(cfg, self.config_class):
            raise ConfigError(
                f"algorithm.name = {cfg.name!r} needs a {self.config_class.__name__}; got a {type(cfg).__name__} "
                f"(select algorithm={self.name} on the command line)."
            )
        self.cfg = cfg
        self.ctx = ctx

    # -- rollouts ------------------------------------------------------------------------------
    def arms(self, params: SamplingParams) -> list[RolloutArm]:
        """The sampling arms of each prompt's group: here `params.n` free samples."""
        return [RolloutArm(count=params.n)]

    @property
    def judge_template(self) -> str:
        """How responses are read (which token opens which mode): the prompts' template."""
        return self.ctx.template

    # -- rewards and advantages ----------------------------------------------------------------
    @abstractmethod
    def rewards(self, rollouts: Rollouts) -> list[float]:
        """Per-sample rewards before shaping, `[B]` in batch order."""

    @abstractmethod
    def advantages(self, rollouts: Rollouts, rewards: torch.Tensor) -> torch.Tensor:
        """Per-sample advantages `[B]` from the shaped rewards `[B]`."""

    def control_advantages(self, rollouts: Rollouts, rewards: torch.Tensor) -> Optional[torch.Tensor]:
        """A separate advantage `[B]` for the first response token (the mode choice), for methods
        that train it apart from the response (both-mode groups); None: the row's advantage."""
        return None

    # -- the update ----------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def loss_fn(cls, cfg: AlgorithmConfig, impl: str = "reference") -> LossFn:
        """The loss with `cfg`'s coefficients bound (impl: `kernels.policy_loss`)."""

    # -- metrics -------------------------------------------------------------------------------
    def rollout_metrics(self, rollouts: Rollouts) -> dict[str, float]:
        """Method-specific metrics of the graded rollouts (the common ones are computed anyway)."""
        return {}

    def update_metrics(self, batch: "RLBatch", rescore: Rescore) -> dict[str, float]:
        """Method-specific metrics after the step's optimizer steps (`batch`: the step's RLBatch;
        `rescore`, a collective the loop runs on every rank, scores rows under the new weights)."""
        return {}

    # -- state and evaluation ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Persistent state carried across steps (saved in each RL checkpoint)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` on resume."""

    def forced_openers(self) -> Optional[Sequence[int]]:
        """Tokens the final forced 'think' evaluation opens with after the think token (AdaptThink:
        its thinking opener); None: the control token alone."""
        return None


_METHODS: dict[str, type[RLMethod]] = {}


def register_method(cls: type[RLMethod]) -> type[RLMethod]:
    """Class decorator: register an `RLMethod` under `cls.name`; its config must be registered too."""
    if algorithm_config_class(cls.name) is not cls.config_class:
        raise TypeError(f"{cls.__name__}.config_class is not the config registered as {cls.name!r}.")
    if _METHODS.get(cls.name, cls) is not cls:
        raise TypeError(f"RL method {cls.name!r} is registered twice.")
    _METHODS[cls.name] = cls
    return cls


def method_class(name: str) -> type[RLMethod]:
    """The registered method `name` (ConfigError listing the methods when unknown)."""
    import megathink.methods  # noqa: F401  (built-in methods register on import)

    if name not in _METHODS:
        raise ConfigError(
            f"algorithm.name = {name!r} has no RL method: registered are "
            + ", ".join(repr(n) for n in sorted(_METHODS))
        )
    return _METHODS[name]


def build_method(cfg: AlgorithmConfig, ctx: MethodContext) -> RLMethod:
    """The method of `cfg.name`, with its config and the run's context."""
    return method_class(cfg.name)(cfg, ctx)


__all__ = [
    "LossFn", "MethodContext", "RLMethod", "Rescore", "Rollouts", "build_method", "method_class", "register_method",
]
