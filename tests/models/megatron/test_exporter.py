"""The streaming exporter (`weights_io.iter_hf_buckets`, behind weight sync, `save_hf` and
`megathink convert`): every HF tensor reaches rank 0 bit-exact, in HF order and in bounded
buckets, at TP=2, PP=2 and PP=2 x VPP=2; the other ranks receive nothing (they only take part).
Real megatron-core on 2 gloo processes."""

from __future__ import annotations

import pytest
from conftest import read_json, torchrun

pytestmark = [pytest.mark.megatron, pytest.mark.slow]


@pytest.mark.parametrize("kind, tp, pp, vpp", [("qwen2", 2, 1, 1), ("llama", 1, 2, 1), ("qwen2", 1, 2, 2), ("llama", 1, 2, 2)])
def test_export_reaches_rank_0_only_and_bit_exact(hf_dirs, hf_dirs_4_layers, tmp_path, kind, tp, pp, vpp) -> None:
    folder = (hf_dirs_4_layers if vpp > 1 else hf_dirs)[kind]
    out = tmp_path / "export.json"
    torchrun("export_worker.py", tp * pp, str(folder), str(tp), str(pp), str(out), f"vpp={vpp}")
    rank0, *others = read_json(out)
    assert rank0["tensors"] > 0 and all(other["tensors"] == 0 for other in others)
    for check in ("same_names", "unique", "bit_exact", "embedding_first", "layers_in_order", "buckets_bounded"):
        assert rank0[check], check
