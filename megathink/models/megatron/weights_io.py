"""Move weights between HF checkpoint folders and a sharded megatron model.

- `read_hf_dir(path)`: the `GPTSpec` and full tensors of a HF folder (config.json + one
  `model.safetensors` or an index of shards).
- `load_hf_into(model, hf, spec, info)`: this rank's slice (`weight_map.hf_to_megatron`) into
  its GPTModel; a missing or unexpected megatron tensor is an error naming it.
- `iter_hf_buckets(model, spec, info, bucket_bytes)`: the streaming exporter. Each tensor of
  this pipeline stage is all-gathered over the tensor-parallel group, the stages' pieces are
  collected over the pipeline group, and full HF-named tensors are yielded in buckets of about
  `bucket_bytes` (for weight sync to rollout engines and for `megathink convert`), in HF order.
  Departure: the pipeline stages are collected whole (all_gather_object) before the first
  bucket, so peak memory holds the full model once; per-stage streaming is future work.
- `write_hf_dir(tensors, spec_config, out, tokenizer_dir)`: safetensors shards, index,
  config.json, tokenizer files and chat template, written to a temporary folder and renamed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from megathink.errors import DataError, MissingPathError
from megathink.models.megatron.distributed import ParallelInfo
from megathink.models.megatron.gpt_spec import GPTSpec
from megathink.models.megatron.weight_map import hf_to_megatron, iter_megatron_to_hf

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
    "chat_template.jinja", "added_tokens.json", "generation_config.json",
)


def read_hf_dir(path: str | os.PathLike[str]) -> tuple[GPTSpec, dict[str, Any], dict[str, torch.Tensor]]:
    """(spec, raw config.json, full tensors) of a local HF checkpoint folder."""
    from safetensors.torch import load_file

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise MissingPathError(f"{folder} has no config.json: give a HuggingFace checkpoint folder.")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise MissingPathError(f"{folder} has no model.safetensors or model.safetensors.index.json.")
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        tensors.update(load_file(str(folder / name)))
    return GPTSpec.from_hf_config(config), config, tensors


def _model_tensors(model: Any) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.endswith("_extra_state")}


def load_hf_into(model: Any, hf: Mapping[str, torch.Tensor], spec: GPTSpec, info: ParallelInfo, *, te: bool = False) -> None:
    """Copy this rank's slice of the HF tensors into its megatron model (dtype cast to the model's)."""
    shard = hf_to_megatron(hf, spec, tp_rank=info.tp_rank, tp_size=info.tp, pp_rank=info.pp_rank, pp_size=info.pp, te=te)
    own = _model_tensors(model)
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


def gather_shards(model: Any, info: ParallelInfo) -> list[list[dict[str, torch.Tensor]]]:
    """`shards[pp_rank][tp_rank]` of the whole model (CPU tensors), on every rank."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    local = {k: v.detach().cpu() for k, v in _model_tensors(model).items()}
    tp_group = parallel_state.get_tensor_model_parallel_group()
    stage: list[dict[str, torch.Tensor]] = [{} for _ in range(info.tp)]
    device = next(model.parameters()).device
    for name in sorted(local):
        parts = [local[name]]
        if info.tp > 1:
            tensor = local[name].to(device)
            parts = [torch.empty_like(tensor) for _ in range(info.tp)]
            dist.all_gather(parts, tensor, group=tp_group)
            parts = [part.cpu() for part in parts]
        for tp, part in enumerate(parts):
            stage[tp][name] = part
    if info.pp == 1:
        return [stage]
    stages: list[Any] = [None] * info.pp
    dist.all_gather_object(stages, stage, group=parallel_state.get_pipeline_model_parallel_group())
    return stages


def iter_hf_buckets(
    model: Any, spec: GPTSpec, info: ParallelInfo, *, bucket_bytes: int = 512 * 2**20, te: bool = False
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Full HF-named tensors in buckets of about `bucket_bytes` (a tensor larger than that alone)."""
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    for name, tensor in iter_megatron_to_hf(gather_shards(model, info), spec, te=te):
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and size + nbytes > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, tensor))
        size += nbytes
    if bucket:
        yield bucket


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
