"""build_sft_batches: one call picks the in-memory, memory-mapped or DALI reader; all give the same batches."""

from __future__ import annotations

import itertools
import sys

import pytest

from megathink_fixtures.sft_shards import MAX_LEN, assert_same_batch, build_shards, toy_records
from megathink.config import DataConfig, RunConfig, SFTConfig
from megathink.data.sft_examples import SFTBatchIterator
from megathink.data.sft_source import build_sft_batches
from megathink.data.shards.batches import ShardBatchIterator
from megathink.data.tokenizer import load_tokenizer
from megathink.errors import ConfigError


def run_config(**data) -> RunConfig:
    cfg = RunConfig(sft=SFTConfig(micro_batch_size=3), data=DataConfig(max_seq_len=MAX_LEN))
    if data:  # the sft stage's own check asks for data.sft_path; the data section is what the call reads
        cfg.data = DataConfig(source="files", max_seq_len=MAX_LEN, **data)
    return cfg


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cfg = run_config()
    bundle = load_tokenizer(cfg.tokenizer)
    records = toy_records(60)
    folder = tmp_path_factory.mktemp("source") / "shards"
    build_shards(records, folder, bundle, cfg.tokenizer)
    return bundle, records, folder


def test_each_reader_gives_the_in_memory_batches(setup):
    bundle, records, folder = setup
    plain = build_sft_batches(run_config(), bundle, records)
    mapped = build_sft_batches(run_config(sft_shards=str(folder)), bundle)
    assert isinstance(plain, SFTBatchIterator) and isinstance(mapped, ShardBatchIterator)
    for want, got in itertools.islice(zip(plain, mapped), 25):
        assert_same_batch(got, want)
    assert plain.state_dict() == mapped.state_dict()


def test_a_checkpointed_state_moves_between_readers(setup):
    bundle, records, folder = setup
    plain = build_sft_batches(run_config(), bundle, records)
    list(itertools.islice(plain, 7))
    mapped = build_sft_batches(run_config(sft_shards=str(folder)), bundle)
    mapped.load_state_dict(plain.state_dict())
    for want, got in itertools.islice(zip(plain, mapped), 5):
        assert_same_batch(got, want)


def test_records_and_shards_are_exclusive_and_all_dropped_is_an_error(setup):
    bundle, records, folder = setup
    with pytest.raises(ValueError, match="the shards replace the records"):
        build_sft_batches(run_config(sft_shards=str(folder)), bundle, records)
    with pytest.raises(ValueError, match="needs the SFT records"):
        build_sft_batches(run_config(), bundle)
    cfg = run_config(sft_shards=str(folder))
    cfg.data.max_seq_len = 8
    with pytest.raises(ConfigError, match="every question of data.sft_shards = .* is longer than data.max_seq_len = 8"):
        build_sft_batches(cfg, bundle)
    cfg = run_config()
    cfg.data.max_seq_len = 8
    with pytest.raises(ConfigError, match="all 60 SFT questions are longer than data.max_seq_len = 8"):
        build_sft_batches(cfg, bundle, records)


def test_the_dali_reader_without_dali_names_the_package(setup, monkeypatch):
    bundle, _, folder = setup
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # import nvidia.dali now raises ImportError
    with pytest.raises(ConfigError, match=r"data.sft_reader = 'dali' needs NVIDIA DALI.*pip install megathink\[dali\]"):
        build_sft_batches(run_config(sft_shards=str(folder), sft_reader="dali"), bundle)
