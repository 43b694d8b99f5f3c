"""The shipped Hydra config tree composes into valid RunConfigs, and typos fail loudly."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf.errors import ConfigKeyError, ValidationError
from hydra.errors import ConfigCompositionException

from megathink.config import ConfigError, RunConfig
from megathink.launch.cli import config_groups, group_options
from megathink.launch.schema import register_schema, to_run_config

# Options that need a value only the user can give (a local path).
NEEDS_PATH = {("model", "local_hf"): ["model.path=ckpt", "tokenizer=r1_distill"]}
# Options that need another group's option to be consistent.
NEEDS_PARTNER = {
    ("tokenizer", "r1_distill"): ["model=local_hf", "model.path=ckpt"],
    ("tokenizer", "r1_distill_adaptthink"): ["model=local_hf", "model.path=ckpt"],
    ("tokenizer", "qwen3"): ["model=local_hf", "model.path=ckpt"],
    ("data", "files"): ["data.sft_path=sft.jsonl"],
}


@pytest.fixture(autouse=True)
def _fresh_hydra():
    GlobalHydra.instance().clear()
    register_schema()
    yield
    GlobalHydra.instance().clear()


def _compose(config_name: str, overrides: list[str]) -> RunConfig:
    with initialize_config_module(config_module="megathink.hydra_conf", version_base=None):
        cfg = compose(config_name=config_name, overrides=["output_dir=out", *overrides])
    return to_run_config(cfg)


@pytest.mark.parametrize("config_name", ["train", "sft"])
def test_primary_configs_compose(config_name):
    cfg = _compose(config_name, [])
    assert isinstance(cfg, RunConfig)
    assert cfg.stages == ["sft"]


def _all_options():
    return [(g, o) for g in config_groups() for o in group_options(g)]


@pytest.mark.parametrize("group, option", _all_options())
def test_every_group_option_composes(group, option):
    extra = NEEDS_PATH.get((group, option), []) + NEEDS_PARTNER.get((group, option), [])
    targets = [f"{group}@sft.{group}", f"{group}@rl.{group}"] if group == "optimizer" else [group]
    for target in targets:
        cfg = _compose("train", [f"{target}={option}", *extra])
    assert isinstance(cfg, RunConfig)


def test_default_recipes_are_the_papers():
    cfg = _compose("train", [])
    sft, rl = cfg.sft.optimizer, cfg.rl.optimizer
    assert (sft.lr, sft.min_lr, sft.warmup_ratio, sft.schedule) == (1e-5, 1e-6, 0.05, "cosine")
    assert sft.betas == [0.9, 0.95] and sft.weight_decay == 0.1 and sft.grad_clip == 1.0
    assert (rl.lr, rl.schedule, rl.weight_decay) == (1e-6, "constant", 0.01)
    assert (cfg.rl.prompts_per_step, cfg.rollout.n_samples, cfg.rl.mini_batches) == (128, 8, 2)


def test_adaptthink_recipe_is_the_papers():
    cfg = _compose("train", [
        "stages=[rl]", "algorithm=adaptthink", "rl=adaptthink", "rollout=adaptthink",
        "optimizer@rl.optimizer=adaptthink_rl", "tokenizer=r1_distill_adaptthink", "model=local_hf", "model.path=ckpt",
    ])
    algo, opt = cfg.algorithm, cfg.rl.optimizer
    assert (algo.name, algo.delta, algo.clip_eps, algo.form, algo.presample_k) == ("adaptthink", 0.05, 0.2, "code", 16)
    assert (algo.importance_sampling, algo.nothinking_share, algo.thinking_opener) == (True, 0.5, "Alright")
    assert (algo.nothinking_max_new_tokens, algo.thinking_max_new_tokens) == (4096, 16384)
    assert (algo.kl_coef, algo.entropy_coef) == (0.0, 0.0)
    assert (opt.lr, opt.schedule, opt.betas, opt.weight_decay, opt.grad_clip) == (2e-6, "constant", [0.9, 0.999], 0.01, 1.0)
    assert (cfg.rl.prompts_per_step, cfg.rollout.n_samples, cfg.rl.mini_batches, cfg.rl.max_steps) == (128, 16, 1, 314)
    assert (cfg.rollout.temperature, cfg.tokenizer.template) == (0.6, "adaptthink")


def test_override_typo_fails_with_the_key():
    with pytest.raises(ConfigCompositionException) as err:
        _compose("train", ["trainer.max_stepz=3"])
    assert "max_stepz" in str(err.value.__cause__ or err.value)


def test_override_of_wrong_type_fails():
    with pytest.raises(ConfigCompositionException) as err:
        _compose("train", ["sft.max_steps=many"])
    message = str(err.value.__cause__ or err.value)
    assert "could not be converted to Integer" in message and "sft.max_steps" in message


def test_out_of_range_override_names_field():
    with pytest.raises(ConfigError, match="optimizer.lr = 5.0"):
        _compose("train", ["sft.optimizer.lr=5.0"])


def test_typo_inside_a_group_file_fails(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "bad.yaml").write_text("hidden_sise: 64\n")
    (tmp_path / "main.yaml").write_text("defaults:\n  - megathink_schema\n  - model: bad\n  - _self_\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base=None):
        with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)) as err:
            compose(config_name="main")
    assert "hidden_sise" in str(err.value) + str(err.value.__cause__)


def test_experiment_overrides_the_primary_config():
    cfg = _compose("train", ["experiment=toy_demo"])
    assert cfg.stages == ["sft", "rl"]
    assert cfg.algorithm.name == "degrpo" and cfg.rl.max_steps == 60 and cfg.sft.max_steps == 2000
