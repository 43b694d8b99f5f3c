"""`megathink plan` and the start-up check of `megathink train`, on stand-in model folders.

Every shipped cluster experiment must fit 80 GB H100s with the default headroom; a layout that
cannot fit exits 1 naming knobs that do (each re-planned), and `megathink train` refuses it
(exit 2) before anything is built. The stand-in folders hold a config.json of the real shapes
and no weights (conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from megathink.config import ModelConfig, RunConfig, TokenizerConfig, TrainerConfig
from megathink.launch.plan_command import check_before_training, plan_text
from megathink.launch.schema import register_schema, to_run_config

CLUSTER = ["thinkless_sft_1.5b", "thinkless_sft_7b", "thinkless_degrpo_1.5b", "thinkless_degrpo_7b",
           "adaptthink_1.5b", "adaptthink_7b", "thinkless_degrpo_14b", "thinkless_sft_32b", "thinkless_degrpo_32b"]
# DeGRPO 7B as it was before the planner: fixed micro-batches of 2 padded 25K-token rows, no
# recompute, no packing, in-process rollouts of 256 sequences
TOO_BIG = ("parallel.recompute=none", "parallel.pack_sequences=false", "rl.max_tokens_per_micro_batch=0",
           "rl.micro_batch_size=2", "rollout.batch_size=256")


def compose_plan(*overrides: str) -> RunConfig:
    GlobalHydra.instance().clear()
    register_schema()
    with initialize_config_module(config_module="megathink.hydra_conf", version_base=None):
        cfg = compose(config_name="plan", overrides=["output_dir=unused", *overrides])
    GlobalHydra.instance().clear()
    return to_run_config(cfg)


def megathink(*args: str, env_root) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "megathink.launch.cli", *args], cwd=env_root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_experiments_name_every_cluster_experiment():
    from importlib import resources

    shipped = {p.name[:-5] for p in resources.files("megathink.hydra_conf").joinpath("experiment").iterdir()
               if p.name.endswith(".yaml") and not p.name.startswith("toy_")}
    assert shipped == set(CLUSTER)


@pytest.mark.parametrize("experiment", CLUSTER)
def test_every_cluster_experiment_fits_80_gb(model_roots, experiment):
    cfg = compose_plan(f"experiment={experiment}")
    assert (cfg.plan.gpu_memory_gib, cfg.plan.headroom) == (80.0, 0.10)
    fits, text = plan_text(cfg, device="cuda")
    assert fits, text
    assert text.splitlines()[-1].startswith("fits: peak")
    assert "config.json" in text and "step time: ~" in text


def test_megathink_plan_exits_0_for_a_fitting_recipe(model_roots):
    result = megathink("plan", "experiment=thinkless_degrpo_7b", env_root=model_roots)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("fits: peak") and "72.0 GiB usable" in lines[-1]
    assert any(line.startswith("layout:  world 16 = tp 4 x pp 1 x cp 1 x dp 4") for line in lines)
    assert any(line.strip().startswith("weights") for line in lines)
    assert not (model_roots / "outputs").exists() and not (model_roots / ".hydra").exists()  # writes nothing


def test_megathink_plan_exits_1_and_names_knobs_when_it_cannot_fit(model_roots):
    result = megathink("plan", "experiment=thinkless_degrpo_7b", *TOO_BIG, env_root=model_roots)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert out.strip().splitlines()[-1].startswith("DOES NOT FIT")
    assert "knobs that make it fit (each re-planned):" in out
    assert "parallel.recompute=full" in out


def test_knobs_are_real_overrides_that_fit(model_roots):
    from megathink.launch.plan_command import planned_shape
    from megathink.planning import plan_run, suggest_knobs
    from megathink.planning.knobs import with_overrides

    cfg = compose_plan("experiment=thinkless_degrpo_7b", *TOO_BIG)
    shape, _ = planned_shape(cfg)
    assert not plan_run(cfg, shape).fits
    knobs = suggest_knobs(cfg, shape)
    assert knobs and all(k.fits for k in knobs)
    for knob in knobs:
        assert plan_run(with_overrides(cfg, knob.overrides), shape).fits, knob.describe()


def test_megathink_plan_exits_2_without_config_json(tmp_path):
    result = megathink("plan", "model=local_hf", f"model.path={tmp_path}", "tokenizer=r1_distill", env_root=tmp_path)
    assert result.returncode == 2
    assert "model.path" in result.stderr and "config.json" in result.stderr


def test_megathink_train_refuses_a_layout_that_cannot_fit_before_building_anything(model_roots):
    run_dir = model_roots / "run"
    result = megathink("train", "experiment=thinkless_degrpo_7b", *TOO_BIG, f"hydra.run.dir={run_dir}",
                       env_root=model_roots)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "megathink train: error: the memory planner says this layout does not fit" in result.stderr
    assert "DOES NOT FIT" in result.stderr and "parallel.recompute=full" in result.stderr
    assert not (run_dir / "rl").exists()  # no stage folder, no resolved config: nothing was built or loaded


def test_plan_enforce_false_lets_the_run_start(model_roots, caplog):
    cfg = compose_plan("experiment=thinkless_degrpo_7b", *TOO_BIG, "plan.enforce=false")
    check_before_training(cfg)  # logs the plan, raises nothing
    assert "plan.enforce=false" in caplog.text


def test_cpu_runs_are_never_checked():
    cfg = RunConfig(trainer=TrainerConfig(device="cpu"), model=ModelConfig(path="/nowhere/at/all"),
                    tokenizer=TokenizerConfig(kind="pretrained"))
    check_before_training(cfg)  # would raise MissingPathError if it read model.path


def test_toy_demo_plans_on_cpu(tmp_path):
    result = megathink("plan", "experiment=toy_demo", env_root=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "CPU plan" in result.stdout and "sft stage" in result.stdout and "rl stage" in result.stdout
