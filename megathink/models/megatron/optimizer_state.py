"""AdamW state of a megatron model's shards, as sharded tensors that reshard on load.

Each rank's torch AdamW keeps `exp_avg` / `exp_avg_sq` with exactly the shape of its parameter
shard, so every state tensor gets the sharding metadata of its parameter (the model's
`sharded_state_dict()` entry, key prefixed `optimizer.state.<name>.`). Saved next to the
model, a checkpoint written at one TP / PP loads into an optimizer at another, like the weights.

What is not a tensor travels in the checkpoint's json: the Adam step count (the same for every
parameter: megatron gives every shard a gradient on every step) and the param groups'
hyper-parameters (lr, betas, weight decay, ...).

Two optimizer layouts, the same checkpoint format: plain torch AdamW, where every
data-parallel replica holds the full state of its model shard and replica 0's copy is saved
(megatron's replica ids); or `parallel.distributed_optimizer` (torch's
`ZeroRedundancyOptimizer`, ZeRO stage 1), where each replica owns the state of some of the
parameters: each owner saves what it owns as the main replica, and on load each rank reads the
state of the parameters it owns under the new layout. So a run saved with one resumes with the
other, at any TP / PP / DP. Departure from megatron-LM: its distributed optimizer also shards
fp32 master weights and uses contiguous grad buffers; here the parameters are the master copy.
"""

from __future__ import annotations

from typing import Any

import torch

ADAM_KEYS = ("exp_avg", "exp_avg_sq")


def local_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer that holds this rank's AdamW state: a ZeroRedundancyOptimizer's local one."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return optimizer.optim if isinstance(optimizer, ZeroRedundancyOptimizer) else optimizer


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    """The parameters whose state this rank holds, in the optimizer's own id order (group by group)."""
    return [param for group in local_optimizer(optimizer).param_groups for param in group["params"]]


def _owner_replica(replica_id: Any) -> Any:
    """A ZeRO owner's state is the main copy along data parallelism (megatron's replica ids end
    with the data-parallel rank); other replica axes (TP duplicates, a tied copy) stay as they are."""
    if isinstance(replica_id, tuple):
        return (*replica_id[:-1], 0)
    return 0


def _step_tensor(optimizer: torch.optim.Optimizer, param: torch.Tensor, step: float) -> torch.Tensor:
    """The Adam step as torch keeps it: a float32 scalar on the parameter's device for the fused
    (and capturable) kernels, on the CPU otherwise."""
    on_device = optimizer.defaults.get("fused") or optimizer.defaults.get("capturable")
    return torch.tensor(step, dtype=torch.float32, device=param.device if on_device else "cpu")


def ensure_adam_state(optimizer: torch.optim.Optimizer) -> None:
    """Create zero AdamW state for every parameter that has none yet (a fresh optimizer), so a
    checkpoint can be loaded into it."""
    local = local_optimizer(optimizer)
    for param in optimizer_params(optimizer):
        state = local.state[param]
        if not state:
            state["step"] = _step_tensor(local, param, 0.0)
            for key in ADAM_KEYS:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)


def sharded_optimizer_state(model: Any, optimizer: torch.optim.Optimizer, model_sharded: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """{param index: {'exp_avg': ShardedTensor, 'exp_avg_sq': ShardedTensor}} over the state this rank holds."""
    from dataclasses import replace

    from megatron.core.dist_checkpointing.optimizer import (
        get_param_id_to_sharded_param_map,
        make_sharded_optimizer_tensor,
    )

    ensure_adam_state(optimizer)
    local = local_optimizer(optimizer)
    zero = local is not optimizer
    params = optimizer_params(optimizer)
    id_to_sharded = get_param_id_to_sharded_param_map(model_sharded, params)
    out: dict[int, dict[str, Any]] = {}
    for index, param in enumerate(params):
        if index not in id_to_sharded:
            raise RuntimeError(f"optimizer parameter {index} {tuple(param.shape)} has no entry in the model's sharded state")
        state = local.state[param]
        entry = {}
        for key in ADAM_KEYS:
            tensor = make_sharded_optimizer_tensor(id_to_sharded[index], state[key], prefix=f"optimizer.state.{key}")
            entry[key] = replace(tensor, replica_id=_owner_replica(tensor.replica_id)) if zero else tensor
        out[index] = entry
    return out


def adam_step(optimizer: torch.optim.Optimizer) -> float:
    """The Adam step of the state this rank holds (0 when it holds none yet)."""
    local = local_optimizer(optimizer)
    steps = {float(local.state[p]["step"]) for p in optimizer_params(optimizer) if "step" in local.state[p]}
    return max(steps) if steps else 0.0


def optimizer_meta(optimizer: torch.optim.Optimizer, *, step: float | None = None) -> dict[str, Any]:
    """The json part: the Adam step (this rank's unless given) and each group's hyper-parameters."""
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return {"adam_step": adam_step(optimizer) if step is None else step, "param_groups": groups}


def restore_optimizer(optimizer: torch.optim.Optimizer, loaded: dict[int, dict[str, torch.Tensor]], meta: dict[str, Any]) -> None:
    """Put loaded state tensors, the step and the group hyper-parameters back into `optimizer`."""
    local = local_optimizer(optimizer)
    params = optimizer_params(optimizer)
    if len(meta["param_groups"]) != len(optimizer.param_groups):
        raise RuntimeError(
            f"the checkpoint's optimizer has {len(meta['param_groups'])} param groups, this one "
            f"{len(optimizer.param_groups)}: the optimizer settings changed since it was saved"
        )
    for index, param in enumerate(params):
        state = local.state[param]
        for key in ADAM_KEYS:
            state[key].copy_(loaded[index][key])
        state["step"] = _step_tensor(local, param, float(meta["adam_step"]))
    for groups in {id(optimizer): optimizer.param_groups, id(local): local.param_groups}.values():
        for group, saved in zip(groups, meta["param_groups"]):
            for key, value in saved.items():
                group[key] = tuple(value) if isinstance(group.get(key), tuple) else value
