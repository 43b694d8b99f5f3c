"""Megatron distributed checkpoints of the model: save at one TP / PP layout, load at any other.

`save_model(model, directory, hf_config=, source_dir=)` writes the model's sharded state dict
with `megatron.core.dist_checkpointing` (every rank writes its own shards) into a temporary
sibling folder that rank 0 renames into place after a barrier, so a killed save never leaves
a half-written checkpoint under the final name. Beside the shards: `megathink_model.json`
(the HF config the model was built from, and the TP / PP it was saved at) and, when
`source_dir` is given, the tokenizer files of that HF folder (for `convert megatron-to-hf`).

`load_model(model, directory)` fills this rank's model from a checkpoint saved at any layout:
dist_checkpointing reshards (the vocabulary padding does not depend on TP, see
`GPTSpec.padded_vocab`). `model` is a GPTModel or, with vpp > 1, this rank's model chunks;
the sharded tensors carry global layer numbers, so a checkpoint saved with interleaving loads
without it and back. `read_model_meta(directory)` returns the json beside the shards.

Training checkpoints pass `optimizer=` to both: the AdamW state is saved as sharded tensors
beside the weights (`optimizer_state.py`) and reshards on load the same way, so a run saved at
TP=2 resumes at PP=2 with its moments. `convert megatron-to-hf` reads the weights of such a
checkpoint and ignores the optimizer tensors.

`dist_checkpointing.save` needs `psutil` (without it, it hangs) and spawns worker processes, so
scripts that save need an `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
import torch.distributed as dist

from megathink.errors import DataError, MissingPathError
from megathink.models.megatron.distributed import ParallelInfo
from megathink.models.megatron.model import as_chunks
from megathink.models.megatron.optimizer_state import (
    adam_step,
    has_masters,
    optimizer_meta,
    restore_optimizer,
    sharded_optimizer_state,
)

META_FILE = "megathink_model.json"


def _require_psutil() -> None:
    try:
        import psutil  # noqa: F401
    except ImportError as err:
        raise DataError(
            "saving a megatron checkpoint needs the psutil package (dist_checkpointing hangs without it): "
            "pip install -c constraints.txt -e '.[megatron]'."
        ) from err


def save_model(
    model: Any,
    directory: str | os.PathLike[str],
    *,
    info: ParallelInfo,
    hf_config: Mapping[str, Any],
    source_dir: Optional[str | os.PathLike[str]] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
) -> Path:
    """Write the model's shards (and `optimizer`'s state) to `directory` (which must not exist yet)."""
    from megatron.core import dist_checkpointing

    from megathink.models.megatron.weights_io import TOKENIZER_FILES

    _require_psutil()
    final = Path(directory)
    if final.exists():
        raise DataError(f"{final} already exists: refusing to overwrite a checkpoint; choose another folder.")
    tmp = final.with_name(f".{final.name}.tmp")
    if info.rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    state: dict[str, Any] = {"model": _sharded_model_state(model)}
    if optimizer is not None:
        state["optimizer"] = sharded_optimizer_state(model, optimizer, state["model"])
    dist_checkpointing.save(state, str(tmp))
    step = _max_over_ranks(adam_step(optimizer), model) if optimizer is not None else 0.0  # ZeRO: rank 0 may own nothing
    _barrier()
    if info.rank == 0:
        meta = {"hf_config": dict(hf_config), "saved_tp": info.tp, "saved_pp": info.pp, "saved_vpp": info.vpp}
        if optimizer is not None:
            meta["optimizer"] = optimizer_meta(optimizer, step=step)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if source_dir is not None:
            for name in TOKENIZER_FILES:
                if name != "generation_config.json" and (Path(source_dir) / name).is_file():
                    shutil.copy2(Path(source_dir) / name, tmp / name)
        os.replace(tmp, final)
    _barrier()
    return final


def _sharded_model_state(model: Any) -> dict[str, Any]:
    """The sharded state dict of this rank's chunks ({'chunk<i>': ...} with several)."""
    chunks = as_chunks(model)
    if len(chunks) == 1:
        return chunks[0].sharded_state_dict()
    return {f"chunk{i}": chunk.sharded_state_dict() for i, chunk in enumerate(chunks)}


def read_model_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The `megathink_model.json` of a checkpoint folder written by `save_model`."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise MissingPathError(
            f"{directory} has no {META_FILE}: give a checkpoint folder written by megathink "
            "(megathink convert hf-to-megatron, or a megatron training run)."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_model(model: Any, directory: str | os.PathLike[str], *, optimizer: Optional[torch.optim.Optimizer] = None) -> None:
    """Fill this rank's model (and `optimizer`) from the checkpoint at `directory` (any TP / PP it was saved at)."""
    from megatron.core import dist_checkpointing

    meta = read_model_meta(directory)
    if optimizer is not None and "optimizer" not in meta:
        raise DataError(
            f"checkpoint {directory} holds weights only (no optimizer state): resume from a training "
            "checkpoint, or start a new run from it with model.path after `megathink convert megatron-to-hf`."
        )
    request: dict[str, Any] = {"model": _sharded_model_state(model)}
    if optimizer is not None:
        with_masters = has_masters(optimizer) and bool(meta["optimizer"].get("master_weights"))
        request["optimizer"] = sharded_optimizer_state(model, optimizer, request["model"], masters=with_masters)
    loaded = dist_checkpointing.load(request, str(directory))
    chunks = as_chunks(model)
    for i, chunk in enumerate(chunks):
        missing, unexpected = chunk.load_state_dict(loaded["model"] if len(chunks) == 1 else loaded["model"][f"chunk{i}"], strict=False)
        missing = [name for name in missing if not name.endswith("_extra_state")]
        if missing or unexpected:
            name = (missing or unexpected)[0]
            raise DataError(f"checkpoint {directory}: tensor {name!r} is {'missing' if missing else 'unexpected'}.")
    if optimizer is not None:  # after the weights: fp32 masters the checkpoint lacks come from them
        restore_optimizer(optimizer, loaded["optimizer"], meta["optimizer"])


def _max_over_ranks(value: float, model: Any) -> float:
    if not dist.is_initialized():
        return value
    device = next(as_chunks(model)[0].parameters()).device
    tensor = torch.tensor(value, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor)


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
