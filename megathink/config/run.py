"""The whole run: one typed config per concern, plus the stages to run and the output folder.

Cross-section rules (those that need two sections at once) are checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from megathink.config.algorithm import AlgorithmConfig, default_algorithm_config
from megathink.config.checkpoint import CheckpointConfig
from megathink.config.data import DataConfig
from megathink.config.evaluation import EvalConfig
from megathink.config.kernels import KernelsConfig
from megathink.config.logger import LoggerConfig
from megathink.config.model import ModelConfig
from megathink.config.parallel import ParallelConfig
from megathink.config.plan import PlanConfig
from megathink.config.reward import RewardConfig
from megathink.config.rl import RLConfig
from megathink.config.rollout import RolloutConfig
from megathink.config.sft import SFTConfig
from megathink.config.tokenizer import TokenizerConfig
from megathink.config.trainer import TrainerConfig
from megathink.config.validation import ConfigError, check_choice, check_nonempty_str

STAGES = ("sft", "presample", "rl")


@dataclass(kw_only=True)
class RunConfig:
    output_dir: str = "outputs/run"
    """Folder for checkpoints, metrics, the resolved config and the final HF model."""

    stages: list[str] = field(default_factory=lambda: ["sft"])
    """Stages to run in order: 'sft' (Thinkless stage 1 warm-up, or a thinking warm-up with
    tokenizer.template=adaptthink), 'presample' (AdaptThink's Rbar_ref pass over the training
    prompts, resumable), 'rl' (GRPO / DeGRPO / AdaptThink). Presample and RL start from the SFT
    stage's final model when it runs, else from model.path."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """The policy model."""

    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """Tokenizer, control tokens and chat template."""

    data: DataConfig = field(default_factory=DataConfig)
    """Prompt and SFT data."""

    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """Device, seed, threads, logging cadence, time limit (shared by the stages)."""

    sft: SFTConfig = field(default_factory=SFTConfig)
    """The SFT warm-up stage: steps, batch sizes, optimizer."""

    rl: RLConfig = field(default_factory=RLConfig)
    """The RL stage: rollout batch, updates per step, optimizer."""

    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """Sampling settings for RL rollouts."""

    algorithm: AlgorithmConfig = field(default_factory=default_algorithm_config)
    """The RL method and its settings: a registered method's config (`megathink.methods`;
    default DeGRPO with the authors' settings)."""

    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward table and grading limits."""

    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    """Training backend and parallel sizes."""

    kernels: KernelsConfig = field(default_factory=KernelsConfig)
    """Log-prob implementation (fused Triton, chunked torch, naive)."""

    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpoint cadence and resume policy."""

    logger: LoggerConfig = field(default_factory=LoggerConfig)
    """Metric sinks."""

    eval: EvalConfig = field(default_factory=EvalConfig)
    """Held-out evaluation."""

    plan: PlanConfig = field(default_factory=PlanConfig)
    """What the memory planner assumes (GPU memory, headroom, MFU; `megathink plan`, and the
    start-up check of `megathink train` / `sft`)."""

    def __post_init__(self) -> None:
        check_nonempty_str("output_dir", self.output_dir)
        if not self.stages:
            raise ConfigError("stages = [] is invalid: list at least one stage, e.g. [sft].")
        for stage in self.stages:
            check_choice("stages[*]", stage, STAGES)
        if self.tokenizer.kind == "pretrained" and self.tokenizer.path is None:
            if self.model.path is None:
                raise ConfigError(
                    "tokenizer.path = None is invalid with tokenizer.kind='pretrained' and no model.path: "
                    "point tokenizer.path (or model.path) at a local HF directory."
                )
            self.tokenizer.path = self.model.path
        if self.model.path is not None and self.tokenizer.kind == "toy_arithmetic":
            raise ConfigError(
                f"tokenizer.kind = 'toy_arithmetic' is invalid with model.path = {self.model.path!r}: "
                "a pretrained model needs its own tokenizer; set tokenizer.kind=pretrained."
            )
        if len(set(self.stages)) != len(self.stages) or [STAGES.index(x) for x in self.stages] != sorted(
            STAGES.index(x) for x in self.stages
        ):
            raise ConfigError(f"stages = {self.stages!r} is invalid: each stage once, in the order sft, presample, rl.")
        for stage, budget in (("rl", self.rl.max_tokens_per_micro_batch), ("sft", self.sft.max_tokens_per_micro_batch)):
            if budget and self.parallel.backend == "megatron" and not self.parallel.pack_sequences:
                raise ConfigError(
                    f"{stage}.max_tokens_per_micro_batch = {budget} is invalid with parallel.backend='megatron' and "
                    "parallel.pack_sequences=false: token-budget micro-batches differ in width and the pipeline "
                    "needs one shape; set parallel.pack_sequences=true (THD packing)."
                )
        if self.parallel.backend == "megatron" and "presample" in self.stages:
            raise ConfigError(
                "parallel.backend = 'megatron' is invalid with the 'presample' stage: presampling only samples "
                "from the reference model; run it on its own with parallel.backend=hf (`megathink presample`), "
                "then the sft / rl stages with megatron."
            )
        if "presample" in self.stages and not self.algorithm.uses_presample:
            raise ConfigError(
                f"stages = {self.stages!r} is invalid with algorithm.name = {self.algorithm.name!r}: the presample "
                "stage computes AdaptThink's Rbar_ref; drop it or use algorithm=adaptthink."
            )
        if self.eval.per_effort and not self.data.effort_levels:
            raise ConfigError(
                "eval.per_effort = true is invalid with data.effort_levels = {}: name the effort levels, e.g. "
                "data=toy_effort or ++data.effort_levels={low:512,medium:2048,high:8192}."
            )
        self.algorithm.check_is_method_config()
        self.algorithm.check_run(self)  # the method's own rules on other sections
        if "presample" in self.stages and self.data.source == "files" and not self.data.train_path:
            raise ConfigError(
                "data.train_path = None is invalid for the 'presample' stage with data.source='files': "
                "give the RL prompt file whose prompts get an Rbar_ref."
            )
        if "rl" in self.stages and self.data.source == "files" and not self.data.train_path:
            raise ConfigError(
                "data.train_path = None is invalid for the 'rl' stage with data.source='files': "
                "give the RL prompt file (problem, answer[, level] per line)."
            )
        if "sft" in self.stages and self.data.source == "files" and not (self.data.sft_path or self.data.sft_shards):
            raise ConfigError(
                "data.sft_path = None is invalid for the 'sft' stage with data.source='files': "
                "give the hybrid SFT file (problem, answer, long, short per line) or its shards (data.sft_shards=DIR)."
            )
