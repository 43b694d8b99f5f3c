"""Weight sync through the file system: full HF-named tensors -> a HF folder per weight version.

`WeightFolderWriter.write(state, version)` writes safetensors shards (5 GB each, with the index
file when there are several; a tied `lm_head.weight` is left out as `save_pretrained` does), the
model's `config.json` and the tokenizer into a hidden temporary folder next to the target, then
renames it to `<root>/v<version, 8 digits>`: a reader (an engine loading it, or restarting on it)
never sees a half-written folder. Older version folders beyond the newest `keep` are deleted.
Engines then load the folder with `POST /update_weights_from_disk` (see `SGLangEngine`).

`is_global_rank_zero()`: only that process writes files and talks HTTP; with a sharded
(Megatron) policy every rank still calls `hf_state_dict` (a collective) before asking.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import torch

MARKER = ".megathink-weights.json"
"""Written into every version folder; only folders holding it are ever deleted."""


def is_global_rank_zero() -> bool:
    """True without torch.distributed, or on global rank 0 of an initialised process group."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def version_dir(root: Path, version: int) -> Path:
    return Path(root) / f"v{version:08d}"


class WeightFolderWriter:
    """Writes weight versions as HF folders under `root` (config and tokenizer fixed at creation)."""

    def __init__(self, root: Path, hf_config: Any, tokenizer: Optional[Any] = None, *, keep: int = 2, max_shard_size: str = "5GB") -> None:
        self.root = Path(root)
        self.hf_config = hf_config
        self.tokenizer = tokenizer
        self.keep = max(1, keep)
        self.max_shard_size = max_shard_size
        self.last_write_s = 0.0

    def write(self, state: Mapping[str, torch.Tensor], version: int) -> Path:
        """Write `state` as version `version` (atomically, replacing a folder of that version) and return its path."""
        from huggingface_hub import save_torch_state_dict

        started = time.perf_counter()
        target = version_dir(self.root, version)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{target.name}.tmp-{os.getpid()}-{time.time_ns()}"
        tensors = {name: tensor.detach() for name, tensor in state.items()}
        if getattr(self.hf_config, "tie_word_embeddings", False):
            tensors.pop("lm_head.weight", None)  # tied to the input embeddings; the loader re-ties it
        try:
            tmp.mkdir()
            save_torch_state_dict(tensors, tmp, max_shard_size=self.max_shard_size, metadata={"format": "pt"})
            self.hf_config.save_pretrained(tmp)
            if self.tokenizer is not None:
                self.tokenizer.save_pretrained(tmp)
            (tmp / MARKER).write_text(json.dumps({"written_by": "megathink", "version": version}) + "\n", encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._prune(version)
        self.last_write_s = time.perf_counter() - started
        return target

    def _prune(self, newest: int) -> None:
        old = sorted(
            (p for p in self.root.glob("v*") if p.is_dir() and (p / MARKER).is_file() and p.name[1:].isdigit()),
            key=lambda p: int(p.name[1:]),
        )
        for folder in old:
            if int(folder.name[1:]) <= newest - self.keep:
                shutil.rmtree(folder, ignore_errors=True)
