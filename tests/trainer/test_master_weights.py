"""fp32 master weights for bf16 models: RL-sized AdamW steps must not round away."""

from __future__ import annotations

import pytest
import torch

from megathink.config import OptimizerConfig
from megathink.trainer.master_weights import MasterWeightAdamW
from megathink.trainer.optim import build_adamw


def _weights(seed: int = 0) -> torch.Tensor:
    return torch.randn(512, generator=torch.Generator().manual_seed(seed)) * 0.02


def _grads(steps: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(512, generator=g).bfloat16() for _ in range(steps)]


def test_small_steps_accumulate_in_the_masters_like_fp32_adamw() -> None:
    steps, lr = 20, 1e-6
    bf16 = torch.nn.Parameter(_weights().bfloat16())
    start = bf16.detach().clone()
    fp32 = torch.nn.Parameter(bf16.detach().float().clone())
    mixed, reference = MasterWeightAdamW([bf16], lr=lr), torch.optim.AdamW([fp32], lr=lr)
    plain_param = torch.nn.Parameter(start.clone())
    plain = torch.optim.AdamW([plain_param], lr=lr)
    for grad in _grads(steps):
        bf16.grad, fp32.grad, plain_param.grad = grad.clone(), grad.float(), grad.clone()
        mixed.step(), reference.step(), plain.step()
        mixed.zero_grad(), reference.zero_grad(), plain.zero_grad()
    master = mixed.master_of(bf16)
    assert master.dtype == torch.float32 and torch.equal(master, fp32.detach())  # exactly fp32 AdamW
    assert torch.equal(bf16.detach(), master.bfloat16())  # the model holds the rounded masters
    assert (master != start.float()).float().mean() > 0.99  # every update kept (in fp32) ...
    assert (plain_param.detach() != start).float().mean() < 0.1  # ... where bf16 AdamW rounds most away
    assert bf16.grad is None


def test_state_dict_resumes_from_the_masters_not_the_rounded_weights() -> None:
    grads = _grads(6)

    def run(param, opt, gs):
        for grad in gs:
            param.grad = grad.clone()
            opt.step()
            opt.zero_grad()

    straight = torch.nn.Parameter(_weights().bfloat16())
    opt = MasterWeightAdamW([straight], lr=1e-5)
    run(straight, opt, grads)

    first = torch.nn.Parameter(_weights().bfloat16())
    opt1 = MasterWeightAdamW([first], lr=1e-5)
    run(first, opt1, grads[:3])
    saved = opt1.state_dict()
    assert len(saved["master_params"]) == 1 and saved["master_params"][0].dtype == torch.float32
    resumed = torch.nn.Parameter(first.detach().clone())  # what a checkpoint's bf16 weights give back
    opt2 = MasterWeightAdamW([resumed], lr=1e-5)
    opt2.load_state_dict(saved)
    run(resumed, opt2, grads[3:])
    assert torch.equal(opt2.master_of(resumed), opt.master_of(straight)) and torch.equal(resumed, straight)

    legacy = {k: v for k, v in saved.items() if k != "master_params"}  # saved without masters
    other = torch.nn.Parameter(first.detach().clone())
    opt3 = MasterWeightAdamW([other], lr=1e-5)
    with torch.no_grad():
        opt3.master_of(other).zero_()  # stale masters must not survive the load
    opt3.load_state_dict(legacy)
    assert torch.equal(opt3.master_of(other), first.detach().float())


def test_build_adamw_adds_masters_for_low_precision_models_only() -> None:
    cfg = OptimizerConfig(lr=1e-3, min_lr=0.0, weight_decay=0.1)
    bf16 = torch.nn.Linear(4, 4).bfloat16()
    opt = build_adamw(bf16.named_parameters(), cfg)
    assert isinstance(opt, MasterWeightAdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert all(p.dtype == torch.float32 for g in opt.param_groups for p in g["params"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)  # schedulers see the groups
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4) and scheduler.get_last_lr()[0] == pytest.approx(5e-4)
    assert type(build_adamw(torch.nn.Linear(4, 4).named_parameters(), cfg)) is torch.optim.AdamW
