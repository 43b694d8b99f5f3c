"""Config validation: every field with a rule has a failing case, and messages name the field.

`test_every_checked_field_has_a_failing_case` reads each dataclass's `__post_init__` and fails
when a field it checks has no row in BAD_VALUES, so a new rule cannot land untested.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap

import pytest

from megathink.config import (
    AlgorithmConfig,
    CheckpointConfig,
    ConfigError,
    DataConfig,
    EvalConfig,
    KernelsConfig,
    LoggerConfig,
    ModelConfig,
    OptimizerConfig,
    ParallelConfig,
    RewardConfig,
    RLConfig,
    RolloutConfig,
    RunConfig,
    SFTConfig,
    TokenizerConfig,
    TrainerConfig,
)
from megathink.config.plan import PlanConfig
from megathink.config.rollout import SGLangConfig
from megathink.methods.adaptthink import AdaptThinkConfig
from megathink.methods.degrpo import DeGRPOConfig
from megathink.methods.grpo import GRPOConfig
from megathink.methods.hgpo import HGPOConfig
from megathink.methods.group_relative import GroupRelativeConfig

SECTIONS = [
    AlgorithmConfig,
    GroupRelativeConfig,
    GRPOConfig,
    DeGRPOConfig,
    AdaptThinkConfig,
    HGPOConfig,
    HGPOConfig,
    CheckpointConfig,
    DataConfig,
    EvalConfig,
    KernelsConfig,
    LoggerConfig,
    ModelConfig,
    OptimizerConfig,
    ParallelConfig,
    RewardConfig,
    RLConfig,
    RolloutConfig,
    RunConfig,
    SFTConfig,
    SGLangConfig,
    TokenizerConfig,
    TrainerConfig,
    PlanConfig,
]

# (config class, keyword arguments, text the error must contain)
BAD_VALUES = [
    (ParallelConfig, {"recompute": "some"}, "parallel.recompute"),
    (ParallelConfig, {"backend": "hf", "recompute": "selective"}, "parallel.recompute = 'selective'"),
    (ParallelConfig, {"backend": "megatron", "sequence_parallel": 1}, "parallel.sequence_parallel"),
    (ParallelConfig, {"backend": "megatron", "sequence_parallel": True}, "parallel.tp = 1"),
    (RLConfig, {"max_tokens_per_micro_batch": -1}, "rl.max_tokens_per_micro_batch"),
    (RLConfig, {"loss_normalization": "sequence"}, "rl.loss_normalization"),
    (RLConfig, {"park_reference": "yes"}, "rl.park_reference"),
    (KernelsConfig, {"naive_max_vocab": -1}, "kernels.naive_max_vocab"),
    (SFTConfig, {"max_tokens_per_micro_batch": -5}, "sft.max_tokens_per_micro_batch"),
    (
        RunConfig,
        {"parallel": ParallelConfig(backend="megatron"), "rl": RLConfig(max_tokens_per_micro_batch=4096)},
        "parallel.pack_sequences=true",
    ),
    (
        RunConfig,
        {"parallel": ParallelConfig(backend="megatron"), "sft": SFTConfig(max_tokens_per_micro_batch=4096)},
        "sft.max_tokens_per_micro_batch = 4096",
    ),
    (ModelConfig, {"path": ""}, "model.path"),
    (ModelConfig, {"arch": "gpt2"}, "model.arch = 'gpt2'"),
    (ModelConfig, {"hidden_size": 0}, "model.hidden_size = 0"),
    (ModelConfig, {"num_layers": -1}, "model.num_layers"),
    (ModelConfig, {"num_heads": 0}, "model.num_heads"),
    (ModelConfig, {"num_heads": 3}, "must divide model.hidden_size"),
    (ModelConfig, {"hidden_size": 12, "num_heads": 4}, "must be even"),
    (ModelConfig, {"num_kv_heads": 0}, "model.num_kv_heads"),
    (ModelConfig, {"num_kv_heads": 3}, "must divide model.num_heads"),
    (ModelConfig, {"intermediate_size": 0}, "model.intermediate_size"),
    (ModelConfig, {"max_position_embeddings": 0}, "model.max_position_embeddings"),
    (ModelConfig, {"rope_theta": 0.0}, "model.rope_theta"),
    (ModelConfig, {"rms_norm_eps": 0.0}, "model.rms_norm_eps"),
    (ModelConfig, {"dtype": "fp8"}, "model.dtype"),
    (ModelConfig, {"attn_implementation": "flash"}, "model.attn_implementation"),
    (TokenizerConfig, {"kind": "sentencepiece"}, "tokenizer.kind"),
    (TokenizerConfig, {"control_tokens": "rename"}, "tokenizer.control_tokens"),
    (TokenizerConfig, {"template": "r1"}, "tokenizer.template"),
    (TokenizerConfig, {"short_token": ""}, "tokenizer.short_token"),
    (TokenizerConfig, {"think_token": ""}, "tokenizer.think_token"),
    (TokenizerConfig, {"end_think_token": ""}, "tokenizer.end_think_token"),
    (TokenizerConfig, {"short_token": "<think>"}, "must be distinct"),
    (TokenizerConfig, {"control_tokens": "map"}, "tokenizer.short_token_id = None"),
    (TokenizerConfig, {"control_tokens": "map", "short_token_id": -5}, "tokenizer.short_token_id = -5"),
    (TokenizerConfig, {"short_token_id": 151650}, "only used by control_tokens='map'"),
    (TokenizerConfig, {"path": "tok/"}, "tokenizer.path"),
    (DataConfig, {"source": "hub"}, "data.source"),
    (DataConfig, {"problem_key": ""}, "data.problem_key"),
    (DataConfig, {"answer_key": ""}, "data.answer_key"),
    (DataConfig, {"level_key": ""}, "data.level_key"),
    (DataConfig, {"levels": []}, "data.levels = []"),
    (DataConfig, {"levels": [0, 1]}, "data.levels[*] = 0"),
    (DataConfig, {"levels": [1, 99]}, "data.levels[*] = 99"),
    (DataConfig, {"levels": [1, 1]}, "must not repeat"),
    (DataConfig, {"toy_train_size": 0}, "data.toy_train_size"),
    (DataConfig, {"toy_eval_per_level": -1}, "data.toy_eval_per_level"),
    (DataConfig, {"seed": -1}, "data.seed"),
    (DataConfig, {"max_seq_len": 4}, "data.max_seq_len"),
    (DataConfig, {"source": "files", "sft_path": None, "train_path": None}, "data.sft_path, data.sft_shards and data.train_path"),
    (DataConfig, {"source": "files", "sft_shards": "", "train_path": "p.jsonl"}, "data.sft_shards = ''"),
    (DataConfig, {"sft_shards": "shards/"}, "needs data.source='files'"),
    (DataConfig, {"source": "files", "sft_shards": "shards/", "sft_path": "s.jsonl"}, "set one of them"),
    (DataConfig, {"sft_reader": "torch"}, "data.sft_reader = 'torch'"),
    (DataConfig, {"sft_reader": "dali"}, "data.sft_reader = 'dali' is invalid without data.sft_shards"),
    (DataConfig, {"sft_prefetch": 0}, "data.sft_prefetch = 0"),
    (DataConfig, {"sft_reader_workers": -1}, "data.sft_reader_workers = -1"),
    (DataConfig, {"sft_shards_verify": "yes"}, "data.sft_shards_verify = 'yes'"),
    (TrainerConfig, {"max_time_minutes": -1.0}, "trainer.max_time_minutes"),
    (TrainerConfig, {"device": "tpu"}, "trainer.device"),
    (TrainerConfig, {"seed": -3}, "trainer.seed"),
    (TrainerConfig, {"num_threads": -1}, "trainer.num_threads"),
    (TrainerConfig, {"log_every": 0}, "trainer.log_every"),
    (SFTConfig, {"max_steps": 0}, "sft.max_steps = 0 is invalid: must be an integer >= 1"),
    (SFTConfig, {"micro_batch_size": 0}, "sft.micro_batch_size"),
    (SFTConfig, {"grad_accum_steps": 0}, "sft.grad_accum_steps"),
    (SFTConfig, {"eval_every": -1}, "sft.eval_every"),
    (SFTConfig, {"eval_every": 50, "max_steps": 10}, "larger than sft.max_steps"),
    (RLConfig, {"max_steps": 0}, "rl.max_steps"),
    (RLConfig, {"prompts_per_step": 0}, "rl.prompts_per_step"),
    (RLConfig, {"mini_batches": 0}, "rl.mini_batches"),
    (RLConfig, {"mini_batches": 8, "prompts_per_step": 4}, "more than rl.prompts_per_step"),
    (RLConfig, {"micro_batch_size": 0}, "rl.micro_batch_size"),
    (RLConfig, {"eval_every": -2}, "rl.eval_every"),
    (RLConfig, {"eval_every": 50, "max_steps": 10}, "larger than rl.max_steps"),
    (OptimizerConfig, {"lr": 0.0}, "optimizer.lr"),
    (OptimizerConfig, {"lr": 2.0}, "optimizer.lr = 2.0"),
    (OptimizerConfig, {"min_lr": -1e-6}, "optimizer.min_lr"),
    (OptimizerConfig, {"lr": 1e-5, "min_lr": 1e-4}, "must not exceed optimizer.lr"),
    (OptimizerConfig, {"schedule": "linear"}, "optimizer.schedule"),
    (OptimizerConfig, {"warmup_ratio": 1.0}, "optimizer.warmup_ratio"),
    (OptimizerConfig, {"betas": [0.9]}, "optimizer.betas"),
    (OptimizerConfig, {"betas": [0.9, 1.0]}, "optimizer.betas[*] = 1.0"),
    (OptimizerConfig, {"eps": 0.0}, "optimizer.eps"),
    (OptimizerConfig, {"weight_decay": -0.1}, "optimizer.weight_decay"),
    (OptimizerConfig, {"grad_clip": -1.0}, "optimizer.grad_clip"),
    (RolloutConfig, {"engine": "vllm"}, "rollout.engine"),
    (RolloutConfig, {"temperature": -0.1}, "rollout.temperature"),
    (RolloutConfig, {"top_p": 0.0}, "rollout.top_p"),
    (RolloutConfig, {"top_k": -1}, "rollout.top_k"),
    (RolloutConfig, {"n_samples": 0}, "rollout.n_samples"),
    (RolloutConfig, {"max_new_tokens": 0}, "rollout.max_new_tokens"),
    (RolloutConfig, {"batch_size": 0}, "rollout.batch_size"),
    (SGLangConfig, {"urls": ["10.0.0.5:30000"]}, "rollout.sglang.urls[0] = '10.0.0.5:30000'"),
    (SGLangConfig, {"launch_command": ""}, "rollout.sglang.launch_command = ''"),
    (SGLangConfig, {"launch_command": "sglang --model-path {model_path} --port {prot}"}, "unknown placeholder {prot}"),
    (SGLangConfig, {"launch_command": "sglang --model-path {model_path}"}, "it must contain {port}"),
    (SGLangConfig, {"launch_command": "serve {model_path} {port"}, "write a literal brace"),
    (SGLangConfig, {"num_engines": 0}, "rollout.sglang.num_engines = 0"),
    (SGLangConfig, {"host": ""}, "rollout.sglang.host"),
    (SGLangConfig, {"base_port": 80}, "rollout.sglang.base_port = 80"),
    (SGLangConfig, {"base_port": 65535, "num_engines": 2}, "must lie in [1024, 65535]"),
    (SGLangConfig, {"gpus_per_engine": -1}, "rollout.sglang.gpus_per_engine"),
    (SGLangConfig, {"first_gpu": -1}, "rollout.sglang.first_gpu"),
    (SGLangConfig, {"health_timeout_s": 0.0}, "rollout.sglang.health_timeout_s"),
    (SGLangConfig, {"request_timeout_s": -1.0}, "rollout.sglang.request_timeout_s"),
    (SGLangConfig, {"max_retries": -1}, "rollout.sglang.max_retries"),
    (SGLangConfig, {"retry_backoff_s": -0.5}, "rollout.sglang.retry_backoff_s"),
    (SGLangConfig, {"sequences_per_request": 0}, "rollout.sglang.sequences_per_request"),
    (SGLangConfig, {"weight_sync": "ray"}, "rollout.sglang.weight_sync = 'ray'"),
    (SGLangConfig, {"sync_dir": ""}, "rollout.sglang.sync_dir = ''"),
    (SGLangConfig, {"api_key_env": ""}, "rollout.sglang.api_key_env"),
    (SGLangConfig, {"placement": "shared"}, "rollout.sglang.placement = 'shared'"),
    (SGLangConfig, {"placement": "colocated", "weight_sync": "nccl"}, "NCCL cannot connect two ranks on one GPU"),
    (SGLangConfig, {"nccl_master_addr": None}, "rollout.sglang.nccl_master_addr"),
    (SGLangConfig, {"nccl_master_port": 70000}, "rollout.sglang.nccl_master_port"),
    (SGLangConfig, {"nccl_bucket_mb": 0}, "rollout.sglang.nccl_bucket_mb"),
    (SGLangConfig, {"nccl_timeout_s": 0.0}, "rollout.sglang.nccl_timeout_s"),
    (SFTConfig, {"nothinking_answers": 1}, "sft.nothinking_answers"),
    (DataConfig, {"long_prefix": 5}, "data.long_prefix"),
    (DataConfig, {"toy_rl_prompts": -1}, "data.toy_rl_prompts"),
    (AlgorithmConfig, {"name": "ppo"}, "algorithm.name"),
    (AlgorithmConfig, {"clip_eps": 0.0}, "algorithm.clip_eps"),
    (AlgorithmConfig, {"kl_coef": -1e-3}, "algorithm.kl_coef"),
    (AlgorithmConfig, {"kl_estimator": "k4"}, "algorithm.kl_estimator"),
    (AlgorithmConfig, {"entropy_coef": float("nan")}, "algorithm.entropy_coef"),
    (GroupRelativeConfig, {"std_normalize": "no"}, "algorithm.std_normalize"),
    (GroupRelativeConfig, {"batch_std_normalize": 1}, "algorithm.batch_std_normalize"),
    (GroupRelativeConfig, {"std_normalize": True, "batch_std_normalize": True}, "cannot be combined"),
    (RewardConfig, {"kimi_length_coef": -1.0}, "reward.kimi_length_coef"),
    (RewardConfig, {"l1_mode": "budget"}, "reward.l1_mode"),
    (RewardConfig, {"l1_alpha": -0.1}, "reward.l1_alpha"),
    (RewardConfig, {"l1_delta": 2.0}, "reward.l1_delta"),
    (RewardConfig, {"truncate_tokens": -1}, "reward.truncate_tokens"),
    (RewardConfig, {"hapo_coef": float("inf")}, "reward.hapo_coef"),
    (RewardConfig, {"ada_grpo": 1}, "reward.ada_grpo"),
    (RewardConfig, {"autothink_balance": "on"}, "reward.autothink_balance"),
    (RewardConfig, {"autothink_length_coef": -0.5}, "reward.autothink_length_coef"),
    (DeGRPOConfig, {"alpha": -1.0}, "algorithm.alpha"),
    (DeGRPOConfig, {"response_norm": "token"}, "algorithm.response_norm"),
    (GRPOConfig, {"agg": "sum"}, "algorithm.agg"),
    (HGPOConfig, {"short_share": 0.0}, "algorithm.short_share"),
    (HGPOConfig, {"margin": float("nan")}, "algorithm.margin"),
    (HGPOConfig, {"alpha": -1.0}, "algorithm.alpha"),
    (RunConfig, {"stages": ["rl"], "algorithm": HGPOConfig(), "rollout": RolloutConfig(n_samples=1)}, "algorithm.name='hgpo'"),
    (
        RunConfig,
        {"stages": ["rl"], "algorithm": HGPOConfig(), "tokenizer": TokenizerConfig(template="adaptthink")},
        "use tokenizer.template=thinkless",
    ),
    (AdaptThinkConfig, {"delta": -0.05}, "algorithm.delta"),
    (AdaptThinkConfig, {"nothinking_share": 1.0}, "algorithm.nothinking_share"),
    (AdaptThinkConfig, {"thinking_opener": ""}, "algorithm.thinking_opener"),
    (AdaptThinkConfig, {"nothinking_max_new_tokens": 0}, "algorithm.nothinking_max_new_tokens"),
    (AdaptThinkConfig, {"thinking_max_new_tokens": 0}, "algorithm.thinking_max_new_tokens"),
    (AdaptThinkConfig, {"importance_sampling": "yes"}, "algorithm.importance_sampling"),
    (AdaptThinkConfig, {"kl_coef": 1e-3}, "algorithm.kl_coef = 0.001"),
    (AdaptThinkConfig, {"entropy_coef": 1e-3}, "algorithm.entropy_coef = 0.001"),
    (AdaptThinkConfig, {"form": "eq9"}, "algorithm.form"),
    (AdaptThinkConfig, {"presample_k": 0}, "algorithm.presample_k = 0"),
    (AdaptThinkConfig, {"presample_limit": -1}, "algorithm.presample_limit = -1"),
    (AdaptThinkConfig, {"reference_accuracy_path": ""}, "algorithm.reference_accuracy_path = ''"),
    (AdaptThinkConfig, {"reference_accuracy_path": "rbar.json"}, "algorithm.reference_accuracy_path = 'rbar.json'"),
    (RunConfig, {"algorithm": AlgorithmConfig(name="adaptthink")}, "that method's settings are a AdaptThinkConfig"),
    (RunConfig, {"algorithm": DeGRPOConfig(name="grpo")}, "algorithm.name = 'grpo' is invalid with a DeGRPOConfig"),
    (RewardConfig, {"correct_short": float("inf")}, "reward.correct_short"),
    (RewardConfig, {"gamma": -0.5}, "reward.gamma"),
    (RewardConfig, {"wrong": 0.6}, "reward.wrong = 0.6"),
    (RewardConfig, {"grade_timeout_s": 0.0}, "reward.grade_timeout_s"),
    (RewardConfig, {"grade_workers": 0}, "reward.grade_workers"),
    (RewardConfig, {"grade_memory_mb": 1}, "reward.grade_memory_mb"),
    (ParallelConfig, {"backend": "deepspeed"}, "parallel.backend"),
    (ParallelConfig, {"backend": "megatron", "tp": 0}, "parallel.tp"),
    (ParallelConfig, {"backend": "megatron", "pp": 0}, "parallel.pp"),
    (ParallelConfig, {"backend": "megatron", "cp": 0}, "parallel.cp"),
    (ParallelConfig, {"backend": "megatron", "vpp": 0}, "parallel.vpp"),
    (ParallelConfig, {"backend": "megatron", "vpp": 2}, "interleaving needs parallel.pp > 1"),
    (ParallelConfig, {"dp": -1}, "parallel.dp"),
    (ParallelConfig, {"tp": 2}, "parallel.backend=megatron"),
    (ParallelConfig, {"cp": 2}, "parallel.cp = 2 is invalid with parallel.backend='hf'"),
    (KernelsConfig, {"logprob": "triton"}, "kernels.logprob = 'triton' is invalid"),
    (KernelsConfig, {"chunk_tokens": -1}, "kernels.chunk_tokens = -1"),
    (KernelsConfig, {"policy_loss": "triton"}, "kernels.policy_loss"),
    (CheckpointConfig, {"save_every": -1}, "checkpoint.save_every"),
    (CheckpointConfig, {"keep_last": -1}, "checkpoint.keep_last"),
    (CheckpointConfig, {"resume": ""}, "checkpoint.resume"),
    (LoggerConfig, {"wandb_mode": "on"}, "logger.wandb_mode"),
    (LoggerConfig, {"wandb_project": ""}, "logger.wandb_project"),
    (LoggerConfig, {"wandb_run_name": ""}, "logger.wandb_run_name"),
    (LoggerConfig, {"run_name": ""}, "logger.run_name"),
    (LoggerConfig, {"tensorboard": "yes"}, "logger.tensorboard = 'yes'"),
    (EvalConfig, {"max_new_tokens": 0}, "eval.max_new_tokens"),
    (EvalConfig, {"temperature": 11.0}, "eval.temperature"),
    (EvalConfig, {"batch_size": 0}, "eval.batch_size"),
    (EvalConfig, {"top_p": 0.0}, "eval.top_p = 0.0"),
    (EvalConfig, {"model_dir": ""}, "eval.model_dir"),
    (EvalConfig, {"datasets": ["gsm8k.csv"]}, "eval.datasets[*] = 'gsm8k.csv'"),
    (EvalConfig, {"datasets": ["a/test.jsonl", "b/test.parquet"]}, "share the name 'test'"),
    (EvalConfig, {"seeds": []}, "eval.seeds = []"),
    (EvalConfig, {"seeds": [-1]}, "eval.seeds[*] = -1"),
    (EvalConfig, {"seeds": [0, 0]}, "must not repeat"),
    (EvalConfig, {"per_effort": "yes"}, "eval.per_effort"),
    (RunConfig, {"eval": EvalConfig(per_effort=True)}, "eval.per_effort = true is invalid"),
    (RunConfig, {"output_dir": ""}, "output_dir"),
    (RunConfig, {"stages": []}, "stages = []"),
    (RunConfig, {"stages": ["pretrain"]}, "stages[*] = 'pretrain'"),
    (RunConfig, {"stages": ["rl", "sft"]}, "in the order sft, presample, rl"),
    (RunConfig, {"stages": ["rl", "presample"]}, "in the order sft, presample, rl"),
    (RunConfig, {"stages": ["sft", "presample"]}, "algorithm.name = 'degrpo'"),
    (RunConfig, {"stages": ["presample"], "algorithm": AdaptThinkConfig(),
                 "parallel": ParallelConfig(backend="megatron")}, "parallel.backend = 'megatron' is invalid with the 'presample'"),
    (ParallelConfig, {"backend": "hf", "fp8": True}, "parallel.fp8"),
    (ParallelConfig, {"backend": "hf", "pack_sequences": True}, "parallel.pack_sequences"),
    (ParallelConfig, {"backend": "hf", "distributed_optimizer": True}, "parallel.distributed_optimizer = true is invalid"),
    (
        RunConfig,
        {"stages": ["rl"], "algorithm": AdaptThinkConfig()},
        "tokenizer.template = 'thinkless' is invalid with algorithm.name='adaptthink'",
    ),
    (
        RunConfig,
        {
            "stages": ["rl"],
            "algorithm": AdaptThinkConfig(),
            "tokenizer": TokenizerConfig(template="adaptthink"),
            "rollout": RolloutConfig(n_samples=1),
        },
        "rollout.n_samples = 1 is invalid with AdaptThink",
    ),
    (
        RunConfig,
        {
            "stages": ["presample"],
            "algorithm": AdaptThinkConfig(),
            "data": DataConfig(source="files", sft_path="s.jsonl"),
        },
        "data.train_path = None is invalid for the 'presample' stage",
    ),
    (
        RunConfig,
        {"stages": ["rl"], "data": DataConfig(source="files", sft_path="s.jsonl")},
        "data.train_path = None",
    ),
    (RunConfig, {"tokenizer": TokenizerConfig(kind="pretrained")}, "tokenizer.path = None"),
    (RunConfig, {"model": ModelConfig(path="ckpt")}, "tokenizer.kind = 'toy_arithmetic'"),
    (RunConfig, {"data": DataConfig(source="files", train_path="p.jsonl")}, "data.sft_path = None"),
    (PlanConfig, {"gpu_memory_gib": 0}, "plan.gpu_memory_gib = 0"),
    (PlanConfig, {"headroom": 1.0}, "plan.headroom = 1.0"),
    (PlanConfig, {"overhead_gib": -1.0}, "plan.overhead_gib"),
    (PlanConfig, {"mfu": 1.5}, "plan.mfu = 1.5"),
    (PlanConfig, {"peak_tflops": 0.0}, "plan.peak_tflops"),
    (PlanConfig, {"world_size": -8}, "plan.world_size = -8"),
    (PlanConfig, {"max_prompt_tokens": 0}, "plan.max_prompt_tokens"),
    (PlanConfig, {"length_fill": 0.0}, "plan.length_fill"),
    (PlanConfig, {"transformer_engine": "yes"}, "plan.transformer_engine"),
    (PlanConfig, {"enforce": 1}, "plan.enforce = 1"),
    (TrainerConfig, {"dist_timeout_minutes": 0.0}, "trainer.dist_timeout_minutes = 0.0"),
    (EvalConfig, {"hacc": "yes"}, "eval.hacc = 'yes'"),
    (DataConfig, {"budget_key": ""}, "data.budget_key"),
    (DataConfig, {"effort_levels": [10, 50]}, "data.effort_levels = [10, 50]"),
    (DataConfig, {"effort_levels": {"low": 0}}, "data.effort_levels.low = 0"),
    (DataConfig, {"effort_levels": {"": 10}}, "data.effort_levels (a level name) = ''"),
    (DataConfig, {"effort_assignment": "round_robin"}, "data.effort_assignment = 'round_robin'"),
    (DataConfig, {"effort_assignment": "cycle"}, "data.effort_assignment = 'cycle' is invalid with data.effort_levels"),
    (TokenizerConfig, {"budget_instruction": ""}, "tokenizer.budget_instruction"),
    (TokenizerConfig, {"budget_instruction": "Think briefly."}, "must contain {budget} exactly once"),
    (TokenizerConfig, {"budget_instruction": "Think for {budget"}, "must be a format string"),
    (TokenizerConfig, {"budget_instruction": "Think for {budget:s}"}, "cannot format an integer budget"),
    (TokenizerConfig, {"mode_switch": "/nothink"}, "tokenizer.mode_switch = '/nothink'"),
    (TokenizerConfig, {"chat_template_kwargs": ["enable_thinking"]}, "tokenizer.chat_template_kwargs"),
    (TokenizerConfig, {"chat_template_kwargs": {"add_generation_prompt": False}}, "key 'add_generation_prompt'"),
    (
        TokenizerConfig,
        {"template": "adaptthink", "chat_template_kwargs": {"enable_thinking": False}},
        "tokenizer.chat_template_kwargs.enable_thinking = False is invalid with",
    ),
]


@pytest.mark.parametrize(
    "cls, kwargs, expected",
    BAD_VALUES,
    ids=[f"{c.__name__}-{'-'.join(k)}-{i}" for i, (c, k, _) in enumerate(BAD_VALUES)],
)
def test_bad_value_is_rejected_with_field_name(cls, kwargs, expected):
    with pytest.raises(ConfigError) as err:
        cls(**kwargs)
    assert expected in str(err.value)


@pytest.mark.parametrize("cls", SECTIONS, ids=lambda c: c.__name__)
def test_defaults_are_valid(cls):
    cls()


def _checked_fields(cls) -> set[str]:
    source = textwrap.dedent(inspect.getsource(cls.__post_init__))
    names = {f.name for f in dataclasses.fields(cls)}
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            found.add(node.attr)
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple):  # for name in ("tp", "pp"): getattr
            found.update(e.value for e in node.iter.elts if isinstance(e, ast.Constant) and e.value in names)
    return found & names


@pytest.mark.parametrize("cls", SECTIONS, ids=lambda c: c.__name__)
def test_every_checked_field_has_a_failing_case(cls):
    tested = {name for c, kwargs, _ in BAD_VALUES if c is cls for name in kwargs}
    missing = _checked_fields(cls) - tested
    assert not missing, f"{cls.__name__} checks {sorted(missing)} but BAD_VALUES has no failing case"


@pytest.mark.parametrize("cls", SECTIONS, ids=lambda c: c.__name__)
def test_every_field_has_a_docstring(cls):
    documented = set()
    for klass in (k for k in cls.__mro__ if dataclasses.is_dataclass(k)):  # fields are inherited (method configs)
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign) and i + 1 < len(body):
                nxt = body[i + 1]
                if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                    documented.add(node.target.id)
    undocumented = {f.name for f in dataclasses.fields(cls)} - documented
    assert not undocumented, f"{cls.__name__} fields without a docstring: {sorted(undocumented)}"


def test_configs_are_keyword_only():
    with pytest.raises(TypeError):
        TrainerConfig(10)  # type: ignore[misc]


def test_pretrained_tokenizer_defaults_to_model_path():
    cfg = RunConfig(model=ModelConfig(path="ckpt/dir"), tokenizer=TokenizerConfig(kind="pretrained"))
    assert cfg.tokenizer.path == "ckpt/dir"


def test_bool_is_not_accepted_as_int():
    with pytest.raises(ConfigError, match="sft.max_steps = True"):
        SFTConfig(max_steps=True)
