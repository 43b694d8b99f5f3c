"""An HF tiny model converted to megatron gives transformers' logits at TP=1, TP=2, PP=2, PP=2
with two model chunks per rank (interleaved, on 4-layer models), CP=2 and TP=2 x CP=2.

Real megatron-core on 1-2 gloo processes (torchrun), with the CPU compatibility layer; batches
hold left- and right-padded rows. Tolerance 1e-5 in fp32 (measured: ~1e-7).
"""

from __future__ import annotations

import pytest
from conftest import read_json, torchrun

pytestmark = [pytest.mark.megatron, pytest.mark.slow]


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
@pytest.mark.parametrize("tp, pp", [(1, 1), (2, 1), (1, 2)])
def test_logits_match_transformers(hf_dirs, tmp_path, kind, tp, pp) -> None:
    out = tmp_path / "parity.json"
    torchrun("parity_worker.py", tp * pp, str(hf_dirs[kind]), str(tp), str(pp), str(out))
    assert read_json(out)["logits"] < 1e-5


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_logits_match_transformers_interleaved(hf_dirs_4_layers, tmp_path, kind) -> None:
    """vpp=2 at pp=2: rank 0 holds layers 0 and 2, rank 1 layers 1 and 3 (and the tied Llama's
    embedding copy in its last chunk)."""
    out = tmp_path / "parity.json"
    torchrun("parity_worker.py", 2, str(hf_dirs_4_layers[kind]), "1", "2", str(out), "vpp=2")
    assert read_json(out)["logits"] < 1e-5


@pytest.mark.parametrize("kind, tp", [("qwen2", 1), ("llama", 2)])
def test_logits_match_transformers_context_parallel(hf_dirs, tmp_path, kind, tp) -> None:
    """cp=2: each rank holds chunks r and 3 - r of every row (4 chunks of a row padded from 9 to 12
    columns) and attends over the all-gathered keys; llama also at TP=2 x CP=2 (4 processes)."""
    out = tmp_path / "parity.json"
    torchrun("parity_worker.py", 2 * tp, str(hf_dirs[kind]), str(tp), "1", str(out), "cp=2")
    assert read_json(out)["logits"] < 1e-5
