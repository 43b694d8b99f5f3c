"""SFT data readers on CPU: a jsonl file tokenized at start-up against pre-tokenized shards (and DALI).

What is measured. One synthetic hybrid SFT file of --questions toy-task questions (the toy
tokenizer; each question gives a think and a short example, ~29 tokens each, so one "sample"
below is one SFT sequence and a question is two), then each reader in a fresh child process
(the parent imports only the standard library):

- plain:  what the SFT stage does without shards: `load_hybrid_sft` reads the whole file,
          `prepare_sft_pairs` tokenizes every record into memory, `SFTBatchIterator` batches.
- shards: `open_shards` (manifest checks and sha256 of every shard file) and the memory-mapped
          `ShardBatchIterator`.
- dali:   the same shards through `DaliShardBatchIterator` (CPU pipeline, device_id=None,
          prefetch 2), with the batch source in the training process (workers 0) and in one
          DALI worker process (workers 1); only when nvidia.dali imports.

Each child reports its start-up time (imports not counted; until the first batch is out: file
read and tokenized, or shards checked, or the DALI pipeline built and its workers started),
the time of the next --batches batches of --per-batch questions (the reader's output is
touched so nothing stays lazy), samples/s over those batches, end-to-end samples/s (start-up
included) and its peak RSS. The one-time shard build (`write_shards`, one process) is timed
too. The readers' batches are checked equal to the plain reader's on the first 20 batches
before anything is timed.

Command (from the repository root; ~3 minutes on 2 cores):

    python benchmarks/sft_shards.py                       # 100k questions, 2000 batches of 16
    python benchmarks/sft_shards.py --questions 5000 --batches 200     # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAX_SEQ_LEN = 128
READERS = ("plain", "shards", "dali", "dali-workers")


def _child_prepare(work: Path, questions: int) -> None:
    from megathink.config import DataConfig, TokenizerConfig
    from megathink.data.loaders import iter_hybrid_sft, write_jsonl
    from megathink.data.shards.writer import write_shards
    from megathink.data.tokenizer import load_tokenizer
    from megathink.data.toy_task import build_toy_datasets

    train, _ = build_toy_datasets(DataConfig(toy_train_size=questions, toy_eval_per_level=0))
    write_jsonl(str(work / "hybrid.jsonl"), train)
    del train
    cfg = TokenizerConfig()
    start = time.perf_counter()
    records = iter_hybrid_sft(str(work / "hybrid.jsonl"), DataConfig(source="files", sft_path="x.jsonl"))
    manifest = write_shards(records, work / "shards", load_tokenizer(cfg), cfg, long_prefix="",
                            nothinking_answers=True, max_seq_len=MAX_SEQ_LEN, shard_size=25_000)
    seconds = time.perf_counter() - start
    print(json.dumps({"build_seconds": seconds, "questions": manifest.questions, "tokens": manifest.tokens,
                      "jsonl_bytes": (work / "hybrid.jsonl").stat().st_size,
                      "shard_bytes": sum(p.stat().st_size for p in (work / "shards").iterdir())}))


def _reader(kind: str, work: Path, per_batch: int):
    from megathink.config import DataConfig, TokenizerConfig
    from megathink.data.loaders import load_hybrid_sft
    from megathink.data.sft_examples import SFTBatchIterator, prepare_sft_pairs
    from megathink.data.shards.reader import open_shards
    from megathink.data.tokenizer import load_tokenizer

    cfg = TokenizerConfig()
    bundle = load_tokenizer(cfg)
    if kind == "plain":
        records = load_hybrid_sft(str(work / "hybrid.jsonl"), DataConfig(source="files", sft_path="x.jsonl"))
        pairs, _ = prepare_sft_pairs(records, bundle, cfg, MAX_SEQ_LEN)
        return SFTBatchIterator(pairs, per_batch, 0, bundle.pad_id)
    shards = open_shards(work / "shards", bundle, cfg, long_prefix="", nothinking_answers=True,
                         max_seq_len=MAX_SEQ_LEN)
    if kind == "shards":
        from megathink.data.shards.batches import ShardBatchIterator

        return ShardBatchIterator(shards, per_batch, 0, bundle.pad_id)
    from megathink.data.shards.dali_reader import DaliShardBatchIterator

    workers = 1 if kind == "dali-workers" else 0
    return DaliShardBatchIterator(shards, per_batch, 0, bundle.pad_id, max_seq_len=MAX_SEQ_LEN, prefetch=2,
                                  workers=workers)


def _child_read(kind: str, work: Path, per_batch: int, batches: int) -> None:
    import resource

    import torch

    import megathink.data.shards.reader  # noqa: F401  imports are not start-up
    import megathink.data.tokenizer  # noqa: F401

    torch.set_num_threads(1)
    start = time.perf_counter()
    reader = _reader(kind, work, per_batch)
    next(reader)  # the first batch: DALI builds its pipeline (and starts its workers) here
    startup = time.perf_counter() - start
    samples = 0
    checksum = 0
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(reader)
        samples += batch.input_ids.shape[0]
        checksum += int(batch.input_ids[:, -1].sum()) + int(batch.loss_mask.sum())
    seconds = time.perf_counter() - start
    reader.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"startup": startup, "seconds": seconds, "samples": samples, "peak": peak,
                      "checksum": checksum}))


def _child_check(work: Path, per_batch: int, kinds: list[str]) -> None:
    """The first 20 batches of every reader equal the plain reader's."""
    readers = {kind: _reader(kind, work, per_batch) for kind in ["plain", *kinds]}
    for _ in range(20):
        want = next(readers["plain"])
        for kind in kinds:
            got = next(readers[kind])
            for name in ("input_ids", "attention_mask", "loss_mask"):
                a, b = getattr(got, name), getattr(want, name)
                assert a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all()), (kind, name)
            assert got.modes == want.modes, kind
    for reader in readers.values():
        reader.close()
    print(json.dumps({"checked": kinds}))


def _run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _dali_available() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import nvidia.dali"], capture_output=True)
    return probe.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--per-batch", type=int, default=16, help="questions per batch (sft.micro_batch_size)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        role, work = args.child[0], Path(args.child[1])
        if role == "prepare":
            _child_prepare(work, int(args.child[2]))
        elif role == "check":
            _child_check(work, int(args.child[2]), args.child[3:])
        else:
            _child_read(role, work, int(args.child[2]), int(args.child[3]))
        return

    kinds = [k for k in READERS if not k.startswith("dali") or _dali_available()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        built = _run_child(["prepare", str(work), str(args.questions)])
        _run_child(["check", str(work), str(args.per_batch), *kinds[1:]])
        results = {kind: _run_child([kind, str(work), str(args.per_batch), str(args.batches)]) for kind in kinds}
    _report(args, built, results)


def _report(args: argparse.Namespace, built: dict, results: dict) -> None:
    mib = 1024 * 1024
    print(f"SFT readers, {built['questions']} questions ({2 * built['questions']} samples, {built['tokens']} tokens), "
          f"{args.batches} batches of {args.per_batch} questions ({2 * args.per_batch} samples)")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"one-time shard build: {built['build_seconds']:.1f} s "
          f"(jsonl {built['jsonl_bytes'] / mib:.1f} MiB -> shards {built['shard_bytes'] / mib:.1f} MiB)")
    header = f"{'':34}" + "".join(f"{k:>14}" for k in results)
    print(header)
    plain = results["plain"]
    rows = [
        ("start-up (s)", lambda r: f"{r['startup']:.2f}"),
        ("batches (s)", lambda r: f"{r['seconds']:.2f}"),
        ("samples/s, batches only", lambda r: f"{r['samples'] / r['seconds']:.0f}"),
        ("  ratio to plain", lambda r: f"{(r['samples'] / r['seconds']) / (plain['samples'] / plain['seconds']):.2f}"),
        ("samples/s, with start-up", lambda r: f"{r['samples'] / (r['seconds'] + r['startup']):.0f}"),
        ("  ratio to plain", lambda r: f"{(r['samples'] / (r['seconds'] + r['startup'])) / (plain['samples'] / (plain['seconds'] + plain['startup'])):.2f}"),
        ("peak RSS (MiB)", lambda r: f"{r['peak'] / mib:.0f}"),
    ]
    for name, cell in rows:
        print(f"{name:34}" + "".join(f"{cell(results[k]):>14}" for k in results))
    same = len({r["checksum"] for r in results.values()}) == 1
    print(f"same batches in every reader (first 20 compared; checksum of all timed batches equal: {same})")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
