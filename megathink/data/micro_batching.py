"""Which rows go into which micro-batch: fixed sizes, or token budgets balanced over replicas.

`plan_micro_batches(lengths, ...)` returns a list of row-index lists, one per micro-batch, in
the order the backends run them: micro-batch i runs on data-parallel replica i % dp (the
megatron backend's assignment; the HF backend has dp = 1).

* `max_tokens == 0`: consecutive runs of `micro_batch_size` rows, as the loops always did.
* `max_tokens > 0` (`rl.max_tokens_per_micro_batch`, `sft.max_tokens_per_micro_batch`): what
  a micro-batch costs depends on how the backend lays it out.

  - Packed (`packed=True`, megatron THD packing: a micro-batch's rows end to end): the sum of
    its rows' lengths. The rows are first split over the `dp` replicas so each gets about the
    same number of tokens, then each replica's rows into the same number `m` of micro-batches
    of about the same number of tokens, `m` the smallest that keeps every micro-batch within
    the budget. Both splits use the Karmarkar-Karp largest-differencing method (as verl and
    slime do for their dynamic batch sizes), which balances sums far better than greedy
    first-fit on skewed lengths such as think / no-think responses.
  - Padded (`packed=False`, the HF backend: each micro-batch padded to its own longest row):
    n rows x the longest. The rows are sorted by length and cut into runs of similar length,
    each as long as the budget allows (the fewest padded positions for the budget); the runs
    are dealt to the replicas longest first in a snake order (about the same cost and the same
    count, +-1, on every replica).

  A row longer than the budget is a micro-batch of its own. Every replica runs the same
  number of micro-batches, so a pipeline's stages and the replicas' collectives stay in step;
  only when a replica has fewer rows than that number does it get fewer (the later
  micro-batches' replicas then shift: the update does not depend on which replica runs what,
  only the balance does).

`lengths` are the rows' real token counts (prompt + response, no padding). The result is
deterministic for the same lengths. Rows keep their ascending order inside a micro-batch.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence


def karmarkar_karp(weights: Sequence[int], parts: int) -> list[list[int]]:
    """Indices of `weights` split into `parts` sets with sums as equal as KK can make them.

    The largest differencing method for k-way partitioning: every item starts as a k-tuple of
    subsets (the item alone, k - 1 empty ones); the two tuples with the largest spread (max sum
    minus min sum) are merged by joining the heaviest subset of one with the lightest of the
    other, and so on, until one tuple remains. Subsets are returned heaviest first, each with
    its indices ascending; some are empty when there are fewer items than parts.
    """
    if parts < 1:
        raise ValueError(f"karmarkar_karp: parts = {parts} is invalid: must be >= 1.")
    if not weights:
        return [[] for _ in range(parts)]
    heap: list[tuple[int, int, list[tuple[int, list[int]]]]] = []
    for index, weight in enumerate(weights):
        if weight < 0:
            raise ValueError(f"karmarkar_karp: weights[{index}] = {weight} is invalid: must be >= 0.")
        subsets = [(int(weight), [index])] + [(0, []) for _ in range(parts - 1)]
        heapq.heappush(heap, (-int(weight), index, subsets))  # spread = weight (others are 0)
    while len(heap) > 1:
        _, tie, first = heapq.heappop(heap)
        _, _, second = heapq.heappop(heap)
        first = sorted(first, key=lambda s: -s[0])  # heaviest first
        second = sorted(second, key=lambda s: s[0])  # lightest first
        merged = [(a[0] + b[0], a[1] + b[1]) for a, b in zip(first, second)]
        spread = max(s[0] for s in merged) - min(s[0] for s in merged)
        heapq.heappush(heap, (-spread, tie, merged))
    subsets = sorted(heap[0][2], key=lambda s: (-s[0], s[1]))
    return [sorted(indices) for _, indices in subsets]


def plan_micro_batches(
    lengths: Sequence[int], *, micro_batch_size: int, max_tokens: int = 0, dp: int = 1, packed: bool = True
) -> list[list[int]]:
    """Row indices per micro-batch, in run order (micro-batch i on replica i % dp); see the module doc."""
    if micro_batch_size < 1 or max_tokens < 0 or dp < 1:
        raise ValueError(
            f"plan_micro_batches: micro_batch_size = {micro_batch_size}, max_tokens = {max_tokens}, dp = {dp} "
            "are invalid: need micro_batch_size >= 1, max_tokens >= 0, dp >= 1."
        )
    rows = list(range(len(lengths)))
    if not rows:
        return []
    if max_tokens == 0:
        return [rows[start : start + micro_batch_size] for start in range(0, len(rows), micro_batch_size)]
    if not packed:
        return _padded_plan(lengths, max_tokens, dp)
    replicas = [part for part in karmarkar_karp(lengths, dp) if part] if dp > 1 else [rows]
    per_replica = max(_micro_batches_needed([lengths[i] for i in part], max_tokens) for part in replicas)
    plans = []
    for part in replicas:
        bins = karmarkar_karp([lengths[i] for i in part], min(per_replica, len(part)))
        plans.append([[part[j] for j in b] for b in bins if b])
    ordered = []
    for position in range(per_replica):  # interleave: micro-batch i runs on replica i % dp
        ordered.extend(plan[position] for plan in plans if position < len(plan))
    return ordered


def _padded_plan(lengths: Sequence[int], max_tokens: int, dp: int) -> list[list[int]]:
    """Runs of similar length (sorted, longest first) within rows x longest <= max_tokens, dealt
    to the replicas in a snake order; interleaved so micro-batch i runs on replica i % dp."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    runs: list[list[int]] = []
    for row in order:
        if runs and (len(runs[-1]) + 1) * lengths[runs[-1][0]] <= max_tokens:
            runs[-1].append(row)
        else:
            runs.append([row])
    if dp == 1:
        return [sorted(run) for run in runs]
    costs = [len(run) * lengths[run[0]] for run in runs]
    by_cost = sorted(range(len(runs)), key=lambda r: -costs[r])
    plans: list[list[list[int]]] = [[] for _ in range(dp)]
    for position, run in enumerate(by_cost):
        lap, offset = divmod(position, dp)
        plans[offset if lap % 2 == 0 else dp - 1 - offset].append(sorted(runs[run]))
    ordered = []
    for position in range(max(len(plan) for plan in plans)):
        ordered.extend(plan[position] for plan in plans if position < len(plan))
    return ordered


def _micro_batches_needed(lengths: list[int], max_tokens: int) -> int:
    """The fewest KK bins of `lengths` whose every bin holds <= max_tokens (or one oversize row)."""
    count = max(1, math.ceil(sum(lengths) / max_tokens))
    while count < len(lengths):
        bins = karmarkar_karp(lengths, count)
        if all(sum(lengths[i] for i in b) <= max_tokens or len(b) == 1 for b in bins):
            return count
        count += 1
    return max(1, len(lengths))


__all__ = ["karmarkar_karp", "plan_micro_batches"]
