"""`run_eval` on the outputs of a tiny SFT run: HF dir, step checkpoint (with and without hf/), prompt files, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from megathink.config import (
    ConfigError,
    DataConfig,
    EvalConfig,
    LoggerConfig,
    ModelConfig,
    RewardConfig,
    RunConfig,
    TokenizerConfig,
    TrainerConfig,
)
from megathink.errors import MissingPathError
from megathink.evaluation.policy_loader import load_policy
from megathink.evaluation.run_eval import run_eval

SMALL = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)
QUIET = LoggerConfig(console=False, progress_bar=False, tensorboard=False)


@pytest.fixture(scope="module")
def stage(tiny_sft_stage: Path) -> Path:
    """A finished tiny SFT stage: resolved_config.yaml, checkpoints/step_00000004 (and 2), hf/ (shared, read-only)."""
    return tiny_sft_stage


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _cfg(out: Path, model_dir: object, **eval_fields: object) -> RunConfig:
    fields: dict[str, object] = dict(max_new_tokens=10, temperature=1.0, seeds=[0, 1], batch_size=8)
    fields.update(eval_fields)
    return RunConfig(
        output_dir=str(out),
        data=DataConfig(levels=[1, 2], toy_train_size=16, toy_eval_per_level=3),
        trainer=TrainerConfig(device="cpu", num_threads=1),
        reward=RewardConfig(grade_workers=1),
        eval=EvalConfig(model_dir=None if model_dir is None else str(model_dir), **fields),  # type: ignore[arg-type]
        logger=QUIET,
    )


def test_hf_dir_and_step_checkpoints_give_the_same_report(stage: Path, tmp_path: Path) -> None:
    from_hf = run_eval(_cfg(tmp_path / "a", stage / "hf"))
    step = stage / "checkpoints" / "step_00000004"
    from_step = run_eval(_cfg(tmp_path / "b", step))
    bare = tmp_path / "bare" / "sft"  # the same stage without hf/: tokenizer rebuilt from the resolved config
    (bare / "checkpoints").mkdir(parents=True)
    shutil.copy(stage / "resolved_config.yaml", bare / "resolved_config.yaml")
    shutil.copytree(step, bare / "checkpoints" / step.name)
    from_bare = run_eval(_cfg(tmp_path / "c", bare / "checkpoints" / step.name))

    assert [(r.dataset, r.level) for r in from_hf.rows] == [("toy", "1"), ("toy", "2"), ("toy", "all")]
    assert from_hf.row("toy").metrics.n == 2 * 6 and from_hf.row("toy").metrics.prompts == 6
    standalone = tmp_path / "exported"  # a HF dir outside a stage: prompts from the command's tokenizer section
    shutil.copytree(stage / "hf", standalone)
    from_standalone = run_eval(_cfg(tmp_path / "e", standalone))
    assert from_hf.rows == from_step.rows == from_bare.rows == from_standalone.rows
    assert from_hf.source == str(stage / "hf") and from_bare.source == str(bare / "checkpoints" / step.name)
    saved = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert saved == json.loads(json.dumps(from_hf.to_json()))
    assert saved["sampling"]["temperature"] == 1.0 and saved["seeds"] == [0, 1]



def test_a_step_checkpoint_loads_its_own_weights(stage: Path) -> None:
    def weights(model_dir: Path) -> dict[str, torch.Tensor]:
        policy = load_policy(str(model_dir), tokenizer=TokenizerConfig(), model=SMALL, device="cpu", seed=123)
        return policy.backend.model.state_dict()

    final, hf, earlier = (weights(stage / "checkpoints" / "step_00000004"), weights(stage / "hf"),
                          weights(stage / "checkpoints" / "step_00000002"))
    assert final.keys() == hf.keys() == earlier.keys()
    assert all(torch.equal(final[k], hf[k]) for k in final)
    assert not all(torch.equal(final[k], earlier[k]) for k in final)


def test_prompt_files_are_graded_by_the_pool(stage: Path, tmp_path: Path) -> None:
    data = tmp_path / "tiny_math.jsonl"
    rows = [{"problem": "1+2=", "answer": "3", "level": 1}, {"problem": "4+4=", "answer": "8", "level": 1},
            {"problem": "10+20=", "answer": "30"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = run_eval(_cfg(tmp_path / "out", stage / "hf", datasets=[str(data)], seeds=[5]))
    assert [(r.dataset, r.level) for r in report.rows] == [("tiny_math", "1"), ("tiny_math", "all")]
    assert report.row("tiny_math").metrics.n == 3 and report.row("tiny_math", "1").metrics.n == 2
    assert (tmp_path / "out" / "eval.json").is_file()
    # No eval.datasets with data.source=files: data.eval_path is evaluated.
    cfg = _cfg(tmp_path / "out2", stage / "hf", seeds=[5])
    cfg.data = DataConfig(source="files", sft_path="unused.jsonl", eval_path=str(data))
    assert run_eval(cfg).rows == report.rows


def test_bad_model_dirs_name_the_field(stage: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="eval.model_dir = None"):
        run_eval(_cfg(tmp_path, None))
    with pytest.raises(MissingPathError, match="eval.model_dir = .* is not a directory"):
        run_eval(_cfg(tmp_path, tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingPathError, match="eval.model_dir = .* holds neither config.json nor model.safetensors"):
        run_eval(_cfg(tmp_path, tmp_path / "empty"))
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(stage / "checkpoints" / "step_00000004" / "model.safetensors", loose / "model.safetensors")
    with pytest.raises(MissingPathError, match="eval.model_dir = .*resolved_config.yaml does not exist"):
        run_eval(_cfg(tmp_path, loose))
    with pytest.raises(MissingPathError, match="eval.datasets"):
        run_eval(_cfg(tmp_path, stage / "hf", datasets=[str(tmp_path / "nope.jsonl")]))
    assert not (tmp_path / "eval.json").exists()


def test_edited_resolved_config_is_reported(stage: Path, tmp_path: Path) -> None:
    bad = tmp_path / "sft"
    (bad / "checkpoints").mkdir(parents=True)
    text = (stage / "resolved_config.yaml").read_text().replace("hidden_size: 32", "hidden_size: 64")
    (bad / "resolved_config.yaml").write_text(text)
    shutil.copytree(stage / "checkpoints" / "step_00000004", bad / "checkpoints" / "step_00000004")
    with pytest.raises(ConfigError, match="eval.model_dir = .*do not fit the model"):
        run_eval(_cfg(tmp_path / "out", bad / "checkpoints" / "step_00000004"))
