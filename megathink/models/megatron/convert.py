"""HF folder <-> megatron distributed checkpoint, each in its own processes (no torchrun needed).

- `hf_to_megatron_checkpoint(hf_dir, out, tp=, pp=)` starts tp * pp processes on one machine
  (gloo on CPU, NCCL when there are enough GPUs), each loading its slice of the HF weights
  into its GPTModel, and writes a distributed checkpoint (plus the HF config and tokenizer
  files) that training at any TP / PP can load.
- `megatron_to_hf_dir(ckpt, out)` loads a megatron checkpoint saved at any layout into one
  process (dist_checkpointing reshards to TP = PP = 1), maps every tensor to its HF name
  (vocab padding dropped; an unknown tensor is an error naming it) and writes safetensors
  shards, config.json, the tokenizer files and chat template: a folder that transformers,
  SGLang and vLLM load.

The processes are spawned (not forked), so callers need an `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import torch
import torch.multiprocessing as mp

from megathink.errors import DataError
from megathink.models.megatron.distributed import free_port


def _set_rank_env(rank: int, world: int, port: int) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _hf_to_megatron_worker(rank: int, world: int, port: int, hf_dir: str, out: str, tp: int, pp: int, precision: str) -> None:
    _set_rank_env(rank, world, port)
    from megathink.models.megatron.dist_checkpoint import save_model
    from megathink.models.megatron.distributed import init_parallel, shutdown_parallel
    from megathink.models.megatron.model import build_gpt_model
    from megathink.models.megatron.weights_io import load_hf_into, read_hf_dir

    info = init_parallel(tp, pp)
    try:
        spec, config, hf = read_hf_dir(hf_dir)
        model, _ = build_gpt_model(spec, tp=tp, pp=pp, precision=precision)
        load_hf_into(model, hf, spec, info)
        save_model(model, out, info=info, hf_config=config, source_dir=hf_dir)
    finally:
        shutdown_parallel()


def hf_to_megatron_checkpoint(hf_dir: str, out: str, *, tp: int, pp: int, precision: str = "fp32") -> Path:
    """Write a megatron checkpoint of the HF folder `hf_dir`, sharded tp x pp, to `out`."""
    from megathink.models.megatron.weights_io import read_hf_dir

    spec, _, _ = read_hf_dir(hf_dir)  # fail here, in one process, on a bad folder or layout
    spec.check_parallel(tp, pp)
    if Path(out).exists():
        raise DataError(f"--out {out} already exists: refusing to overwrite it; choose another folder.")
    world = tp * pp
    if torch.cuda.is_available() and torch.cuda.device_count() < world:
        raise DataError(f"--tp {tp} --pp {pp} needs {world} GPUs on this machine; {torch.cuda.device_count()} found.")
    mp.start_processes(
        _hf_to_megatron_worker, args=(world, free_port(), str(hf_dir), str(out), tp, pp, precision),
        nprocs=world, join=True, start_method="spawn",
    )
    return Path(out)


def _megatron_to_hf_worker(rank: int, port: int, ckpt: str, out: str, dtype: Optional[str]) -> None:
    _set_rank_env(rank, 1, port)
    from megathink.models.megatron.dist_checkpoint import load_model, read_model_meta
    from megathink.models.megatron.distributed import init_parallel, shutdown_parallel
    from megathink.models.megatron.gpt_spec import GPTSpec
    from megathink.models.megatron.model import build_gpt_model
    from megathink.models.megatron.weights_io import iter_hf_buckets, write_hf_dir

    info = init_parallel(1, 1)
    try:
        meta = read_model_meta(ckpt)
        spec = GPTSpec.from_hf_config(meta["hf_config"])
        model, _ = build_gpt_model(spec, tp=1, pp=1)
        load_model(model, ckpt)
        tensors = {name: tensor for bucket in iter_hf_buckets(model, spec, info) for name, tensor in bucket}
        if dtype is not None:
            tensors = {name: t.to(getattr(torch, dtype)) for name, t in tensors.items()}
        config: dict[str, Any] = dict(meta["hf_config"])
        if dtype is not None:
            config["dtype"] = dtype
        write_hf_dir(tensors, config, Path(out), tokenizer_dir=Path(ckpt))
    finally:
        shutdown_parallel()


def megatron_to_hf_dir(ckpt: str, out: str, *, dtype: Optional[str] = None) -> Path:
    """Write the megatron checkpoint `ckpt` as a HF folder `out` (weights cast to `dtype` if given).

    `ckpt` is a checkpoint folder (`hf-to-megatron`'s output) or a training run's step
    checkpoint (`<stage>/checkpoints/step_NNNNNNNN`, whose `megatron/` folder is read)."""
    from megathink.models.megatron.dist_checkpoint import META_FILE, read_model_meta
    from megathink.run_layout import MEGATRON_STATE

    if not (Path(ckpt) / META_FILE).is_file() and (Path(ckpt) / MEGATRON_STATE / META_FILE).is_file():
        ckpt = str(Path(ckpt) / MEGATRON_STATE)
    read_model_meta(ckpt)
    if Path(out).exists():
        raise DataError(f"--out {out} already exists: refusing to overwrite it; choose another folder.")
    mp.start_processes(_megatron_to_hf_worker, args=(free_port(), str(ckpt), str(out), dtype), nprocs=1, join=True,
                       start_method="spawn")
    return Path(out)
