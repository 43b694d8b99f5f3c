"""Sequence packing of the megatron backend, as pure tensors (no megatron needed).

The block-diagonal causal mask and the restarted positions make a causal LM score each packed
sample exactly as it scores the sample alone (checked with a transformers Qwen2 fed the
packed rows), and `unpack_values` puts per-token values back in the caller's columns.
"""

from __future__ import annotations

import torch

from megathink.models.megatron.packing import count_rows, first_fit, pack_rows, unpack_values


def test_first_fit_fills_rows_without_overlap() -> None:
    lengths = [7, 3, 5, 2, 2, 1]
    place = first_fit(lengths, capacity=8)
    spans: dict[int, list[tuple[int, int]]] = {}
    for (row, offset), n in zip(place, lengths):
        assert offset + n <= 8
        spans.setdefault(row, []).append((offset, offset + n))
    for row_spans in spans.values():
        row_spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(row_spans, row_spans[1:]))
    assert count_rows(lengths, 8) == len(spans) == 3  # 20 tokens in 3 rows of 8, not 6 rows


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


def test_packed_rows_score_each_sample_like_alone() -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    ids, mask = _batch()
    rows = count_rows(mask.sum(1).tolist(), capacity=9)
    packed, positions, masked, layout = pack_rows(ids, mask, capacity=9, rows=rows, pad_id=0)
    assert rows == 3
    additive = torch.zeros(masked.shape).masked_fill(masked, torch.finfo(torch.float32).min)  # [p, 1, C, C]
    with torch.no_grad():
        logits = model(input_ids=packed, position_ids=positions, attention_mask=additive).logits  # [p, C, V]
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, packed[:, 1:, None])[..., 0]  # [p, C-1]
        got = unpack_values(torch.nn.functional.pad(logp, (1, 0)), layout, width=9)  # [4, 9]
        for i in range(4):
            real = mask[i].nonzero()[:, 0]
            alone = ids[i, real][None]
            want = torch.log_softmax(model(input_ids=alone).logits[0, :-1], -1).gather(-1, alone[0, 1:, None])[:, 0]
            torch.testing.assert_close(got[i, real[1:]], want, rtol=1e-5, atol=1e-5)
            assert got[i, real[0]] == 0 and got[i][mask[i] == 0].abs().sum() == 0


def test_unpack_is_the_inverse_of_the_packing_map() -> None:
    ids, mask = _batch()
    packed, _, _, layout = pack_rows(ids, mask, capacity=10, rows=3, pad_id=0)
    back = unpack_values(packed.float(), layout, width=9)  # every packed token where it came from
    first = mask.argmax(1)
    expected = (ids * mask).float()
    expected[torch.arange(4), first] = 0.0  # a sample's first token scores nothing
    torch.testing.assert_close(back, expected)
