"""MetricsLogger: jsonl appended across runs, console lines, TensorBoard scalars, wandb only on demand."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from megathink.config import ConfigError, LoggerConfig
from megathink.trainer.metrics import MetricsLogger, format_console_line

NO_TB = LoggerConfig(tensorboard=False)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def _tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in the event files under `folder`, as (step, value) pairs."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_jsonl_is_appended_never_truncated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = MetricsLogger(tmp_path, NO_TB, "run", {})
    first.log(1, {"loss": 2.5, "lr": torch.tensor(1e-4)})
    first.close()
    second = MetricsLogger(tmp_path, LoggerConfig(console=False, tensorboard=False), "run", {})
    second.log(2, {"loss": float("nan"), "mode": "short"})
    second.close()
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["loss"] == 2.5 and rows[0]["lr"] == pytest.approx(1e-4) and "time" in rows[0]
    assert rows[1]["loss"] == "nan" and rows[1]["mode"] == "short"
    out = capsys.readouterr().out
    assert "step 1 | loss 2.5 | lr 1.00e-04" in out and "step 2" not in out


def test_console_line_format() -> None:
    line = format_console_line(7, {"loss": 1.23456, "lr": 3e-5, "tokens_per_s": 123456.0, "n": 3})
    assert line == "step 7 | loss 1.235 | lr 3.00e-05 | tokens_per_s 1.23e+05 | n 3"


def test_non_scalars_go_to_jsonl_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = [{"level": 1, "think_ratio": 0.25, "accuracy": float("inf")}]
    with MetricsLogger(tmp_path, LoggerConfig(), "run", {}) as logger:
        logger.log(3, {"think_ratio": 0.5, "per_level": table, "counts": torch.tensor([1, 2]), "ok": True})
    row = _rows(tmp_path)[0]
    assert row["per_level"] == [{"level": 1, "think_ratio": 0.25, "accuracy": "inf"}]
    assert row["counts"] == [1, 2] and row["ok"] is True
    assert capsys.readouterr().out.strip() == "step 3 | think_ratio 0.5 | ok True"
    assert _tensorboard_scalars(tmp_path / "tensorboard") == {"think_ratio": [(3, 0.5)]}


def test_tensorboard_event_file_holds_the_scalars(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, LoggerConfig(console=False), "run", {}) as logger:
        for step in (1, 2, 3):
            logger.log(step, {"loss": 1.0 / step, "think_ratio_L2": torch.tensor(0.1 * step)})
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    scalars = _tensorboard_scalars(tmp_path / "tensorboard")
    assert [s for s, _ in scalars["loss"]] == [1, 2, 3]
    assert [v for _, v in scalars["loss"]] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [v for _, v in scalars["think_ratio_L2"]] == pytest.approx([0.1, 0.2, 0.3])


def test_resumed_run_replaces_the_repeated_tensorboard_steps(tmp_path: Path) -> None:
    cfg = LoggerConfig(console=False)
    with MetricsLogger(tmp_path, cfg, "run", {}) as crashed:
        for step in (1, 2, 3, 4):
            crashed.log(step, {"loss": float(step)})
    with MetricsLogger(tmp_path, cfg, "run", {}) as resumed:  # resumed from the step-2 checkpoint
        for step in (3, 4, 5):
            resumed.log(step, {"loss": 10.0 * step})
    loss = _tensorboard_scalars(tmp_path / "tensorboard")["loss"]
    assert loss == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0), (5, 50.0)]


def test_missing_tensorboard_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # importing it now raises ImportError
    with pytest.raises(ConfigError, match=r"logger.tensorboard.*pip install -c constraints.txt tensorboard"):
        MetricsLogger(tmp_path, LoggerConfig(), "run", {})
    MetricsLogger(tmp_path, NO_TB, "run", {}).close()  # never imports it


def test_missing_wandb_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    with pytest.raises(ConfigError, match="pip install"):
        MetricsLogger(tmp_path, LoggerConfig(wandb_mode="offline", tensorboard=False), "run", {})
    MetricsLogger(tmp_path, NO_TB, "run", {}).close()  # never imports it


def test_wandb_mode_defaults_to_disabled_whatever_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setitem(sys.modules, "wandb", None)  # any import attempt would raise
    assert LoggerConfig().resolved_wandb_mode == "disabled"
    assert LoggerConfig(wandb_project="p").resolved_wandb_mode == "offline"
    assert LoggerConfig(wandb_project="p", wandb_mode="disabled").resolved_wandb_mode == "disabled"
    MetricsLogger(tmp_path, NO_TB, "run", {}).close()


def test_wandb_gets_an_explicit_mode_and_writes_under_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, Any] = {"log": []}

    def init(**kwargs: Any) -> SimpleNamespace:
        calls["init"] = kwargs
        return SimpleNamespace(log=lambda data, step: calls["log"].append((step, data)), finish=lambda: None)

    monkeypatch.setitem(sys.modules, "wandb", SimpleNamespace(init=init))
    cfg = LoggerConfig(wandb_project="proj", tensorboard=False, console=False)
    with MetricsLogger(tmp_path / "rl", cfg, "run7", {"a": 1}) as logger:
        logger.log(5, {"reward": 0.5, "per_level": [1, 2]})
    run_id = (tmp_path / "rl" / "wandb_run_id").read_text().strip()
    expected = {"project": "proj", "name": f"{tmp_path.name}/run7", "id": run_id, "resume": "allow", "mode": "offline",
                "dir": str(tmp_path / "rl"), "config": {"a": 1}}
    assert calls["init"] == expected
    assert calls["log"] == [(5, {"reward": 0.5})]


def test_real_wandb_offline_writes_under_out(tmp_path: Path) -> None:
    import wandb  # noqa: F401  (the `test` extra installs it: this test must not skip in CI)

    cfg = LoggerConfig(wandb_mode="offline", tensorboard=False, console=False)
    with MetricsLogger(tmp_path, cfg, "run", {}) as logger:
        logger.log(1, {"loss": 1.0})
    assert any((tmp_path / "wandb").rglob("*.wandb"))
