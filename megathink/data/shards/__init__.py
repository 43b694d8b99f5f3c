"""Pre-tokenized SFT shards: a million-sample distillation set tokenized once, read memory-mapped.

- `format.py`: the folder layout (flat token .npy + index .npy per shard, manifest.json)
- `fingerprint.py`: what token ids depend on, recorded at build and checked at open
- `encode.py`, `writer.py`: streaming build (`write_shards`), optionally in worker processes
- `build.py`: the command `python -m megathink.data.shards.build`
- `reader.py`: `open_shards` / `ShardSet` (checks, memory maps, lookup by question)
- `batches.py`: `ShardBatchIterator`, the same batches as the in-memory `SFTBatchIterator`
- `dali_reader.py`: `DaliShardBatchIterator`, the same batches prefetched by NVIDIA DALI (optional)

docs/DATA.md describes the format and when to use which reader.
"""
