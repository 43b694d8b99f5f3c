"""One wandb run per stage folder: a stable id kept in `<stage>/wandb_run_id` (a resumed or
requeued job continues the run), and a name built from the job: `<run_name>/<folder>/<stage>`.

Most tests put a fake `wandb` module into sys.modules that records every `wandb.init` call's
keyword arguments (fast, and exact about what megathink asks for); the last one runs the real
wandb (in the `test` extra and the lock) offline across a resume.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from megathink.config import LoggerConfig
from megathink.trainer.metrics import WANDB_RUN_ID_FILE, MetricsLogger, wandb_run_name


@pytest.fixture
def wandb_inits(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every wandb.init call, in order."""
    calls: list[dict[str, Any]] = []

    def init(**kwargs: Any) -> SimpleNamespace:
        calls.append(kwargs)
        return SimpleNamespace(log=lambda data, step: None, finish=lambda: None)

    monkeypatch.setitem(sys.modules, "wandb", SimpleNamespace(init=init))
    return calls


def _open_stage(stage_dir: Path, **logger: Any) -> None:
    cfg = LoggerConfig(wandb_mode="offline", tensorboard=False, console=False, **logger)
    with MetricsLogger(stage_dir, cfg, stage_dir.name, {}) as metrics:
        metrics.log(1, {"loss": 1.0})


def test_the_same_folder_resumes_the_same_run(tmp_path: Path, wandb_inits: list[dict[str, Any]]) -> None:
    stage = tmp_path / "thinkless_degrpo_7b" / "rl"
    _open_stage(stage, run_name="thinkless_degrpo_7b")
    _open_stage(stage, run_name="thinkless_degrpo_7b")  # the requeued job
    first, second = wandb_inits
    assert first["id"] == second["id"] == (stage / WANDB_RUN_ID_FILE).read_text().strip()
    assert first["resume"] == second["resume"] == "allow"
    assert len(first["id"]) == 16 and first["id"].isalnum()


def test_other_folders_get_other_runs(tmp_path: Path, wandb_inits: list[dict[str, Any]]) -> None:
    _open_stage(tmp_path / "a" / "rl")
    _open_stage(tmp_path / "b" / "rl")
    _open_stage(tmp_path / "a" / "sft")
    ids = [call["id"] for call in wandb_inits]
    assert len(set(ids)) == 3


def test_the_name_holds_the_experiment_folder_and_stage(tmp_path: Path, wandb_inits: list[dict[str, Any]]) -> None:
    _open_stage(tmp_path / "sweep_7b" / "a1e-3_g0.5" / "rl", run_name="thinkless_degrpo_7b")
    _open_stage(tmp_path / "thinkless_sft_7b" / "sft", run_name="thinkless_sft_7b")  # RUN_DIR named after it
    _open_stage(tmp_path / "2026-01-02_03-04-05" / "sft")  # no run name: the folder alone
    _open_stage(tmp_path / "x" / "sft", run_name="exp", wandb_run_name="chosen")  # an explicit name wins
    names = [call["name"] for call in wandb_inits]
    assert names == ["thinkless_degrpo_7b/a1e-3_g0.5/rl", "thinkless_sft_7b/sft", "2026-01-02_03-04-05/sft", "chosen"]


def test_the_name_uses_the_real_folder_of_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    assert wandb_run_name(LoggerConfig(run_name="exp"), "rl", Path("rl")) == "exp/run/rl"


def test_nothing_is_written_while_wandb_is_off(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path / "rl", LoggerConfig(tensorboard=False, console=False), "rl", {}) as metrics:
        metrics.log(1, {"loss": 1.0})
    assert not (tmp_path / "rl" / WANDB_RUN_ID_FILE).exists()


def test_a_real_offline_run_is_resumed_under_its_id(tmp_path: Path) -> None:
    import wandb  # noqa: F401  (the `test` extra installs it: this test must not skip in CI)

    stage = tmp_path / "thinkless_degrpo_7b" / "rl"
    _open_stage(stage, run_name="thinkless_degrpo_7b")
    _open_stage(stage, run_name="thinkless_degrpo_7b")  # the requeued job
    run_id = (stage / WANDB_RUN_ID_FILE).read_text().strip()
    run_files = sorted((stage / "wandb").glob("offline-run-*/run-*.wandb"))
    assert run_files, "the offline run wrote no .wandb file"
    assert {f.name for f in run_files} == {f"run-{run_id}.wandb"}
