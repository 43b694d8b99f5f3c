"""vocab_parallel_linear_logprob on 2 gloo processes against the unsharded float64 result.

The vocabulary (53 ids) is split unevenly, 27 + 26, and the targets include ids on both ranks
and ignored ones. Each rank checks the full-vocabulary log-probs and entropies, the full
hidden-state gradient (all-reduced) and its own shard's weight gradient.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

N, H, V, SPLIT = 29, 20, 53, 27


def _worker(rank: int, world: int, init_file: str, impl: str) -> None:
    from logprob_oracle import oracle, problem

    from megathink.kernels import vocab_parallel_linear_logprob

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        dtype = torch.float64 if impl == "chunked" else torch.float32
        hidden, weight, targets = problem(N, H, V, seed=11, dtype=dtype, scale=2.0, ignored=(0, 9))
        targets[5], targets[6] = SPLIT - 1, SPLIT  # the last id of rank 0, the first of rank 1
        gen = torch.Generator().manual_seed(12)
        g, g_ent = torch.randn(N, generator=gen), torch.randn(N, generator=gen)
        logp_ref, ent_ref, gh_ref, gw_ref = oracle(hidden, weight, targets, 0.8, g, g_ent)

        lo, hi = (0, SPLIT) if rank == 0 else (SPLIT, V)
        h = hidden.clone().requires_grad_(True)
        shard = weight[lo:hi].clone().requires_grad_(True)
        logp, ent = vocab_parallel_linear_logprob(
            h, shard, targets, vocab_start=lo, group=dist.group.WORLD, temperature=0.8, return_entropy=True,
            impl=impl, chunk_tokens=8,
        )
        ((logp * g.to(dtype)).sum() + (ent * g_ent.to(dtype)).sum()).backward()
        tol = dict(atol=1e-9, rtol=1e-9) if impl == "chunked" else dict(atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(logp.double(), logp_ref, **tol)
        torch.testing.assert_close(ent.double(), ent_ref, **tol)
        torch.testing.assert_close(h.grad.double(), gh_ref, **tol)
        torch.testing.assert_close(shard.grad.double(), gw_ref[lo:hi], **tol)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("impl", ["chunked", "fused"])
def test_two_ranks_match_the_unsharded_result(tmp_path: Path, impl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if impl == "fused":
        pytest.importorskip("triton")  # the children inherit TRITON_INTERPRET=1 from conftest.py
    here = str(Path(__file__).parent)  # the children import this module and the oracle
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), impl), nprocs=2, join=True)


def test_naive_has_no_vocab_parallel_form() -> None:
    from megathink.kernels import vocab_parallel_linear_logprob

    with pytest.raises(ValueError, match="no vocab-parallel form"):
        vocab_parallel_linear_logprob(
            torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(2, dtype=torch.long), vocab_start=0, group=None, impl="naive"
        )
