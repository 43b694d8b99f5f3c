"""AdamW parameter groups and gradient clipping."""

from __future__ import annotations

import pytest
import torch

from megathink.config import OptimizerConfig
from megathink.trainer.optim import build_adamw, clip_gradients


def test_no_weight_decay_on_one_dimensional_params() -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    opt = build_adamw(model.named_parameters(), OptimizerConfig(lr=1e-3, min_lr=0.0, weight_decay=0.1, betas=[0.9, 0.95]))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert {tuple(p.shape) for p in decayed["params"]} == {(10, 4), (4, 4)}
    assert sorted(tuple(p.shape) for p in plain["params"]) == [(4,), (4,), (4,)]
    assert decayed["betas"] == (0.9, 0.95) and decayed["lr"] == 1e-3


def test_clip_returns_the_norm_before_clipping() -> None:
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(1))
    a.grad = torch.tensor([3.0, 0.0])
    b.grad = torch.tensor([4.0])
    assert clip_gradients([a, b], 1.0) == pytest.approx(5.0)
    total = torch.cat([a.grad, b.grad]).norm()
    assert float(total) == pytest.approx(1.0, rel=1e-4)
    a.grad = torch.tensor([3.0, 0.0])
    b.grad = torch.tensor([4.0])
    assert clip_gradients([a, b], 0.0) == pytest.approx(5.0)  # 0 = measure only
    assert a.grad.tolist() == [3.0, 0.0]
    assert clip_gradients([torch.nn.Parameter(torch.zeros(1))], 1.0) == 0.0  # no grads at all
