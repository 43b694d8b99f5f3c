"""The megatron backend as a stage's `Policy` (see policy.py), on every rank of a torchrun job.

Start-up: rank 0 alone builds the HF model of `model_cfg` exactly as the HF backend builds it
(random with the run's seed, or `model.path` with the control tokens fitted) on the CPU and
writes its tensors and config to `<stage>/.megatron-start/` (`weights_io.write_hf_dir`). Every
rank then reads its own slice from that file, tensor by tensor through memory maps
(`weights_io.LazyHFTensors`), into its megatron GPTModel (`parallel.tp` x `parallel.pp`, each
sequence split over `parallel.cp` ranks, the rest of the world data parallel; `parallel.vpp`
model chunks per rank for the interleaved schedule), and rank 0 removes the file. So only rank
0 ever holds the full model (a 7B in bf16 is 15 GB: eight ranks each building it would need 120
GB of host memory and read the checkpoint eight times). Rank 0 keeps the HF model as the
sampler for rollouts and evaluation; it stays on the CPU and visits `trainer.device` only inside
`sampling()` (the RL stage's local-engine rollouts and the evaluations that generate from it;
with `rollout.engine=sglang` only those evaluations), so it takes no GPU memory while the
shards train. Precision comes from `model.dtype` (fp32 / bf16), or fp8 with `parallel.fp8`
(Transformer Engine); `parallel.recompute` and `parallel.sequence_parallel` (Transformer Engine)
go to the trained shards (the sampler and the KL reference never run a backward pass and do not
recompute). The stage folder must be shared by the job's nodes, as the checkpoints
already require.

Step checkpoints hold `megatron/` (weights + AdamW state through dist_checkpointing, which
reshards: a run saved at TP=2 resumes at PP=2, or on another data-parallel size) and
`scheduler.pt`, beside the backend-independent files of trainer/checkpoint.py. Every rank
writes its shards into one temporary folder that rank 0 renames into place.

Data parallelism splits each step's micro-batches over the replicas
(`MegatronBackend.run_micro_batches`). Each replica holds the whole AdamW state of its model
shard (and, for a bf16 model, its fp32 master weights: trainer/master_weights.py), or, with
`parallel.distributed_optimizer`, about 1/(dp cp) of both (sharded over the replicas and cp ranks) (torch's ZeRO-1 `ZeroRedundancyOptimizer`;
departure: not megatron-core's DistributedOptimizer, which runs on CUDA only).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import torch

from megathink.config.model import ModelConfig
from megathink.config.optimizer import OptimizerConfig
from megathink.config.run import RunConfig
from megathink.data.types import TokenizerBundle
from megathink.errors import ConfigError, DataError
from megathink.models.hf_backend import HFBackend, build_hf_backend, resolve_device
from megathink.run_layout import MEGATRON_START_WEIGHTS, MEGATRON_STATE, SCHEDULER_STATE, STEP_WEIGHTS
from megathink.trainer.checkpoint import (
    LoadedCheckpoint,
    prune_checkpoints,
    publish_checkpoint,
    read_step_files,
    step_dir_name,
    write_step_files,
)
from megathink.trainer.optim import build_adamw
from megathink.trainer.ranks import barrier, process_rank

log = logging.getLogger(__name__)

PRECISION_OF_DTYPE = {"float32": "fp32", "bfloat16": "bf16"}


def megatron_precision(cfg: RunConfig) -> str:
    if cfg.model.dtype not in PRECISION_OF_DTYPE:
        raise ConfigError(
            f"model.dtype = {cfg.model.dtype!r} is invalid with parallel.backend='megatron': use float32 or bfloat16."
        )
    if cfg.parallel.fp8:
        if cfg.model.dtype != "bfloat16":
            raise ConfigError("parallel.fp8 = true needs model.dtype=bfloat16 (FP8 layers keep bf16 master copies).")
        return "fp8"
    return PRECISION_OF_DTYPE[cfg.model.dtype]


class MegatronPolicy:
    def __init__(
        self, backend: Any, sampler: Optional[HFBackend], hf_config: dict[str, Any], tokenizer: Any, precision: str,
        *, distributed_optimizer: bool = False, generation_device: Optional[torch.device] = None,
    ) -> None:
        self.backend = backend
        self.distributed_optimizer = distributed_optimizer
        self.sampler = sampler
        # Where the sampler generates; None: it already lives there. Set when it is parked on the
        # CPU (rollouts come from SGLang engines) and moves only for evaluations.
        self.generation_device = generation_device
        self.main = backend.info.rank == 0
        self.hf_config = hf_config
        self.tokenizer = tokenizer
        self.precision = precision

    def refresh_sampler(self) -> None:
        state = self.backend.export_hf_state()  # collective; the tensors land on rank 0 only
        if self.sampler is not None:
            self.sampler.load_state_dict(state)

    @contextlib.contextmanager
    def sampling(self) -> Iterator[Optional[HFBackend]]:
        """The sampler on its generation device for the duration (parked again afterwards)."""
        parked = self.sampler is not None and self.generation_device is not None
        if parked:
            home = self.sampler.device
            self.sampler.move_to(self.generation_device)
        try:
            yield self.sampler
        finally:
            if parked:
                self.sampler.move_to(home)
                if self.generation_device.type == "cuda":
                    torch.cuda.empty_cache()

    def frozen_reference(self) -> Any:
        """A second copy of this rank's shard with the current weights, never trained (the KL
        reference: the stage takes it before its first update, as `HFPolicy` does)."""
        from megathink.models.megatron.backend import MegatronBackend
        from megathink.models.megatron.model import build_gpt_chunks

        b = self.backend
        chunks, _ = build_gpt_chunks(  # the trained shards' layout; no backward pass: no recompute
            b.spec, tp=b.info.tp, pp=b.info.pp, vpp=b.info.vpp, cp=b.info.cp, precision=self.precision,
            sequence_parallel=b.sequence_parallel,
        )
        for chunk, trained in zip(chunks, b.chunks, strict=True):
            chunk.load_state_dict(trained.state_dict())
            chunk.eval().requires_grad_(False)
        return MegatronBackend(
            chunks, b.spec, b.info, pad_id=b.pad_id, logprob_impl=b.logprob_impl, chunk_tokens=b.chunk_tokens or 0, pack=b.pack
        )

    def save(
        self, root: Path, step: int, optimizer: torch.optim.Optimizer, scheduler: Any, *,
        data_state: dict[str, Any], trainer_state: dict[str, Any], keep_last: int,
    ) -> Path:
        from megathink.models.megatron.dist_checkpoint import save_model

        root = Path(root)
        final = root / step_dir_name(step)
        tmp = root / f".tmp-{final.name}"  # one name on every rank: they all write into it
        if self.main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        barrier()
        save_model(self.backend.chunks, tmp / MEGATRON_STATE, info=self.backend.info, hf_config=self.hf_config, optimizer=optimizer)
        if self.main:
            self.tokenizer.save_pretrained(tmp / MEGATRON_STATE)  # so `megathink convert megatron-to-hf` can read it
            torch.save({"scheduler": scheduler.state_dict()}, tmp / SCHEDULER_STATE)
            write_step_files(tmp, step, data_state=data_state, trainer_state=trainer_state)
            publish_checkpoint(tmp, final)
            prune_checkpoints(root, keep_last)
        barrier()
        return final

    def restore(
        self, resume_from: Optional[Path], root: Path, optimizer: torch.optim.Optimizer, scheduler: Any
    ) -> Optional[LoadedCheckpoint]:
        from megathink.models.megatron.dist_checkpoint import load_model

        if resume_from is None:
            return None
        path = Path(resume_from)
        if not (path / MEGATRON_STATE).is_dir():
            hint = " (it was written by the HF backend)" if (path / STEP_WEIGHTS).is_file() else ""
            raise DataError(
                f"checkpoint {path} has no {MEGATRON_STATE}/ folder{hint}: resume it with parallel.backend=hf, "
                "or start a megatron run from its weights via model.path (its stage's hf/ folder)."
            )
        load_model(self.backend.chunks, path / MEGATRON_STATE, optimizer=optimizer)
        scheduler.load_state_dict(torch.load(path / SCHEDULER_STATE, weights_only=True)["scheduler"])
        data_state, trainer_state = read_step_files(path)
        self.refresh_sampler()
        return LoadedCheckpoint(path=path, data_state=data_state, trainer_state=trainer_state)

    def build_optimizer(self, cfg: OptimizerConfig) -> torch.optim.Optimizer:
        """torch AdamW on this rank's shards; with `parallel.distributed_optimizer`, ZeRO-1 over
        every rank that holds the same shard (data x context parallel, when there are several)."""
        group = None
        if self.distributed_optimizer and self.backend.info.dp * self.backend.info.cp > 1:
            from megatron.core import parallel_state

            group = parallel_state.get_data_parallel_group(with_context_parallel=True)
        return build_adamw(self.backend.named_parameters(), cfg, shard_group=group)

    def save_hf(self, directory: Path, tokenizer: Any) -> Optional[Path]:
        self.refresh_sampler()
        out = self.sampler.save_hf(directory, tokenizer) if self.sampler is not None else None
        barrier()
        return out


def build_megatron_policy(cfg: RunConfig, model_cfg: ModelConfig, bundle: TokenizerBundle, work_dir: Path) -> MegatronPolicy:
    from megathink.models.megatron.backend import MegatronBackend
    from megathink.models.megatron.distributed import init_parallel
    from megathink.models.megatron.model import build_gpt_chunks, choose_implementations
    from megathink.models.megatron.weights_io import load_hf_into, read_hf_dir

    precision = megatron_precision(cfg)
    # fp8 / sequence parallelism without Transformer Engine: refused before anything is built
    choose_implementations(precision, sequence_parallel=cfg.parallel.sequence_parallel)
    start_dir = Path(work_dir) / MEGATRON_START_WEIGHTS
    hf: Optional[HFBackend] = None
    if process_rank() == 0:  # before the process group exists, as the HF backend builds it
        hf = build_hf_backend(model_cfg, bundle, device="cpu", seed=cfg.trainer.seed, kernels=cfg.kernels)
        _write_start_weights(hf, start_dir)
    p = cfg.parallel
    info = init_parallel(p.tp, p.pp, vpp=p.vpp, cp=p.cp, seed=cfg.trainer.seed, timeout_minutes=cfg.trainer.dist_timeout_minutes)
    barrier()  # the start weights are written
    spec, hf_config, tensors = read_hf_dir(start_dir)
    if p.dp and info.dp != p.dp:
        raise ConfigError(
            f"parallel.dp = {p.dp} is invalid with {info.world_size} processes at tp={p.tp}, pp={p.pp}, cp={p.cp}: "
            f"that leaves "
            f"{info.dp} data-parallel replicas; set parallel.dp=0 (derived) or change the process count."
        )
    if info.rank != 0:
        logging.getLogger("megathink").setLevel(logging.WARNING)  # one rank speaks
    chunks, _ = build_gpt_chunks(
        spec, tp=p.tp, pp=p.pp, vpp=p.vpp, cp=p.cp, precision=precision, recompute=p.recompute,
        sequence_parallel=p.sequence_parallel,
    )
    load_hf_into(chunks, tensors, spec, info)
    tensors.close()
    barrier()  # every rank has its slice
    if info.rank == 0:
        shutil.rmtree(start_dir, ignore_errors=True)
    backend = MegatronBackend(
        chunks, spec, info, pad_id=bundle.pad_id, logprob_impl=cfg.kernels.logprob_for(spec.vocab_size),
        chunk_tokens=cfg.kernels.chunk_tokens,
        pack=p.pack_sequences,
    )
    device = resolve_device(cfg.trainer.device)
    # The sampler (rank 0's HF copy) stays on the CPU and visits `trainer.device` only inside
    # `sampling()`: for the local engine's rollouts and the evaluations that generate from it
    # (with SGLang engines, only those evaluations): one model less on rank 0's GPU while the
    # shards train.
    park = device.type != "cpu"
    sampler: Optional[HFBackend] = None
    if hf is not None:
        if not park:
            hf.move_to(device)
        sampler = hf
    log.info(
        "megatron policy: world %d = tp %d x pp %d (vpp %d) x cp %d x dp %d, %s, recompute %s%s",
        info.world_size, p.tp, p.pp, p.vpp, p.cp, info.dp, precision, p.recompute,
        ", sequence parallel" if p.sequence_parallel else "",
    )
    return MegatronPolicy(
        backend, sampler, hf_config, bundle.tokenizer, precision, distributed_optimizer=p.distributed_optimizer,
        generation_device=device if park else None,
    )


def _write_start_weights(hf: HFBackend, directory: Path) -> None:
    """The HF model's tensors (a tied model's lm_head left out) and config.json, for every rank."""
    from megathink.models.megatron.weights_io import write_hf_dir

    config = hf.model.config.to_dict()
    state = {name: tensor.detach() for name, tensor in hf.state_dict().items()}
    if config.get("tie_word_embeddings"):
        state.pop("lm_head.weight", None)
    shutil.rmtree(directory, ignore_errors=True)  # a crashed start's leftovers
    write_hf_dir(state, config, directory, tokenizer_dir=None)
