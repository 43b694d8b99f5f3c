"""AdamW state of a megatron model's shards, as sharded tensors that reshard on load.

Each rank's torch AdamW keeps `exp_avg` / `exp_avg_sq` with exactly the shape of its parameter
shard, so every state tensor gets the sharding metadata of its parameter (the model's
`sharded_state_dict()` entry, key prefixed `optimizer.state.<name>.`). Saved next to the
model, a checkpoint written at one TP / PP loads into an optimizer at another, like the weights.

What is not a tensor travels in the checkpoint's json: the Adam step count (the same for every
parameter: megatron gives every shard a gradient on every step) and the param groups'
hyper-parameters (lr, betas, weight decay, ...). Departure from megatron-LM: its distributed
optimizer shards state over data-parallel ranks too; here every data-parallel replica holds
the full state of its model shard (torch AdamW), and the replicas are saved once (replica ids).
"""

from __future__ import annotations

from typing import Any

import torch

ADAM_KEYS = ("exp_avg", "exp_avg_sq")


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    """Parameters in the optimizer's own id order (group by group)."""
    return [param for group in optimizer.param_groups for param in group["params"]]


def _step_tensor(optimizer: torch.optim.Optimizer, param: torch.Tensor, step: float) -> torch.Tensor:
    """The Adam step as torch keeps it: a float32 scalar on the parameter's device for the fused
    (and capturable) kernels, on the CPU otherwise."""
    on_device = optimizer.defaults.get("fused") or optimizer.defaults.get("capturable")
    return torch.tensor(step, dtype=torch.float32, device=param.device if on_device else "cpu")


def ensure_adam_state(optimizer: torch.optim.Optimizer) -> None:
    """Create zero AdamW state for every parameter that has none yet (a fresh optimizer), so a
    checkpoint can be loaded into it."""
    for param in optimizer_params(optimizer):
        state = optimizer.state[param]
        if not state:
            state["step"] = _step_tensor(optimizer, param, 0.0)
            for key in ADAM_KEYS:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)


def sharded_optimizer_state(model: Any, optimizer: torch.optim.Optimizer, model_sharded: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """{param id: {'exp_avg': ShardedTensor, 'exp_avg_sq': ShardedTensor}} over this rank's shards."""
    from megatron.core.dist_checkpointing.optimizer import (
        get_param_id_to_sharded_param_map,
        make_sharded_optimizer_tensor,
    )

    ensure_adam_state(optimizer)
    params = optimizer_params(optimizer)
    id_to_sharded = get_param_id_to_sharded_param_map(model_sharded, params)
    out: dict[int, dict[str, Any]] = {}
    for index, param in enumerate(params):
        if index not in id_to_sharded:
            raise RuntimeError(f"optimizer parameter {index} {tuple(param.shape)} has no entry in the model's sharded state")
        state = optimizer.state[param]
        out[index] = {
            key: make_sharded_optimizer_tensor(id_to_sharded[index], state[key], prefix=f"optimizer.state.{key}")
            for key in ADAM_KEYS
        }
    return out


def optimizer_meta(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The json part: the Adam step and each group's hyper-parameters."""
    steps = {float(optimizer.state[p]["step"]) for p in optimizer_params(optimizer) if "step" in optimizer.state[p]}
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return {"adam_step": max(steps) if steps else 0.0, "param_groups": groups}


def restore_optimizer(optimizer: torch.optim.Optimizer, loaded: dict[int, dict[str, torch.Tensor]], meta: dict[str, Any]) -> None:
    """Put loaded state tensors, the step and the group hyper-parameters back into `optimizer`."""
    params = optimizer_params(optimizer)
    if len(meta["param_groups"]) != len(optimizer.param_groups):
        raise RuntimeError(
            f"the checkpoint's optimizer has {len(meta['param_groups'])} param groups, this one "
            f"{len(optimizer.param_groups)}: the optimizer settings changed since it was saved"
        )
    for index, param in enumerate(params):
        state = optimizer.state[param]
        for key in ADAM_KEYS:
            state[key].copy_(loaded[index][key])
        state["step"] = _step_tensor(optimizer, param, float(meta["adam_step"]))
    for group, saved in zip(optimizer.param_groups, meta["param_groups"]):
        for key, value in saved.items():
            group[key] = tuple(value) if isinstance(group.get(key), tuple) else value
