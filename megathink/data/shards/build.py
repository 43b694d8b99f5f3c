"""Build pre-tokenized SFT shards from a hybrid SFT file (docs/DATA.md).

    python -m megathink.data.shards.build --sft-file data/hybrid_sft.jsonl --out data/hybrid_shards \\
        --shard-size 100000 --tokenizer /models/R1-Distill-Qwen-1.5B tokenizer=r1_distill \\
        data.max_seq_len=16384 --workers 8

Settings that change the token ids are given as in a run: `tokenizer=PRESET` (a file of
hydra_conf/tokenizer/, e.g. r1_distill), then `section.field=value` with the names and
meaning they have in a run (`tokenizer.*`, `data.long_prefix`, `data.max_seq_len` (required),
`data.problem_key`/`answer_key`/`level_key`, `sft.nothinking_answers`); the run that reads the
shards must use the same values, or it refuses them naming the field. `--tokenizer DIR` is
short for `tokenizer.kind=pretrained tokenizer.path=DIR`; without it the toy tokenizer is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from typing import Any, Optional, Sequence

import yaml

from megathink.config.data import DataConfig
from megathink.config.tokenizer import TokenizerConfig
from megathink.data.loaders import iter_hybrid_sft
from megathink.data.shards.format import ShardManifest
from megathink.data.shards.writer import write_shards
from megathink.data.tokenizer import load_tokenizer
from megathink.errors import ConfigError, MegathinkError

DATA_KEYS = ("long_prefix", "max_seq_len", "problem_key", "answer_key", "level_key")
SFT_KEYS = ("nothinking_answers",)


@dataclasses.dataclass
class BuildSettings:
    """The configs a build uses, from the command line."""

    tokenizer: TokenizerConfig
    data: DataConfig
    nothinking_answers: bool


def parse_settings(overrides: Sequence[str], tokenizer_dir: Optional[str], sft_file: str) -> BuildSettings:
    """`section.field=value` overrides (values parsed as YAML) into validated configs."""
    sections: dict[str, dict[str, Any]] = {"tokenizer": {}, "data": {}, "sft": {}}
    presets = [item.partition("=")[2] for item in overrides if item.startswith("tokenizer=")]
    for preset in presets:  # the run's own `tokenizer=NAME` group files, applied first
        sections["tokenizer"].update(_tokenizer_preset(preset))
    if tokenizer_dir is not None:
        sections["tokenizer"].update(kind="pretrained", path=tokenizer_dir)
    allowed = {
        "tokenizer": tuple(f.name for f in dataclasses.fields(TokenizerConfig)),
        "data": DATA_KEYS,
        "sft": SFT_KEYS,
    }
    for item in overrides:
        if item.startswith("tokenizer="):
            continue
        key, sep, text = item.partition("=")
        section, _, name = key.partition(".")
        if not sep or section not in allowed or name not in allowed[section]:
            names = ", ".join(f"{s}.{n}" for s, ns in allowed.items() for n in ns)
            raise ConfigError(
                f"{item!r} is not a shard setting: use tokenizer=PRESET or section.field=value with one of {names}."
            )
        sections[section][name] = yaml.safe_load(text) if text else ""
    if "max_seq_len" not in sections["data"]:
        raise ConfigError(
            "data.max_seq_len is unset: give the run's value (data.max_seq_len=N; the data=files preset uses "
            "16384), questions with a longer example are dropped from the shards."
        )
    sft = sections["sft"]
    nothinking = sft.get("nothinking_answers", True)
    if not isinstance(nothinking, bool):
        raise ConfigError(f"sft.nothinking_answers = {nothinking!r} is invalid: must be true or false.")
    return BuildSettings(
        tokenizer=TokenizerConfig(**sections["tokenizer"]),
        data=DataConfig(source="files", sft_path=sft_file, **sections["data"]),
        nothinking_answers=nothinking,
    )


def _tokenizer_preset(name: str) -> dict[str, Any]:
    """The fields of hydra_conf/tokenizer/NAME.yaml, the file a run's `tokenizer=NAME` selects."""
    from importlib import resources

    folder = resources.files("megathink.hydra_conf") / "tokenizer"
    names = sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
    if name not in names:
        raise ConfigError(f"tokenizer={name} is not a tokenizer preset: use one of {', '.join(names)}.")
    fields = yaml.safe_load((folder / f"{name}.yaml").read_text(encoding="utf-8")) or {}
    known = {f.name for f in dataclasses.fields(TokenizerConfig)}
    return {key: value for key, value in fields.items() if key in known and value is not None}


def build(sft_file: str, out: str, shard_size: int, settings: BuildSettings, workers: int = 1) -> ShardManifest:
    """Stream `sft_file` through the run's example builder into shards under `out`."""
    bundle = load_tokenizer(settings.tokenizer)
    data, tok = settings.data, settings.tokenizer
    records = iter_hybrid_sft(sft_file, data, tok.end_think_token)
    source = {
        "sft_file": os.path.basename(sft_file),
        "data.problem_key": data.problem_key,
        "data.answer_key": data.answer_key,
        "data.level_key": data.level_key,
    }
    return write_shards(
        records, out, bundle, tok, long_prefix=data.long_prefix, nothinking_answers=settings.nothinking_answers,
        max_seq_len=data.max_seq_len, shard_size=shard_size, workers=workers, source=source,
    )


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m megathink.data.shards.build") -> int:
    """Run the command; returns the exit status (2 with one line on a bad setting or file)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--sft-file", required=True, help="hybrid SFT file (.jsonl/.parquet: problem, answer, long, short[, level])")
    parser.add_argument("--out", required=True, help="new (or empty) folder for the shards")
    parser.add_argument("--shard-size", type=int, default=100_000, help="questions per shard file (default 100000)")
    parser.add_argument("--tokenizer", default=None, help="local HF tokenizer directory (default: the toy tokenizer)")
    parser.add_argument("--workers", type=int, default=1, help="tokenizer processes (default 1)")
    parser.add_argument("overrides", nargs="*", help="section.field=value settings, as in a run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.monotonic()
    try:
        if args.shard_size < 1 or args.workers < 1:
            raise ConfigError(f"--shard-size = {args.shard_size} and --workers = {args.workers} must both be >= 1.")
        settings = parse_settings(args.overrides, args.tokenizer, args.sft_file)
        manifest = build(args.sft_file, args.out, args.shard_size, settings, workers=args.workers)
    except MegathinkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{args.out}: {manifest.questions} questions ({manifest.examples} examples, {manifest.tokens} tokens, "
        f"{manifest.token_dtype}) in {len(manifest.shards)} shards; {manifest.dropped} dropped as longer than "
        f"data.max_seq_len = {settings.data.max_seq_len}; {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
