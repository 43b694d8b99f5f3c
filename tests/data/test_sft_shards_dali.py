"""The DALI shard reader (CPU pipeline, device_id=None) gives exactly the plain shard reader's batches.

Skipped when NVIDIA DALI is not installed (`pip install -c constraints.txt -e .[dali]`).
"""

from __future__ import annotations

import itertools

import pytest

from megathink_fixtures.sft_shards import MAX_LEN, assert_same_batch, build_shards, open_for, toy_records
from megathink.config import TokenizerConfig
from megathink.data.shards.batches import ShardBatchIterator
from megathink.data.tokenizer import load_tokenizer

pytest.importorskip("nvidia.dali", reason="NVIDIA DALI is not installed (pip install megathink[dali])")

from megathink.data.shards.dali_reader import DaliShardBatchIterator  # noqa: E402

CFG = TokenizerConfig()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    bundle = load_tokenizer(CFG)
    folder = tmp_path_factory.mktemp("dali") / "shards"
    build_shards(toy_records(80), folder, bundle, CFG, shard_size=9)
    return bundle, open_for(folder, bundle, CFG)


def dali(shards, bundle, **kwargs) -> DaliShardBatchIterator:
    return DaliShardBatchIterator(shards, 4, 7, bundle.pad_id, max_seq_len=MAX_LEN, **kwargs)


def test_dali_batches_equal_the_plain_reader_across_epochs(shards):
    bundle, shard_set = shards
    plain = ShardBatchIterator(shard_set, 4, 7, bundle.pad_id)
    reader = dali(shard_set, bundle, prefetch=3)
    count = 2 * plain.batches_per_epoch + 3
    got = list(itertools.islice(reader, count))  # kept until the end: no buffer is reused under them
    for want, batch in zip(itertools.islice(plain, count), got):
        assert_same_batch(batch, want)
    assert reader.state_dict() == plain.state_dict()  # the batches taken, not those prefetched
    reader.close()


def test_dali_resumes_from_a_state_and_after_close(shards):
    bundle, shard_set = shards
    reference = list(itertools.islice(ShardBatchIterator(shard_set, 4, 7, bundle.pad_id), 14))
    first = dali(shard_set, bundle, prefetch=2)
    head = list(itertools.islice(first, 5))
    first.close()  # restarts the pipeline where the loop stopped
    head += list(itertools.islice(first, 3))
    resumed = dali(shard_set, bundle, prefetch=2)
    resumed.load_state_dict(first.state_dict())
    first.close()
    for want, got in zip(reference, head + list(itertools.islice(resumed, 6))):
        assert_same_batch(got, want)
    resumed.close()


def test_dali_worker_processes_give_the_same_batches(shards):
    """DALI's parallel external source: the batch source is pickled into a spawned worker."""
    bundle, shard_set = shards
    plain = ShardBatchIterator(shard_set, 4, 7, bundle.pad_id)
    plain.load_state_dict({"epoch": 1, "position": 8})
    reader = dali(shard_set, bundle, prefetch=2, workers=1)
    reader.load_state_dict({"epoch": 1, "position": 8})
    for want, got in itertools.islice(zip(plain, reader), 9):
        assert_same_batch(got, want)
    reader.close()
