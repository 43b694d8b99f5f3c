"""Sequence packing of the megatron backend (THD rows), as pure tensors (no megatron needed).

A causal LM fed the packed row with attention kept inside each slot (the mask
`local_attention.slot_positions` gives, what TE's THD kernels do) and positions restarting
per slot scores each packed sample exactly as it scores the sample alone (checked with a
transformers Qwen2), and `unpack_values` puts per-token values back in the caller's columns.
The megatron side (THD RoPE, LocalCoreAttention, context parallel slots) is checked against the
HF backend in tests/models/megatron/test_backend_parity.py.
"""

from __future__ import annotations

import pytest
import torch

from megathink.models.megatron.local_attention import slot_positions
from megathink.models.megatron.packing import pack_stream, stream_length, unpack_values


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Left- and right-padded rows of different lengths, [4, 9]."""
    torch.manual_seed(0)
    ids = torch.randint(3, 60, (4, 9))
    mask = torch.zeros(4, 9, dtype=torch.long)
    mask[0, :9] = 1
    mask[1, 5:] = 1  # left padded, 4 tokens
    mask[2, :3] = 1  # right padded, 3 tokens
    mask[3, 2:7] = 1  # 5 tokens in the middle
    return ids, mask


def test_samples_go_end_to_end_in_rounded_slots() -> None:
    ids, mask = _batch()
    assert stream_length([9, 4, 3, 5], 4) == 12 + 4 + 4 + 8
    packed, positions, layout = pack_stream(ids, mask, slot_multiple=4, total=32, pad_id=0)
    assert layout.cu_seqlens.tolist() == [0, 12, 16, 20, 28, 32]  # the last slot: tail padding
    assert layout.cu_seqlens.dtype == torch.int32
    assert layout.offsets.tolist() == [0, 12, 16, 20]
    assert packed[0, 12:16].tolist() == ids[1, 5:].tolist()
    assert packed[0, 19].item() == 0  # slot rounding is padding
    assert positions[0, 12:20].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    with pytest.raises(ValueError, match="do not fill a row of 30"):
        pack_stream(ids, mask, slot_multiple=4, total=30, pad_id=0)


def test_packed_row_scores_each_sample_like_alone() -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    ids, mask = _batch()
    packed, positions, layout = pack_stream(ids, mask, slot_multiple=1, total=23, pad_id=0)
    slot, position = slot_positions(layout.cu_seqlens, 23)
    assert torch.equal(position, positions[0])
    visible = (slot[None, :] == slot[:, None]) & (position[None, :] <= position[:, None])  # [S, S]
    additive = torch.zeros(1, 1, 23, 23).masked_fill(~visible, torch.finfo(torch.float32).min)
    with torch.no_grad():
        logits = model(input_ids=packed, position_ids=positions, attention_mask=additive).logits  # [1, S, V]
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, packed[:, 1:, None])[..., 0]  # [1, S-1]
        got = unpack_values(torch.nn.functional.pad(logp, (1, 0)), layout, width=9)  # [4, 9]
        for i in range(4):
            real = mask[i].nonzero()[:, 0]
            alone = ids[i, real][None]
            want = torch.log_softmax(model(input_ids=alone).logits[0, :-1], -1).gather(-1, alone[0, 1:, None])[:, 0]
            torch.testing.assert_close(got[i, real[1:]], want, rtol=1e-5, atol=1e-5)
            assert got[i, real[0]] == 0 and got[i][mask[i] == 0].abs().sum() == 0


def test_unpack_is_the_inverse_of_the_packing_map() -> None:
    ids, mask = _batch()
    packed, _, layout = pack_stream(ids, mask, slot_multiple=2, total=26, pad_id=0)
    back = unpack_values(packed.float(), layout, width=9)  # every packed token where it came from
    first = mask.argmax(1)
    expected = (ids * mask).float()
    expected[torch.arange(4), first] = 0.0  # a sample's first token scores nothing
    torch.testing.assert_close(back, expected)
