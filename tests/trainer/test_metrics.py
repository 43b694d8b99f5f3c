"""MetricsLogger: jsonl appended across runs, console lines, wandb only on demand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from megathink.config import LoggerConfig
from megathink.trainer.metrics import MetricsLogger, format_console_line


def test_jsonl_is_appended_never_truncated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = MetricsLogger(tmp_path, LoggerConfig(), "run", {})
    first.log(1, {"loss": 2.5, "lr": torch.tensor(1e-4)})
    first.close()
    second = MetricsLogger(tmp_path, LoggerConfig(console=False), "run", {})
    second.log(2, {"loss": float("nan"), "mode": "short"})
    second.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["loss"] == 2.5 and rows[0]["lr"] == pytest.approx(1e-4) and "time" in rows[0]
    assert rows[1]["loss"] == "nan" and rows[1]["mode"] == "short"
    out = capsys.readouterr().out
    assert "step 1 | loss 2.5 | lr 1.00e-04" in out and "step 2" not in out


def test_console_line_format() -> None:
    line = format_console_line(7, {"loss": 1.23456, "lr": 3e-5, "tokens_per_s": 123456.0, "n": 3})
    assert line == "step 7 | loss 1.235 | lr 3.00e-05 | tokens_per_s 1.23e+05 | n 3"


def test_missing_wandb_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    with pytest.raises(ImportError, match="pip install"):
        MetricsLogger(tmp_path, LoggerConfig(wandb_mode="offline"), "run", {})
    MetricsLogger(tmp_path, LoggerConfig(wandb_mode="disabled"), "run", {}).close()  # never imports it
