"""Learning-rate schedule values at the steps that matter."""

from __future__ import annotations

import math

import pytest
import torch

from megathink.config import OptimizerConfig
from megathink.trainer.lr_schedule import build_scheduler, lr_multiplier, warmup_steps_for


def _lrs(cfg: OptimizerConfig, total: int) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=cfg.lr)
    sched = build_scheduler(opt, cfg, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_with_warmup_key_steps() -> None:
    cfg = OptimizerConfig(lr=1e-3, min_lr=1e-4, warmup_ratio=0.1, schedule="cosine")
    lrs = _lrs(cfg, 100)
    assert warmup_steps_for(cfg, 100) == 10
    assert lrs[0] == pytest.approx(1e-4)  # (0 + 1) / 10 of the peak: the first step already moves
    assert lrs[4] == pytest.approx(5e-4)
    assert lrs[9] == pytest.approx(1e-3)  # end of warm-up = peak
    assert lrs[10] == pytest.approx(1e-3)  # cosine starts at the peak
    mid = 10 + (99 - 10) / 2
    assert lr_multiplier(int(mid), total_steps=100, warmup_steps=10, schedule="cosine", min_ratio=0.1) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (int(mid) - 10) / 89))
    )
    assert lrs[-1] == pytest.approx(1e-4)  # reaches min_lr at the last step
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # monotone decay


def test_constant_and_no_warmup() -> None:
    lrs = _lrs(OptimizerConfig(lr=2e-4, min_lr=0.0, warmup_ratio=0.0, schedule="constant"), 7)
    assert lrs == pytest.approx([2e-4] * 7)
    lrs = _lrs(OptimizerConfig(lr=2e-4, min_lr=0.0, warmup_ratio=0.5, schedule="constant"), 8)
    assert lrs == pytest.approx([5e-5, 1e-4, 1.5e-4, 2e-4, 2e-4, 2e-4, 2e-4, 2e-4])


def test_single_step_run_is_well_defined() -> None:
    assert _lrs(OptimizerConfig(lr=1e-3, min_lr=1e-4, warmup_ratio=0.0), 1) == pytest.approx([1e-3])


def test_scheduler_state_holds_only_the_counter() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = build_scheduler(opt, OptimizerConfig(lr=1.0, min_lr=0.0), 10)
    for _ in range(3):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert state["last_epoch"] == 3 and state["lr_lambdas"] == [None]
    # a resumed run with a longer max_steps recomputes the schedule from the config
    longer = build_scheduler(opt, OptimizerConfig(lr=1.0, min_lr=0.0), 20)
    longer.load_state_dict(state)
    assert longer.lr_lambdas[0](9) > sched.lr_lambdas[0](9)
