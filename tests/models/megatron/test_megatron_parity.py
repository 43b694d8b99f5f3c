"""An HF tiny model converted to megatron gives transformers' logits at TP=1, TP=2 and PP=2.

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
