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


def test_adamw_is_fused_on_gpus_only() -> None:
    from megathink.trainer.optim import adamw_implementation

    model = torch.nn.Linear(4, 4)
    opt = build_adamw(model.named_parameters(), OptimizerConfig(lr=1e-3, min_lr=0.0))
    assert adamw_implementation(model.parameters()) == "default" and not opt.defaults["fused"]
    assert adamw_implementation([torch.nn.Parameter(torch.zeros(1, device="meta"))]) == "default"


def test_sharded_adam_state_restores_into_a_fused_optimizer() -> None:
    """The megatron checkpoint's AdamW state (moments, step, groups) put back into a fused AdamW
    (torch's CPU fused kernel stands in for the CUDA one) continues exactly like the original;
    the step tensor goes where the fused kernel needs it (the parameter's device)."""
    pytest.importorskip("megatron.core")
    from megathink.models.megatron.optimizer_state import (
        ADAM_KEYS, _step_tensor, ensure_adam_state, optimizer_meta, optimizer_params, restore_optimizer,
    )

    torch.manual_seed(0)
    first = torch.nn.Linear(4, 3)
    second = torch.nn.Linear(4, 3)
    second.load_state_dict(first.state_dict())

    def step(model, opt):
        model.weight.grad, model.bias.grad = torch.randn(3, 4), torch.randn(3)
        opt.step()

    original = torch.optim.AdamW(first.parameters(), lr=1e-2, fused=True)
    for _ in range(3):
        step(first, original)
    meta = optimizer_meta(original)
    loaded = {i: {key: original.state[p][key].clone() for key in ADAM_KEYS} for i, p in enumerate(optimizer_params(original))}
    second.load_state_dict(first.state_dict())
    resumed = torch.optim.AdamW(second.parameters(), lr=5.0, fused=True)
    ensure_adam_state(resumed)
    restore_optimizer(resumed, loaded, meta)
    assert resumed.param_groups[0]["lr"] == 1e-2 and float(resumed.state[second.weight]["step"]) == 3.0
    torch.manual_seed(1)
    step(first, original)
    torch.manual_seed(1)
    step(second, resumed)
    assert torch.equal(first.weight, second.weight) and torch.equal(first.bias, second.bias)
    on_meta = torch.nn.Parameter(torch.zeros(1, device="meta"))
    assert _step_tensor(resumed, on_meta, 2.0).device.type == "meta"
    plain = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], foreach=True)
    assert _step_tensor(plain, on_meta, 2.0).device.type == "cpu"
