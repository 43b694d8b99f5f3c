"""The rollout engine a command-level evaluation generates with: `megathink eval` and `megathink presample`.

Both read the run's `rollout` section, as training does: `rollout.engine=local` samples from the
model loaded in this process (`LocalEngine`, batched KV cache on `trainer.device`);
`rollout.engine=sglang` sends every generation to SGLang-protocol servers through the same
client, retries and health checks as RL rollouts (`rollout.sglang`: `urls` attaches to running
servers, else `num_engines` servers are launched with `launch_command`, `megathink serve` on
CPU). With engines, the folder being evaluated is what they serve: launched engines start on it
(the evaluated HF directory, or the reference model's `model.path`), attached engines are told
to load it (`/update_weights_from_disk`: the folder must be visible to them, e.g. on a shared
file system); a step checkpoint, or a model whose vocabulary the tokenizer grew, is first
written as a HF folder under `rollout.sglang.sync_dir` (default `<output_dir>/rollout_weights`).
No model is built in this process when the folder can be served as is, and otherwise it is
built on the CPU only to write that folder: the evaluation's KV cache lives on the engines.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

from megathink.config.run import RunConfig
from megathink.data.types import TokenizerBundle
from megathink.models.hf_backend import HFBackend
from megathink.rollout.engine_factory import build_rollout_engine, close_engine, serves_folder_as_is
from megathink.rollout.protocol import RolloutEngine


def on_engines(cfg: RunConfig) -> bool:
    """Whether generation goes to SGLang-protocol servers (`rollout.engine=sglang`)."""
    return cfg.rollout.engine == "sglang"


def model_device(cfg: RunConfig) -> str:
    """Where this process builds the model: `trainer.device` for the local engine; the CPU with
    engines (the model is then only a source of weights to write)."""
    return "cpu" if on_engines(cfg) else cfg.trainer.device


def needs_local_model(cfg: RunConfig, model_dir: Optional[str], bundle: TokenizerBundle) -> bool:
    """Whether this process must build the model: always for the local engine; with engines only
    when `model_dir` cannot be served as is (no HF folder, or the vocabulary grew)."""
    return not on_engines(cfg) or not serves_folder_as_is(model_dir, bundle)


def open_eval_engine(
    cfg: RunConfig,
    *,
    sampler: Optional[HFBackend],
    bundle: TokenizerBundle,
    model_dir: Optional[str],
    out_dir: Path,
    batch_size: int,
    stack: contextlib.ExitStack,
) -> RolloutEngine:
    """The engine for `cfg.rollout.engine`, closed (launched servers stopped) when `stack` closes.

    sampler: the model in this process (None when `needs_local_model` is False); model_dir: the
    HF folder being evaluated, if it is one."""
    engine = build_rollout_engine(
        cfg.rollout, sampler, pad_id=bundle.pad_id, batch_size=batch_size, out_dir=Path(out_dir),
        model_dir=model_dir, bundle=bundle, load_attached=True,
    )
    stack.callback(close_engine, engine)
    return engine
