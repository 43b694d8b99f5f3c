"""Process group and megatron parallel state for this process, from the `parallel` config.

`init_parallel(tp, pp, vpp=, seed=, timeout_minutes=)` joins the job's process group (torchrun's RANK /
WORLD_SIZE / MASTER_ADDR / MASTER_PORT; a single process without them), NCCL with CUDA and gloo
without (then the CPU compatibility layer goes on first), checks that the world size is a
multiple of tp * pp * cp (the rest is data parallel), initialises megatron's parallel state (with
`vpp` virtual stages per pipeline rank: the interleaved schedule; `cp` context-parallel ranks
sharing each sequence) and seeds its RNG tracker. `timeout_minutes` (the stages pass
`trainer.dist_timeout_minutes`) is the deadline of every collective of the process group and of
megatron's groups.
`ParallelInfo` says where this rank sits. `shutdown_parallel()` undoes it (tests
and converters run several layouts in one process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from megathink.errors import ConfigError
from megathink.models.megatron.cpu_compat import apply_cpu_compat


@dataclass(frozen=True)
class ParallelInfo:
    rank: int
    world_size: int
    tp: int
    pp: int
    dp: int
    tp_rank: int
    pp_rank: int
    dp_rank: int
    vpp: int = 1
    """Model chunks on this rank (virtual pipeline stages); chunk c is virtual stage c * pp + pp_rank."""
    cp: int = 1
    """Context-parallel size: each sequence is split over cp ranks (context_parallel.py)."""
    cp_rank: int = 0

    @property
    def main_replica(self) -> bool:
        """Data-parallel replica 0 and context-parallel rank 0: the copy of this shard that writes."""
        return self.dp_rank == 0 and self.cp_rank == 0

    @property
    def first_stage(self) -> bool:
        return self.pp_rank == 0

    @property
    def last_stage(self) -> bool:
        return self.pp_rank == self.pp - 1

    @property
    def virtual_stages(self) -> int:
        """Pipeline stages of the whole model: pp * vpp (the weight map's stage count)."""
        return self.pp * self.vpp

    def virtual_stage(self, chunk: int) -> int:
        """The virtual stage that model chunk `chunk` of this rank holds."""
        return chunk * self.pp + self.pp_rank


def init_parallel(
    tp: int, pp: int, *, vpp: int = 1, cp: int = 1, seed: int = 0, timeout_minutes: float = 30.0
) -> ParallelInfo:
    """Join the process group (if not yet) and build megatron's TP / PP / CP / DP groups."""
    if vpp > 1 and pp == 1:
        raise ConfigError(f"parallel.vpp = {vpp} is invalid: interleaving needs parallel.pp > 1.")
    cuda = torch.cuda.is_available()
    if not cuda:
        apply_cpu_compat()
    from megatron.core import parallel_state, tensor_parallel

    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(
            "nccl" if cuda else "gloo", rank=rank, world_size=world, timeout=timedelta(minutes=timeout_minutes)
        )
    world = dist.get_world_size()
    if world % (tp * pp * cp):
        raise ConfigError(
            f"parallel.tp * parallel.pp * parallel.cp = {tp * pp * cp} is invalid with {world} processes: the world "
            "size must be a multiple of it (the rest is data parallel); change the sizes or the number of processes."
        )
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, context_parallel_size=cp,
        virtual_pipeline_model_parallel_size=vpp if vpp > 1 else None,
        distributed_timeout_minutes=timeout_minutes,  # megatron's own groups get the same deadline
    )
    tensor_parallel.model_parallel_cuda_manual_seed(seed)
    return ParallelInfo(
        rank=dist.get_rank(),
        world_size=world,
        tp=tp,
        pp=pp,
        dp=world // (tp * pp * cp),
        tp_rank=parallel_state.get_tensor_model_parallel_rank(),
        pp_rank=parallel_state.get_pipeline_model_parallel_rank(),
        dp_rank=parallel_state.get_data_parallel_rank(),
        vpp=vpp,
        cp=cp,
        cp_rank=parallel_state.get_context_parallel_rank(),
    )


def shutdown_parallel() -> None:
    """Destroy megatron's groups and the process group (if this process made them)."""
    from megatron.core import parallel_state

    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for MASTER_PORT)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
