"""`Policy`: what a training stage holds for either backend, behind one surface.

- `backend`: what trains (`PolicyBackend`): the HF model, or this rank's megatron shard.
- `sampler`: the HF model that rollouts and evaluations read, on rank 0 only (None elsewhere):
  the trained model itself with the HF backend; a full HF copy with the megatron backend,
  refreshed from the streaming exporter whenever the engine syncs (`refresh_sampler`).
  Evaluations that generate from it directly do so inside `with policy.sampling()`: the
  megatron backend parks its copy on the CPU while SGLang engines serve the rollouts and
  moves it to `trainer.device` only for those evaluations.
- `save` / `restore`: step checkpoints (trainer/checkpoint.py's files; the megatron backend
  writes sharded weights and AdamW state that reshard on resume).
- `save_hf`: the stage's final HF directory.
- `build_optimizer`: the stage's AdamW over the trained parameters (the megatron backend's
  shards the state over data-parallel replicas with `parallel.distributed_optimizer`).

`build_policy` picks the class from `parallel.backend`. The HF backend is one process; the
megatron backend runs on every rank of a torchrun job (see megatron_policy.py). Both get
`parallel.recompute` (HF: gradient checkpointing of the decoder layers; megatron: its full or
selective recompute), the megatron backend also `parallel.sequence_parallel`.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any, ContextManager, Optional, Protocol

import torch

from megathink.config.model import ModelConfig
from megathink.config.optimizer import OptimizerConfig
from megathink.config.run import RunConfig
from megathink.data.types import TokenizerBundle
from megathink.models.hf_backend import HFBackend, build_hf_backend
from megathink.models.protocol import PolicyBackend
from megathink.trainer.checkpoint import LoadedCheckpoint, restore_checkpoint, save_checkpoint
from megathink.trainer.optim import build_adamw

Optimizer = torch.optim.Optimizer
Scheduler = torch.optim.lr_scheduler.LRScheduler


class Policy(Protocol):
    backend: PolicyBackend
    sampler: Optional[HFBackend]
    main: bool

    def refresh_sampler(self) -> None:
        """Make `sampler` hold the trained weights (collective with the megatron backend)."""
        ...

    def sampling(self) -> ContextManager[Optional[HFBackend]]:
        """`with policy.sampling() as sampler:` the sampler on its generation device for the
        evaluations that call it directly (None on ranks without one)."""
        ...

    def frozen_reference(self) -> PolicyBackend:
        """A frozen copy of the current weights (the KL reference), same backend kind."""
        ...

    def save(
        self, root: Path, step: int, optimizer: Optimizer, scheduler: Scheduler, *,
        data_state: dict[str, Any], trainer_state: dict[str, Any], keep_last: int,
    ) -> Path:
        """Write step checkpoint `step` under `root` atomically (collective)."""
        ...

    def restore(
        self, resume_from: Optional[Path], root: Path, optimizer: Optimizer, scheduler: Scheduler
    ) -> Optional[LoadedCheckpoint]:
        """Load a step checkpoint into the backend, optimizer and scheduler (collective)."""
        ...

    def save_hf(self, directory: Path, tokenizer: Any) -> Optional[Path]:
        """Write the trained weights as a HF directory (rank 0 writes; collective)."""
        ...

    def build_optimizer(self, cfg: OptimizerConfig) -> Optimizer:
        """The stage's AdamW over `backend`'s trainable parameters."""
        ...


class HFPolicy:
    """The single-process HF backend: the sampler is the trained model itself."""

    main = True

    def __init__(self, backend: HFBackend) -> None:
        self.backend = backend
        self.sampler: Optional[HFBackend] = backend

    def refresh_sampler(self) -> None:
        """Nothing to copy: the sampler is the trained model."""

    def sampling(self) -> ContextManager[Optional[HFBackend]]:
        return contextlib.nullcontext(self.sampler)

    def frozen_reference(self) -> HFBackend:
        reference = copy.copy(self.backend)
        reference.model = copy.deepcopy(self.backend.model).eval().requires_grad_(False)
        return reference

    def save(
        self, root: Path, step: int, optimizer: Optimizer, scheduler: Scheduler, *,
        data_state: dict[str, Any], trainer_state: dict[str, Any], keep_last: int,
    ) -> Path:
        return save_checkpoint(
            root, step, model=self.backend.model, optimizer=optimizer, scheduler=scheduler,
            data_state=data_state, trainer_state=trainer_state, keep_last=keep_last,
        )

    def restore(
        self, resume_from: Optional[Path], root: Path, optimizer: Optimizer, scheduler: Scheduler
    ) -> Optional[LoadedCheckpoint]:
        return restore_checkpoint(resume_from, root, model=self.backend.model, optimizer=optimizer, scheduler=scheduler)

    def save_hf(self, directory: Path, tokenizer: Any) -> Optional[Path]:
        return self.backend.save_hf(directory, tokenizer)

    def build_optimizer(self, cfg: OptimizerConfig) -> Optimizer:
        return build_adamw(self.backend.named_parameters(), cfg)


def build_policy(cfg: RunConfig, model_cfg: ModelConfig, bundle: TokenizerBundle, work_dir: Path) -> Policy:
    """The stage's policy for `parallel.backend`, starting from `model_cfg` (random or `model.path`).

    work_dir: the stage folder (the megatron backend passes its starting weights through it)."""
    if cfg.parallel.backend == "megatron":
        from megathink.trainer.megatron_policy import build_megatron_policy

        return build_megatron_policy(cfg, model_cfg, bundle, work_dir)
    return HFPolicy(
        build_hf_backend(
            model_cfg, bundle, device=cfg.trainer.device, seed=cfg.trainer.seed, kernels=cfg.kernels,
            recompute=cfg.parallel.recompute,
        )
    )
