"""Megatron distributed checkpoints of the model: save at one TP / PP layout, load at any other.

`save_model(model, directory, hf_config=, source_dir=)` writes the model's sharded state dict
with `megatron.core.dist_checkpointing` (every rank writes its own shards) into a temporary
sibling folder that rank 0 renames into place after a barrier, so a killed save never leaves
a half-written checkpoint under the final name. Beside the shards: `megathink_model.json`
(the HF config the model was built from, and the TP / PP it was saved at) and, when
`source_dir` is given, the tokenizer files of that HF folder (for `convert megatron-to-hf`).

`load_model(model, directory)` fills this rank's model from a checkpoint saved at any layout:
dist_checkpointing reshards (the vocabulary padding does not depend on TP, see
`GPTSpec.padded_vocab`). `read_model_meta(directory)` returns the json beside the shards.

`dist_checkpointing.save` needs `psutil` (without it, it hangs) and spawns worker processes, so
scripts that save need an `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Optional

import torch.distributed as dist

from megathink.errors import DataError, MissingPathError
from megathink.models.megatron.distributed import ParallelInfo

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
) -> Path:
    """Write the model's shards to `directory` (which must not exist yet); returns it."""
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
    dist_checkpointing.save(model.sharded_state_dict(), str(tmp))
    _barrier()
    if info.rank == 0:
        meta = {"hf_config": dict(hf_config), "saved_tp": info.tp, "saved_pp": info.pp}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if source_dir is not None:
            for name in TOKENIZER_FILES:
                if name != "generation_config.json" and (Path(source_dir) / name).is_file():
                    shutil.copy2(Path(source_dir) / name, tmp / name)
        os.replace(tmp, final)
    _barrier()
    return final


def read_model_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The `megathink_model.json` of a checkpoint folder written by `save_model`."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise MissingPathError(
            f"{directory} has no {META_FILE}: give a checkpoint folder written by megathink "
            "(megathink convert hf-to-megatron, or a megatron training run)."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_model(model: Any, directory: str | os.PathLike[str]) -> None:
    """Fill this rank's model from the checkpoint at `directory` (any TP / PP it was saved at)."""
    from megatron.core import dist_checkpointing

    read_model_meta(directory)
    state = dist_checkpointing.load(model.sharded_state_dict(), str(directory))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [name for name in missing if not name.endswith("_extra_state")]
    if missing or unexpected:
        name = (missing or unexpected)[0]
        raise DataError(f"checkpoint {directory}: tensor {name!r} is {'missing' if missing else 'unexpected'}.")


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
