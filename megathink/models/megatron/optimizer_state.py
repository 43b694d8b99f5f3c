"""AdamW state of a megatron model's shards, as sharded tensors that reshard on load.

Each rank's torch AdamW keeps `exp_avg` / `exp_avg_sq` with exactly the shape of its parameter
shard, so every state tensor gets the sharding metadata of its parameter (the model's
`sharded_state_dict()` entry, key prefixed `optimizer.state.<name>.`). Saved next to the
model, a checkpoint written at one TP / PP loads into an optimizer at another, like the weights.
A bf16 model's fp32 master weights (`trainer.master_weights`) are saved the same way
(`optimizer.state.master.`), so a resumed run continues from them, not from the rounded weights.

What is not a tensor travels in the checkpoint's json: the Adam step count (the same for every
parameter: megatron gives every shard a gradient on every step), whether masters were saved,
and the param groups' hyper-parameters (lr, betas, weight decay, ...).

Two optimizer layouts, the same checkpoint format: plain torch AdamW, where every
data-parallel replica holds the full state of its model shard and replica 0's copy is saved
(megatron's replica ids); or `parallel.distributed_optimizer` (torch's
`ZeroRedundancyOptimizer`, ZeRO stage 1, over the data x context parallel ranks), where each
of them owns the state of some of the parameters: each owner saves what it owns as the main replica, and on load each rank reads the
state of the parameters it owns under the new layout. So a run saved with one resumes with the
other, at any TP / PP / DP. Departure from megatron-LM: its distributed optimizer also uses
contiguous grad buffers and shards the grads' reduction.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

ADAM_KEYS = ("exp_avg", "exp_avg_sq")
MASTER = "master"


def local_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer that holds this rank's AdamW state: a ZeroRedundancyOptimizer's local one."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return optimizer.optim if isinstance(optimizer, ZeroRedundancyOptimizer) else optimizer


def has_masters(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer updates fp32 master copies (`MasterWeightAdamW`)."""
    return hasattr(local_optimizer(optimizer), "master_of")


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    """The model parameters whose state this rank holds, in the optimizer's own order (group by group)."""
    local = local_optimizer(optimizer)
    if has_masters(optimizer):
        return list(local.model_params)  # type: ignore[attr-defined]
    return [param for group in local.param_groups for param in group["params"]]


def _updated(local: torch.optim.Optimizer, param: torch.Tensor) -> torch.Tensor:
    """The tensor the optimizer steps (and keys its state by) for model parameter `param`."""
    master_of = getattr(local, "master_of", None)
    return master_of(param) if master_of is not None else param


def _owner_replica(replica_id: Any) -> Any:
    """A ZeRO owner's state is the main copy along data x context parallelism (megatron's replica
    ids end with that rank, and ZeRO shards over the same ranks, so each state has one owner);
    other replica axes (TP duplicates, a tied copy) stay as they are."""
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
        updated = _updated(local, param)
        state = local.state[updated]
        if not state:
            state["step"] = _step_tensor(local, updated, 0.0)
            for key in ADAM_KEYS:
                state[key] = torch.zeros_like(updated, memory_format=torch.preserve_format)


def sharded_optimizer_state(
    model: Any, optimizer: torch.optim.Optimizer, model_sharded: dict[str, Any], *, masters: Optional[bool] = None
) -> dict[int, dict[str, Any]]:
    """{param index: {'exp_avg': ShardedTensor, 'exp_avg_sq': ..., ['master': ...]}} over the state
    this rank holds. `masters`: include the fp32 master weights (default: when the optimizer has them)."""
    from dataclasses import replace

    from megatron.core.dist_checkpointing.optimizer import (
        get_param_id_to_sharded_param_map,
        make_sharded_optimizer_tensor,
    )

    ensure_adam_state(optimizer)
    local = local_optimizer(optimizer)
    zero = local is not optimizer
    masters = has_masters(optimizer) if masters is None else masters
    params = optimizer_params(optimizer)
    id_to_sharded = get_param_id_to_sharded_param_map(model_sharded, params)
    out: dict[int, dict[str, Any]] = {}
    for index, param in enumerate(params):
        if index not in id_to_sharded:
            raise RuntimeError(f"optimizer parameter {index} {tuple(param.shape)} has no entry in the model's sharded state")
        updated = _updated(local, param)
        tensors = {key: local.state[updated][key] for key in ADAM_KEYS}
        if masters:
            tensors[MASTER] = updated
        entry = {}
        for key, value in tensors.items():
            tensor = make_sharded_optimizer_tensor(id_to_sharded[index], value, prefix=f"optimizer.state.{key}")
            entry[key] = replace(tensor, replica_id=_owner_replica(tensor.replica_id)) if zero else tensor
        out[index] = entry
    return out


def adam_step(optimizer: torch.optim.Optimizer) -> float:
    """The Adam step of the state this rank holds (0 when it holds none yet)."""
    local = local_optimizer(optimizer)
    states = [local.state[_updated(local, p)] for p in optimizer_params(optimizer)]
    steps = {float(state["step"]) for state in states if "step" in state}
    return max(steps) if steps else 0.0


def optimizer_meta(optimizer: torch.optim.Optimizer, *, step: float | None = None) -> dict[str, Any]:
    """The json part: the Adam step (this rank's unless given), whether fp32 masters are saved,
    and each group's hyper-parameters."""
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return {"adam_step": adam_step(optimizer) if step is None else step, "master_weights": has_masters(optimizer),
            "param_groups": groups}


def restore_optimizer(optimizer: torch.optim.Optimizer, loaded: dict[int, dict[str, torch.Tensor]], meta: dict[str, Any]) -> None:
    """Put loaded state tensors (and fp32 masters, when loaded), the step and the group
    hyper-parameters back into `optimizer`. Call it after the model's weights are loaded: masters
    the checkpoint does not hold are taken from them."""
    local = local_optimizer(optimizer)
    params = optimizer_params(optimizer)
    if len(meta["param_groups"]) != len(optimizer.param_groups):
        raise RuntimeError(
            f"the checkpoint's optimizer has {len(meta['param_groups'])} param groups, this one "
            f"{len(optimizer.param_groups)}: the optimizer settings changed since it was saved"
        )
    with torch.no_grad():
        for index, param in enumerate(params):
            updated = _updated(local, param)
            state = local.state[updated]
            for key in ADAM_KEYS:
                state[key].copy_(loaded[index][key])
            state["step"] = _step_tensor(local, updated, float(meta["adam_step"]))
            if updated is not param:  # fp32 master: the saved one, else the (just loaded) weights
                updated.copy_(loaded[index][MASTER] if MASTER in loaded[index] else param)
                param.copy_(updated)
    for groups in {id(optimizer): optimizer.param_groups, id(local): local.param_groups}.values():
        for group, saved in zip(groups, meta["param_groups"]):
            for key, value in saved.items():
                group[key] = tuple(value) if isinstance(group.get(key), tuple) else value
