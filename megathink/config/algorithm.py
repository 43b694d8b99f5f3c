"""The RL algorithm section: the settings every method shares, and the registry of method configs.

Each RL method (megathink/methods/<name>.py) declares its own config dataclass, a subclass of
`AlgorithmConfig` with its own fields, docstrings and validation (`DeGRPOConfig.alpha`,
`AdaptThinkConfig.delta`, ...), and registers it under its name with
`register_algorithm_config`. `RunConfig.algorithm` is typed with this base class; the Hydra
group `algorithm/<name>.yaml` selects the subclass (launch registers every registered config as
`<name>_schema`), so `algorithm=adaptthink algorithm.delta=0.1` is typed and a key of another
method is refused with the dotted name. The built-in methods are loaded on the first lookup of
the registry (`megathink.methods`, imported by name: the config layer never depends on it).

Shared here: the PPO clip range, the KL penalty to a frozen reference and its estimator, the
entropy bonus, and `check_run`, the hook a method uses for rules that involve other sections
(AdaptThink needs `tokenizer.template=adaptthink`, ...). The loss-option names below are also
what `megathink.algorithms` validates against.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from megathink.config.validation import ConfigError, check_choice, check_float

if TYPE_CHECKING:
    from megathink.config.run import RunConfig

DEFAULT_ALGORITHM = "degrpo"
GRPO_AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")
RESPONSE_NORMS = ("batch_token", "sequence")
KL_ESTIMATORS = ("k1", "k2", "k3")
ADAPTTHINK_FORMS = ("code", "paper")

_CONFIGS: dict[str, type["AlgorithmConfig"]] = {}
_BUILTINS_MODULE = "megathink.methods"


@dataclass(kw_only=True)
class AlgorithmConfig:
    uses_presample: ClassVar[bool] = False
    """Whether the method has a reference pre-sampling stage (`stages=[presample, rl]`)."""

    name: str = DEFAULT_ALGORITHM
    """The RL method, one of the registered ones: 'grpo', 'degrpo' (Thinkless), 'adaptthink',
    ... (`megathink.methods`; on the command line `algorithm=<name>` selects its config)."""

    clip_eps: float = 0.2
    """PPO clip range: ratios are clipped to [1 - clip_eps, 1 + clip_eps]."""

    kl_coef: float = 1e-3
    """Weight of the KL penalty to the reference policy; 0 disables it (and the reference)."""

    kl_estimator: str = "k3"
    """KL estimator: 'k1', 'k2' or 'k3' (k3 is clamped to [-10, 10])."""

    entropy_coef: float = 1e-3
    """Weight of the entropy bonus (token mean); 0 disables it."""

    def __post_init__(self) -> None:
        check_choice("algorithm.name", self.name, registered_algorithms())
        check_float("algorithm.clip_eps", self.clip_eps, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        check_float("algorithm.kl_coef", self.kl_coef, low=0.0)
        check_choice("algorithm.kl_estimator", self.kl_estimator, KL_ESTIMATORS)
        check_float("algorithm.entropy_coef", self.entropy_coef, low=0.0)

    def check_run(self, run: "RunConfig") -> None:
        """Rules between this method and other sections (RunConfig.__post_init__ calls it)."""

    def check_is_method_config(self) -> None:
        """ConfigError unless this is the registered config class of `name` (a bare
        `AlgorithmConfig`, or another method's config, cannot drive method `name`)."""
        expected = algorithm_config_class(self.name)
        if not isinstance(self, expected):
            raise ConfigError(
                f"algorithm.name = {self.name!r} is invalid with a {type(self).__name__}: that method's settings are a "
                f"{expected.__name__}; select the method as a whole (algorithm={self.name} on the command line)."
            )


def register_algorithm_config(cls: type[AlgorithmConfig]) -> type[AlgorithmConfig]:
    """Class decorator: make `cls` the config of the method named by its `name` default."""
    name = cls.__dataclass_fields__["name"].default
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__}: an algorithm config needs a non-empty default `name`.")
    if _CONFIGS.get(name, cls) is not cls:
        raise TypeError(f"algorithm {name!r} is registered twice ({_CONFIGS[name].__name__}, {cls.__name__}).")
    _CONFIGS[name] = cls
    return cls


def registered_algorithms() -> tuple[str, ...]:
    """Names of every registered method, the built-in ones included."""
    _load_builtins()
    return tuple(sorted(_CONFIGS))


def algorithm_config_class(name: str) -> type[AlgorithmConfig]:
    """The config class of method `name` (ConfigError listing the methods when unknown)."""
    _load_builtins()
    if name not in _CONFIGS:
        raise ConfigError(
            f"algorithm.name = {name!r} is invalid: must be one of " + ", ".join(repr(n) for n in sorted(_CONFIGS))
        )
    return _CONFIGS[name]


def default_algorithm_config() -> AlgorithmConfig:
    """The default method's config with its defaults (DeGRPO, the authors' settings)."""
    return algorithm_config_class(DEFAULT_ALGORITHM)()


def algorithm_config(name: str, **fields: Any) -> AlgorithmConfig:
    """Method `name`'s config with `fields` set (for code and tests that pick a method by name)."""
    return algorithm_config_class(name)(**fields)


def _load_builtins() -> None:
    importlib.import_module(_BUILTINS_MODULE)  # its modules register their configs on import


__all__ = [
    "ADAPTTHINK_FORMS",
    "AlgorithmConfig",
    "DEFAULT_ALGORITHM",
    "GRPO_AGGREGATIONS",
    "KL_ESTIMATORS",
    "RESPONSE_NORMS",
    "algorithm_config",
    "algorithm_config_class",
    "default_algorithm_config",
    "register_algorithm_config",
    "registered_algorithms",
]
