"""The cluster experiments (hydra_conf/experiment/{thinkless_*,adaptthink}_{1.5b,7b}.yaml) compose into
the authors' recipes, sharded for H100s, with models and data under the user's path variables."""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from megathink.config import RunConfig
from megathink.launch.schema import register_schema, to_run_config

PAIRS = [("thinkless_sft_1.5b", "thinkless_sft_7b"), ("thinkless_degrpo_1.5b", "thinkless_degrpo_7b"),
         ("adaptthink_1.5b", "adaptthink_7b")]
LARGE = ["thinkless_degrpo_14b", "thinkless_degrpo_32b"]
ALL = [name for pair in PAIRS for name in pair] + LARGE + ["thinkless_sft_32b"]
PATH_VARS = ("MEGATHINK_MODELS", "MEGATHINK_DATA", "MEGATHINK_RUNS")


@pytest.fixture(autouse=True)
def _fresh_hydra(monkeypatch):
    for var in PATH_VARS:
        monkeypatch.delenv(var, raising=False)
    GlobalHydra.instance().clear()
    register_schema()
    yield
    GlobalHydra.instance().clear()


def compose_run(experiment: str, *overrides: str) -> RunConfig:
    with initialize_config_module(config_module="megathink.hydra_conf", version_base=None):
        cfg = compose(config_name="train", overrides=["output_dir=out", f"experiment={experiment}", *overrides])
    return to_run_config(cfg)


@pytest.mark.parametrize("experiment", ALL)
def test_megatron_on_gpus_sized_for_the_model(experiment):
    cfg = compose_run(experiment)
    # TP <= KV heads: 2 (1.5B), 4 (7B), 8 (14B, 32B: one node); the 32B adds two pipeline stages
    tp, pp = {"1.5b": (2, 1), "7b": (4, 1), "14b": (8, 1), "32b": (8, 2)}[experiment.rsplit("_", 1)[1]]
    assert (cfg.parallel.backend, cfg.parallel.tp, cfg.parallel.pp) == ("megatron", tp, pp)
    assert (cfg.trainer.device, cfg.model.dtype, cfg.data.source) == ("cuda", "bfloat16", "files")


def test_paths_default_to_folders_of_the_working_directory():
    assert compose_run("thinkless_sft_1.5b").model.path == "models/DeepSeek-R1-Distill-Qwen-1.5B"
    rl = compose_run("thinkless_degrpo_7b")
    assert rl.model.path == "runs/thinkless_sft_7b/sft/hf"  # what slurm/sft_7b.sh writes
    assert (rl.data.train_path, rl.data.eval_path) == ("data/deepscaler.jsonl", "data/math500.jsonl")


def test_paths_follow_the_environment(monkeypatch, tmp_path):
    for var in PATH_VARS:
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    sft = compose_run("thinkless_sft_7b")
    assert sft.model.path == f"{tmp_path}/megathink_models/DeepSeek-R1-Distill-Qwen-7B"
    assert sft.tokenizer.path == sft.model.path
    assert sft.data.sft_path == f"{tmp_path}/megathink_data/hybrid_sft.jsonl"
    assert compose_run("thinkless_degrpo_1.5b").model.path == f"{tmp_path}/megathink_runs/thinkless_sft_1.5b/sft/hf"
    assert compose_run("adaptthink_7b").model.path == f"{tmp_path}/megathink_models/DeepSeek-R1-Distill-Qwen-7B"


def test_thinkless_sft_recipe():
    cfg = compose_run("thinkless_sft_1.5b")
    opt = cfg.sft.optimizer
    assert cfg.stages == ["sft"]
    assert (opt.lr, opt.min_lr, opt.schedule, opt.warmup_ratio) == (1e-5, 1e-6, "cosine", 0.05)
    assert (opt.betas, opt.weight_decay, opt.grad_clip) == ([0.9, 0.95], 0.1, 1.0)
    assert cfg.sft.micro_batch_size * cfg.sft.grad_accum_steps == 128  # global batch: 128 questions
    assert cfg.data.max_seq_len == 16384
    assert (cfg.tokenizer.control_tokens, cfg.tokenizer.short_token_id, cfg.tokenizer.template) == ("map", 151650, "thinkless")


def test_degrpo_recipe():
    cfg = compose_run("thinkless_degrpo_1.5b")
    algo, opt = cfg.algorithm, cfg.rl.optimizer
    assert cfg.stages == ["rl"]
    assert (algo.name, algo.alpha, algo.clip_eps, algo.response_norm, algo.std_normalize) == (
        "degrpo", 1e-3, 0.2, "batch_token", False)
    assert (algo.kl_coef, algo.kl_estimator, algo.entropy_coef) == (1e-3, "k3", 1e-3)
    assert (cfg.reward.correct_short, cfg.reward.gamma, cfg.reward.wrong) == (1.0, 0.5, -1.0)
    assert (cfg.rl.prompts_per_step, cfg.rollout.n_samples, cfg.rl.mini_batches, cfg.rl.max_steps) == (128, 8, 2, 300)
    assert (opt.lr, opt.schedule, opt.betas, opt.weight_decay, opt.grad_clip) == (1e-6, "constant", [0.9, 0.95], 0.01, 1.0)
    assert (cfg.rollout.temperature, cfg.rollout.max_new_tokens) == (0.6, 24576)


def test_adaptthink_recipe():
    cfg = compose_run("adaptthink_1.5b")
    algo, opt = cfg.algorithm, cfg.rl.optimizer
    assert cfg.stages == ["rl"] and cfg.tokenizer.template == "adaptthink"
    assert (algo.name, algo.delta, algo.form, algo.importance_sampling, algo.nothinking_share) == (
        "adaptthink", 0.05, "code", True, 0.5)
    assert (algo.thinking_opener, algo.nothinking_max_new_tokens, algo.thinking_max_new_tokens) == ("Alright", 4096, 16384)
    assert (algo.presample_k, algo.kl_coef, algo.entropy_coef) == (16, 0.0, 0.0)
    assert (cfg.rl.prompts_per_step, cfg.rollout.n_samples, cfg.rl.mini_batches, cfg.rl.max_steps) == (128, 16, 1, 314)
    assert (opt.lr, opt.schedule, opt.betas, opt.weight_decay, opt.grad_clip) == (2e-6, "constant", [0.9, 0.999], 0.01, 1.0)
    assert cfg.rollout.temperature == 0.6


def test_adaptthink_presample_runs_on_the_hf_backend():
    """What slurm/lib/megathink_job.sh passes to `megathink presample` (PRESAMPLE_OVERRIDES) composes."""
    cfg = compose_run("adaptthink_7b", "parallel.backend=hf", "parallel.tp=1", "parallel.pp=1",
                      "parallel.distributed_optimizer=false", "stages=[presample]")
    assert cfg.parallel.backend == "hf" and cfg.algorithm.presample_k == 16


@pytest.mark.parametrize("small, large", PAIRS)
def test_7b_is_the_1_5b_recipe_on_the_larger_model(small, large):
    """Only the model, its sharding, the optimizer-state sharding and the micro-batch (memory) differ."""
    a, b = dataclasses.asdict(compose_run(small)), dataclasses.asdict(compose_run(large))
    for cfg in (a, b):
        for section, key in (("model", "path"), ("tokenizer", "path"), ("parallel", "tp"), ("parallel", "distributed_optimizer"),
                             ("rl", "micro_batch_size"), ("sft", "micro_batch_size"), ("plan", "world_size")):
            cfg[section].pop(key)
    assert a == b


@pytest.mark.parametrize("large", LARGE)
def test_14b_and_32b_are_the_1_5b_degrpo_recipe_scaled(large):
    """The DeGRPO hyperparameters stay; the learning rate is lower, and the layout, the token
    budget and the rollout engine (SGLang servers: no in-process sampling) fit the model."""
    a, b = dataclasses.asdict(compose_run("thinkless_degrpo_1.5b")), dataclasses.asdict(compose_run(large))
    assert b["rl"]["optimizer"]["lr"] < a["rl"]["optimizer"]["lr"] and b["rollout"]["engine"] == "sglang"
    for cfg in (a, b):
        for section, key in (("model", "path"), ("tokenizer", "path"), ("parallel", "tp"), ("parallel", "pp"),
                             ("plan", "world_size"), ("rl", "max_tokens_per_micro_batch"), ("rollout", "engine")):
            cfg[section].pop(key)
        for key in ("lr", "min_lr"):
            cfg["rl"]["optimizer"].pop(key)
    assert a == b


def test_32b_sft_is_the_1_5b_sft_recipe_scaled():
    """The authors' SFT hyperparameters stay; the layout and the token budget fit the model, and its
    evaluations go to SGLang servers (rank 0 cannot hold the HF copy that in-process generation needs)."""
    a, b = dataclasses.asdict(compose_run("thinkless_sft_1.5b")), dataclasses.asdict(compose_run("thinkless_sft_32b"))
    assert b["rollout"]["engine"] == "sglang" and b["sft"]["max_tokens_per_micro_batch"] == 32768
    assert compose_run("thinkless_degrpo_32b").model.path == "runs/thinkless_sft_32b/sft/hf"  # what sft_32b.sh writes
    for cfg in (a, b):
        for section, key in (("model", "path"), ("tokenizer", "path"), ("parallel", "tp"), ("parallel", "pp"),
                             ("plan", "world_size"), ("sft", "max_tokens_per_micro_batch"), ("rollout", "engine")):
            cfg[section].pop(key)
    assert a == b
