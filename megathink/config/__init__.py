"""Typed run configuration: one keyword-only dataclass per concern, validated on creation.

Library code takes these dataclasses; only `megathink.launch` turns Hydra/YAML into them.
"""

from megathink.config.algorithm import AlgorithmConfig
from megathink.config.checkpoint import CheckpointConfig
from megathink.config.data import DataConfig
from megathink.config.evaluation import EvalConfig
from megathink.config.kernels import KernelsConfig
from megathink.config.logger import LoggerConfig
from megathink.config.model import ModelConfig
from megathink.config.optimizer import OptimizerConfig
from megathink.config.parallel import ParallelConfig
from megathink.config.plan import PlanConfig
from megathink.config.reward import RewardConfig
from megathink.config.rl import RLConfig
from megathink.config.rollout import RolloutConfig
from megathink.config.run import RunConfig
from megathink.config.sft import SFTConfig
from megathink.config.tokenizer import TokenizerConfig
from megathink.config.trainer import TrainerConfig
from megathink.config.validation import ConfigError

__all__ = [
    "AlgorithmConfig",
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "KernelsConfig",
    "LoggerConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ParallelConfig",
    "PlanConfig",
    "RLConfig",
    "RewardConfig",
    "RolloutConfig",
    "RunConfig",
    "SFTConfig",
    "TokenizerConfig",
    "TrainerConfig",
]
