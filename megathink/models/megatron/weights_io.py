"""Move weights between HF checkpoint folders and a sharded megatron model.

- `read_hf_dir(path)`: the `GPTSpec` and tensors of a HF folder (config.json + one
  `model.safetensors` or an index of shards), as `LazyHFTensors`: each tensor is read from its
  memory-mapped file when asked for, so a process that loads one TP / PP slice of a 7B model
  reads that slice's layers, not the whole model.
- `load_hf_into(model, hf, spec, info)`: this rank's slice (`weight_map.hf_to_megatron`) into
  its GPTModel (or each of its model chunks with vpp > 1: chunk c is virtual stage
  c * pp + pp_rank of pp * vpp, which the weight map treats as a finer pipeline); a missing or
  unexpected megatron tensor is an error naming it.
- `iter_hf_buckets(model, spec, info, bucket_bytes)`: the streaming exporter, a collective whose
  output lands on global rank 0 (the rank that syncs rollout engines and writes files). One
  (virtual) pipeline stage at a time, its owner all-gathers it over the tensor-parallel group
  and sends it to rank 0, which maps it to full HF-named tensors (`weight_map.iter_stage_to_hf`)
  and yields them in buckets of about `bucket_bytes`, in HF order (for weight sync to rollout
  engines and for `megathink convert`). No rank holds more than one stage of the full model at
  a time, besides what rank 0's consumer keeps.
- `write_hf_dir(tensors, spec_config, out, tokenizer_dir)`: safetensors shards, index,
  config.json, tokenizer files and chat template, written to a temporary folder and renamed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

import torch

from megathink.errors import DataError, MissingPathError
from megathink.models.megatron.distributed import ParallelInfo
from megathink.models.megatron.gpt_spec import GPTSpec
from megathink.models.megatron.model import as_chunks
from megathink.models.megatron.weight_map import hf_to_megatron, iter_stage_to_hf

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
    "chat_template.jinja", "added_tokens.json", "generation_config.json",
)


class LazyHFTensors(Mapping[str, torch.Tensor]):
    """HF-named tensors of safetensors files, each read (a fresh CPU tensor) when it is asked for."""

    def __init__(self, files: list[Path]) -> None:
        from safetensors import safe_open

        self._handles = [safe_open(str(file), framework="pt") for file in files]
        self._where = {name: handle for handle in self._handles for name in handle.keys()}

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._where[name].get_tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def close(self) -> None:
        """Drop the file handles (their memory maps): before the files are removed."""
        self._where, self._handles = {}, []


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files of a HF folder: its index's shards, or its one model.safetensors."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return [folder / name for name in sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))]
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    raise MissingPathError(f"{folder} has no model.safetensors or model.safetensors.index.json.")


def read_hf_dir(path: str | os.PathLike[str]) -> tuple[GPTSpec, dict[str, Any], LazyHFTensors]:
    """(spec, raw config.json, its tensors read on demand) of a local HF checkpoint folder."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise MissingPathError(f"{folder} has no config.json: give a HuggingFace checkpoint folder.")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    files = safetensors_files(folder)
    return GPTSpec.from_hf_config(config), config, LazyHFTensors(files)


def _model_tensors(model: Any) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.endswith("_extra_state")}


def load_hf_into(model: Any, hf: Mapping[str, torch.Tensor], spec: GPTSpec, info: ParallelInfo, *, te: bool = False) -> None:
    """Copy this rank's slice of the HF tensors into its megatron model chunks (dtype cast to the model's)."""
    for chunk, module in enumerate(as_chunks(model)):
        shard = hf_to_megatron(
            hf, spec, tp_rank=info.tp_rank, tp_size=info.tp, pp_rank=info.virtual_stage(chunk),
            pp_size=info.virtual_stages, te=te,
        )
        own = _model_tensors(module)
        missing, unexpected = sorted(set(own) - set(shard)), sorted(set(shard) - set(own))
        if missing or unexpected:
            name = (missing or unexpected)[0]
            kind = "has no HF source" if missing else "does not exist in the megatron model"
            raise DataError(f"megatron tensor {name!r} {kind}: the HF checkpoint and the model layout disagree.")
        with torch.no_grad():
            for name, tensor in own.items():
                if tensor.shape != shard[name].shape:
                    raise DataError(f"megatron tensor {name!r}: shape {tuple(tensor.shape)} != HF slice {tuple(shard[name].shape)}.")
                tensor.copy_(shard[name].to(tensor.dtype))


def iter_hf_buckets(
    model: Any, spec: GPTSpec, info: ParallelInfo, *, bucket_bytes: int = 512 * 2**20, te: bool = False
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Full HF-named tensors in buckets of about `bucket_bytes` (a tensor larger than that alone),
    in HF order, on global rank 0; the other ranks yield nothing but must iterate too."""
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    for stage, shards in iter_stage_shards(model, info):
        for name, tensor in iter_stage_to_hf(shards, spec, stage=stage, stages=info.virtual_stages, te=te):
            nbytes = tensor.numel() * tensor.element_size()
            if bucket and size + nbytes > bucket_bytes:
                yield bucket
                bucket, size = [], 0
            bucket.append((name, tensor))
            size += nbytes
    if bucket:
        yield bucket


def _gather_tp(module: Any, info: ParallelInfo) -> list[dict[str, torch.Tensor]]:
    """`[tp_rank]` CPU tensors of one model chunk, all-gathered over this rank's TP group."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    local = {k: v.detach() for k, v in _model_tensors(module).items()}
    parts_of: list[dict[str, torch.Tensor]] = [{} for _ in range(info.tp)]
    for name in sorted(local):
        parts = [local[name]]
        if info.tp > 1:
            parts = [torch.empty_like(local[name]) for _ in range(info.tp)]
            dist.all_gather(parts, local[name].contiguous(), group=parallel_state.get_tensor_model_parallel_group())
        for tp, part in enumerate(parts):
            parts_of[tp][name] = part.cpu()
    return parts_of


def iter_stage_shards(model: Any, info: ParallelInfo) -> Iterator[tuple[int, list[dict[str, torch.Tensor]]]]:
    """(virtual stage, its `[tp_rank]` CPU shards), one stage after the other, on global rank 0;
    nothing on the other ranks, which must still run the generator to its end (collective).

    The owner of each stage (the pipeline rank holding it, data-parallel replica 0, cp rank 0) gathers it
    over its TP group and, unless it is rank 0 itself, sends it to rank 0, so no rank ever holds
    more than one stage of the full model (rank 0: the stage it is converting)."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    chunks = as_chunks(model)
    device = next(chunks[0].parameters()).device
    # Rank 0's pipeline group: the global ranks of (TP 0, replica 0) at every pipeline rank.
    senders = dist.get_process_group_ranks(parallel_state.get_pipeline_model_parallel_group()) if info.pp > 1 else [0]
    for stage in range(info.virtual_stages):
        owner = stage % info.pp
        shards: Optional[list[dict[str, torch.Tensor]]] = None
        if info.pp_rank == owner and info.main_replica:
            shards = _gather_tp(chunks[stage // info.pp], info)
        if owner == 0:  # global rank 0 is pipeline rank 0, TP rank 0, replica 0
            if info.rank == 0:
                yield stage, shards  # type: ignore[misc]
            continue
        box: list[Any] = [shards]
        if info.pp_rank == owner and info.main_replica and info.tp_rank == 0:
            dist.send_object_list(box, dst=0, device=device)
        elif info.rank == 0:
            dist.recv_object_list(box, src=senders[owner], device=device)  # stages arrive in order
            yield stage, box[0]


def write_hf_dir(
    tensors: Mapping[str, torch.Tensor], config: Mapping[str, Any], out: Path, *, tokenizer_dir: Path | None,
    shard_bytes: int = 4 * 2**30,
) -> Path:
    """A HF folder loadable by transformers / SGLang / vLLM, written atomically to `out`."""
    from safetensors.torch import save_file

    out = Path(out)
    if out.exists():
        raise DataError(f"{out} already exists: refusing to overwrite it; choose another --out.")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor.contiguous()
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        file = "model.safetensors" if len(shards) == 1 else f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(tmp / file), metadata={"format": "pt"})
        weight_map.update({name: file for name in shard})
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    (tmp / "config.json").write_text(json.dumps(dict(config), indent=2), encoding="utf-8")
    if tokenizer_dir is not None:
        for name in TOKENIZER_FILES:
            if (Path(tokenizer_dir) / name).is_file():
                shutil.copy2(Path(tokenizer_dir) / name, tmp / name)
    os.replace(tmp, out)
    return out
