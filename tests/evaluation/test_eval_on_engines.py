"""`megathink eval` and `megathink presample` on SGLang-protocol engines (`megathink serve`: an attached
server, and launched server processes), against the local engine for the same seeds.

The HTTP engine draws every sequence from the stream seeded as the local engine's (docs/ROLLOUT.md,
"Samples and seeds"), so the reports, the Rbar_ref files and the samples themselves are equal.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import pytest
import torch
from megathink_fixtures.rollout_servers import CPU_SERVE, load_backend, running_server, save_tiny_model

from megathink.config import (
    DataConfig,
    EvalConfig,
    LoggerConfig,
    ModelConfig,
    RewardConfig,
    RolloutConfig,
    RunConfig,
    TokenizerConfig,
    TrainerConfig,
)
from megathink.config.rollout import SGLangConfig
from megathink.data.toy_task import build_toy_datasets
from megathink.evaluation.presample import presample_prompt, run_presample
from megathink.evaluation.run_eval import run_eval
from megathink.methods.adaptthink import AdaptThinkConfig
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.sglang_engine import SGLangEngine
from megathink.rollout.types import SamplingParams

QUIET = LoggerConfig(console=False, progress_bar=False, tensorboard=False)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _engines(*, urls: tuple[str, ...] = (), num_engines: int = 1) -> RolloutConfig:
    sglang = SGLangConfig(urls=list(urls)) if urls else SGLangConfig(
        launch_command=CPU_SERVE, num_engines=num_engines, base_port=0, health_timeout_s=120.0, retry_backoff_s=0.1,
        sequences_per_request=5,
    )
    return RolloutConfig(engine="sglang", batch_size=8, sglang=sglang)


def _eval_cfg(out: Path, model_dir: Path, rollout: Optional[RolloutConfig] = None) -> RunConfig:
    return RunConfig(
        output_dir=str(out),
        data=DataConfig(levels=[1, 2], toy_train_size=16, toy_eval_per_level=3),
        trainer=TrainerConfig(device="cpu", num_threads=1),
        reward=RewardConfig(grade_workers=1),
        rollout=rollout or RolloutConfig(),
        eval=EvalConfig(model_dir=str(model_dir), max_new_tokens=10, temperature=1.0, seeds=[0, 1], batch_size=8),
        logger=QUIET,
    )


def test_megathink_eval_on_attached_and_launched_engines_equals_the_local_engine(tiny_sft_stage: Path, tmp_path: Path) -> None:
    hf = tiny_sft_stage / "hf"
    local = run_eval(_eval_cfg(tmp_path / "local", hf))
    assert local.k == 2 and local.forced["toy"][-1].k == 2 and local.row("toy").metrics.hacc is not None
    with running_server(hf) as server:  # attached: told to load the evaluated folder
        attached = run_eval(_eval_cfg(tmp_path / "attached", hf, _engines(urls=(server.url,))))
        assert server.served.model_path == str(hf) and server.served.weight_version == "0"
    assert attached.rows == local.rows and attached.forced == local.forced
    step = tiny_sft_stage / "checkpoints" / "step_00000004"  # its weights are written for the two launched engines
    launched = run_eval(_eval_cfg(tmp_path / "launched", step, _engines(num_engines=2)))
    assert launched.rows == local.rows and launched.forced == local.forced
    assert (tmp_path / "launched" / "rollout_weights" / "v00000000" / "model.safetensors").is_file()
    logs = sorted((tmp_path / "launched" / "rollout_servers").glob("engine*.log"))
    assert [log.name for log in logs] == ["engine0.log", "engine1.log"]
    saved = json.loads((tmp_path / "launched" / "eval.json").read_text())
    assert saved["k"] == 2 and saved["rows"] == json.loads((tmp_path / "local" / "eval.json").read_text())["rows"]


def _presample_cfg(out: Path, reference: Path, rollout: RolloutConfig) -> RunConfig:
    return RunConfig(
        output_dir=str(out),
        model=ModelConfig(path=str(reference)),
        tokenizer=TokenizerConfig(kind="pretrained", template="adaptthink"),
        data=DataConfig(levels=[1, 2], toy_train_size=6, toy_eval_per_level=0),
        rollout=dataclasses.replace(rollout, temperature=1.0, max_new_tokens=10, batch_size=8),
        algorithm=AdaptThinkConfig(presample_k=4),
        trainer=TrainerConfig(device="cpu", num_threads=1, seed=3),
        reward=RewardConfig(grade_workers=1),
        logger=QUIET,
    )


def test_presample_on_launched_engines_equals_the_local_engine(tmp_path: Path) -> None:
    reference = save_tiny_model(tmp_path / "ref", sharpen=4.0)
    local = run_presample(_presample_cfg(tmp_path / "local", reference, RolloutConfig()))
    served = run_presample(_presample_cfg(tmp_path / "served", reference, _engines()))
    assert served.rbar == local.rbar and served.sampled == 6
    assert (tmp_path / "served" / "reference_accuracy.jsonl").read_text() == (
        tmp_path / "local" / "reference_accuracy.jsonl").read_text()
    assert not (tmp_path / "served" / "rollout_weights").exists()  # served from model.path as is

    # the samples themselves, through presample_prompt with a grader that records what it saw
    backend, bundle = load_backend(reference)
    tok = TokenizerConfig(kind="pretrained", path=str(reference), template="adaptthink")
    record = build_toy_datasets(DataConfig(levels=[2], toy_train_size=1, toy_eval_per_level=0))[0][0]
    params = SamplingParams(temperature=1.0, max_new_tokens=10, stop_token_ids=(bundle.eos_id,), n=4)

    def texts_of(engine) -> list[str]:
        seen: list[str] = []

        def grade(texts, modes, refs):  # type: ignore[no-untyped-def]
            seen.extend(texts)
            return [len(t) % 2 == 0 for t in texts]

        row = presample_prompt(engine, bundle, tok, record, params, grade, seed=3)
        assert row.k == 4
        return seen

    with running_server(reference) as server:
        remote = SGLangEngine(_engines(urls=(server.url,)).sglang, work_dir=tmp_path / "w", hf_config=backend.model.config,
                              serve_dir=str(reference))
        try:
            assert texts_of(remote) == texts_of(LocalEngine(backend, pad_id=bundle.pad_id)) and len(set(texts_of(remote))) > 1
        finally:
            remote.close()
