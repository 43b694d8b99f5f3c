"""One batch of sequences through a causal LM with a KV cache: prefill, then a token per step.

Prefill: every context (prompt + forced prefix) is left-padded to `[B, W]`, with position ids
taken from the attention mask (0, 1, 2, ... on real tokens, as `PolicyBackend.logprobs` uses),
and only the logits of the last `F + 1` positions are computed (`logits_to_keep`; F = longest
forced prefix): they score the forced tokens and give the first sampled token. Decode: one
token per running row per step through the cache the model returned (transformers'
`DynamicCache`), the mask growing by one column, positions counting on from each row's length.

A row finishes when it samples a stop id (finish "stop") or reaches its own cap (finish
"length"). Finished rows are not sampled any more; once a quarter of the rows still in the
batch are finished they are dropped from it (mask, positions and `cache.batch_select_indices`),
so long tails run on a shrinking batch without paying a cache copy at every step.

Departure from SGLang: no continuous batching or prefix sharing between the n samples of a
prompt; each batch is prefilled once and decoded until its last row finishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from megathink.kernels import token_logprobs
from megathink.rollout.sampling import choose_tokens
from megathink.rollout.types import FinishReason, SamplingParams

COMPACT_FRACTION = 0.25
"""Drop finished rows from the batch once they are at least this share of it."""


@dataclass
class DecodedRow:
    """What one row of a batch produced."""

    generated: list[int]
    forced_logprobs: list[float]
    generated_logprobs: list[float]
    finish_reason: FinishReason


def decode_batch(
    model: torch.nn.Module,
    device: torch.device,
    contexts: Sequence[list[int]],
    forced: Sequence[int],
    caps: Sequence[int],
    uniforms: torch.Tensor,
    params: SamplingParams,
    pad_id: int,
) -> list[DecodedRow]:
    """Continue each context; row i's last forced[i] ids are its forced prefix, caps[i] its cap.

    uniforms: [B, max(caps)] float64 on `device`, row i's per-step random numbers.
    Call under `torch.inference_mode()` with the model in eval mode.
    """
    batch, width = len(contexts), max(len(c) for c in contexts)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)  # [B, W] left padded
    mask = torch.zeros((batch, width), dtype=torch.long)  # [B, W]
    for row, ids in enumerate(contexts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids) :] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [B, W]
    longest_forced = max(forced)
    out = model(
        input_ids=input_ids, attention_mask=mask, position_ids=positions,
        use_cache=True, logits_to_keep=longest_forced + 1,
    )
    logits = out.logits  # [B, F + 1, V]: positions W-F-1 .. W-1
    forced_lp = _forced_logprobs(logits[:, :-1], input_ids[:, width - longest_forced :], forced, params)  # [B, F]

    caps_t = torch.tensor(list(caps), dtype=torch.long, device=device)  # [B]
    stop_ids = torch.tensor(list(params.stop_token_ids), dtype=torch.long, device=device)  # [S]
    steps = int(max(caps))
    tokens = torch.full((batch, steps), pad_id, dtype=torch.long, device=device)  # [B, L]
    token_lp = torch.zeros((batch, steps), dtype=torch.float32, device=device)  # [B, L]
    lengths = torch.zeros(batch, dtype=torch.long, device=device)  # [B] generated so far
    stopped = torch.zeros(batch, dtype=torch.bool, device=device)  # [B]

    rows = torch.arange(batch, device=device)  # [R] batch rows still in the model's batch
    running = torch.ones(batch, dtype=torch.bool, device=device)  # [R] not finished yet
    next_pos = mask.sum(-1)  # [R] position of the next token
    cache = out.past_key_values
    next_logits = logits[:, -1]  # [R, V]
    for step in range(steps):
        sampled = running.nonzero().squeeze(-1)  # [A] indices into the current batch
        live = rows[sampled]  # [A] original rows sampled at this step
        ids, lp = choose_tokens(next_logits[sampled], uniforms[live, step], params)  # [A], [A]
        tokens[live, step] = ids
        token_lp[live, step] = lp
        lengths[live] = step + 1
        hit_stop = torch.isin(ids, stop_ids)  # [A]
        stopped[live] = hit_stop
        still = ~hit_stop & (caps_t[live] > step + 1)  # [A]
        running[sampled] = still
        alive = int(running.sum())
        if alive == 0:
            break
        feed = torch.full((rows.numel(),), pad_id, dtype=torch.long, device=device)  # [R]
        feed[running] = ids[still]
        if rows.numel() - alive >= COMPACT_FRACTION * rows.numel():
            keep = running.nonzero().squeeze(-1)  # [A']
            cache.batch_select_indices(keep)
            rows, mask, next_pos, feed = rows[keep], mask[keep], next_pos[keep], feed[keep]
            running = torch.ones(alive, dtype=torch.bool, device=device)
        mask = torch.cat([mask, mask.new_ones((rows.numel(), 1))], dim=1)  # [R, W + step + 1]
        out = model(
            input_ids=feed[:, None], attention_mask=mask, position_ids=next_pos[:, None],
            past_key_values=cache, use_cache=True,
        )
        cache = out.past_key_values
        next_logits = out.logits[:, -1]  # [R, V]
        next_pos = next_pos + 1

    return _collect(tokens, token_lp, lengths, stopped, forced_lp, forced)


def _forced_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, forced: Sequence[int], params: SamplingParams
) -> torch.Tensor:
    """logits [B, F, V] predicting targets [B, F] (the last F context ids) -> [B, F] float32.

    Row i's forced prefix is its last forced[i] columns; the others score 0.
    """
    width = targets.shape[1]
    if width == 0:
        return torch.zeros(targets.shape, dtype=torch.float32, device=targets.device)
    counts = torch.tensor(list(forced), device=targets.device)[:, None]  # [B, 1]
    is_forced = torch.arange(width, device=targets.device)[None, :] >= width - counts  # [B, F]
    return token_logprobs(logits, targets.masked_fill(~is_forced, -1), temperature=params.logprob_temperature)


def _collect(
    tokens: torch.Tensor, token_lp: torch.Tensor, lengths: torch.Tensor, stopped: torch.Tensor,
    forced_lp: torch.Tensor, forced: Sequence[int],
) -> list[DecodedRow]:
    tokens_l, lp_l, lengths_l = tokens.cpu().tolist(), token_lp.cpu().tolist(), lengths.cpu().tolist()
    stopped_l, forced_l = stopped.cpu().tolist(), forced_lp.cpu().tolist()
    width = forced_lp.shape[1]
    return [
        DecodedRow(
            generated=tokens_l[i][: lengths_l[i]],
            forced_logprobs=forced_l[i][width - forced[i] :] if forced[i] else [],
            generated_logprobs=lp_l[i][: lengths_l[i]],
            finish_reason="stop" if stopped_l[i] else "length",
        )
        for i in range(len(lengths_l))
    ]
