"""Pre-tokenized SFT shards: bit-identical to the in-memory path, resumable, refused when they do not fit the run."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from megathink_fixtures.r1_tokenizer import build_r1_style_tokenizer_dir, r1_reserved_token_id
from megathink_fixtures.sft_shards import MAX_LEN, assert_same_batch, build_shards, open_for, toy_records
from megathink.config import TokenizerConfig
from megathink.data.loaders import write_jsonl
from megathink.data.sft_examples import SFTBatchIterator, prepare_sft_pairs
from megathink.data.shards import build as build_cli
from megathink.data.shards.batches import ShardBatchIterator
from megathink.data.shards.format import MANIFEST_NAME, ShardManifest, token_dtype
from megathink.data.shards.reader import ShardSet
from megathink.data.tokenizer import load_tokenizer
from megathink.data.types import HybridSFTRecord
from megathink.errors import DataError, ExistingOutputError, MissingPathError

CFG = TokenizerConfig()


@pytest.fixture(scope="module")
def bundle():
    return load_tokenizer(CFG)


@pytest.fixture(scope="module")
def records():
    return toy_records(120)


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory, records, bundle):
    folder = tmp_path_factory.mktemp("shards") / "toy"
    build_shards(records, folder, bundle, CFG)
    return folder


def test_round_trip_equals_the_in_memory_path(shard_dir, records, bundle):
    pairs, dropped = prepare_sft_pairs(records, bundle, CFG, MAX_LEN)
    shards = open_for(shard_dir, bundle, CFG)
    assert 0 < dropped < len(records) and shards.dropped == dropped
    assert len(shards.manifest.shards) == -(-len(pairs) // 7) > 1  # several shards, the last one partial
    assert [shards.pair(i) for i in range(len(shards))] == pairs  # ids, masks, modes and levels
    plain = SFTBatchIterator(pairs, 4, seed=5, pad_id=bundle.pad_id)
    mapped = ShardBatchIterator(shards, 4, seed=5, pad_id=bundle.pad_id)
    for want, got in itertools.islice(zip(plain, mapped), 3 * plain.batches_per_epoch + 2):  # past epoch ends
        assert_same_batch(got, want)
        assert mapped.state_dict() == plain.state_dict()


def test_adaptthink_single_form_on_an_r1_tokenizer_round_trips(tmp_path):
    """One example per question, a long prefix, records without levels, a BOS-carrying template."""
    cfg = TokenizerConfig(kind="pretrained", path=build_r1_style_tokenizer_dir(str(tmp_path / "tok")),
                          control_tokens="map", short_token_id=r1_reserved_token_id(), template="adaptthink")
    r1 = load_tokenizer(cfg)
    records = [HybridSFTRecord(problem=f"{a}+{a}=?", answer=str(2 * a), long=f"add {a}</think>{2 * a}",
                               short=str(2 * a)) for a in range(30)]
    build_shards(records, tmp_path / "s", r1, cfg, shard_size=8, long_prefix="Alright", nothinking_answers=False,
                 max_seq_len=512)
    pairs, _ = prepare_sft_pairs(records, r1, cfg, 512, long_prefix="Alright", nothinking_answers=False)
    shards = open_for(tmp_path / "s", r1, cfg, long_prefix="Alright", nothinking_answers=False, max_seq_len=512)
    assert shards.per_question == 1 and [shards.pair(i) for i in range(len(shards))] == pairs
    assert pairs[0][0].level is None and shards.pair(0)[0].level is None
    plain = SFTBatchIterator(pairs, 3, seed=0, pad_id=r1.pad_id)
    mapped = ShardBatchIterator(shards, 3, seed=0, pad_id=r1.pad_id)
    for want, got in itertools.islice(zip(plain, mapped), 12):
        assert_same_batch(got, want)


def test_token_dtype_fits_the_vocabulary():
    assert token_dtype(94) == np.uint16 and token_dtype(1 << 16) == np.uint16
    assert token_dtype((1 << 16) + 1) == np.uint32 and token_dtype(151_665) == np.uint32


def test_a_lower_max_seq_len_skips_like_the_in_memory_path_and_a_higher_one_is_refused(shard_dir, records, bundle):
    pairs, dropped = prepare_sft_pairs(records, bundle, CFG, 50)
    shards = open_for(shard_dir, bundle, CFG, max_seq_len=50)
    assert len(shards) == len(pairs) < open_for(shard_dir, bundle, CFG).__len__()
    assert shards.dropped == dropped
    assert [shards.pair(i) for i in range(len(shards))] == pairs
    plain, mapped = SFTBatchIterator(pairs, 4, 1, bundle.pad_id), ShardBatchIterator(shards, 4, 1, bundle.pad_id)
    for want, got in itertools.islice(zip(plain, mapped), 10):
        assert_same_batch(got, want)
    with pytest.raises(DataError, match=r"data.max_seq_len = 60 but the run has data.max_seq_len = 61"):
        open_for(shard_dir, bundle, CFG, max_seq_len=61)


def test_resume_from_a_state_continues_with_the_same_batches(shard_dir, bundle):
    shards = open_for(shard_dir, bundle, CFG)
    reference = list(itertools.islice(ShardBatchIterator(shards, 5, 2, bundle.pad_id), 17))
    first = ShardBatchIterator(shards, 5, 2, bundle.pad_id)
    head = list(itertools.islice(first, 9))
    state = first.state_dict()
    resumed = ShardBatchIterator(open_for(shard_dir, bundle, CFG), 5, 2, bundle.pad_id)
    resumed.load_state_dict(state)
    for want, got in zip(reference, head + list(itertools.islice(resumed, 8))):
        assert_same_batch(got, want)
    with pytest.raises(DataError, match="other SFT data"):
        resumed.load_state_dict({"epoch": 0, "position": len(shards) + 1})


@pytest.mark.parametrize(
    "change, field",
    [
        ({"cfg": TokenizerConfig(template="adaptthink")}, "tokenizer.template"),
        ({"cfg": TokenizerConfig(instruction="Think.")}, "tokenizer.instruction"),
        ({"cfg": TokenizerConfig(system_prompt="Be brief.")}, "tokenizer.system_prompt"),
        ({"cfg": TokenizerConfig(chat_template="{{ messages[0]['content'] }}")}, "tokenizer.chat_template"),
        ({"long_prefix": "Alright"}, "data.long_prefix"),
    ],
)
def test_shards_built_with_other_settings_are_refused_naming_the_field(shard_dir, bundle, change, field):
    change = dict(change)
    cfg = change.pop("cfg", CFG)
    with pytest.raises(DataError, match=f"shards were built with {field} = .* but the run has {field}") as err:
        open_for(shard_dir, bundle, cfg, **change)
    assert "rebuild the shards" in str(err.value)


def test_nothinking_answers_mismatch_is_refused(tmp_path, records, bundle):
    cfg = TokenizerConfig(template="adaptthink")
    build_shards(records[:20], tmp_path / "s", bundle, cfg, nothinking_answers=True)
    with pytest.raises(DataError, match="sft.nothinking_answers = True but the run has sft.nothinking_answers = False"):
        open_for(tmp_path / "s", bundle, cfg, nothinking_answers=False)


def test_a_different_tokenizer_is_refused(shard_dir, tmp_path):
    cfg = TokenizerConfig(kind="pretrained", path=build_r1_style_tokenizer_dir(str(tmp_path / "tok")))
    with pytest.raises(DataError, match="manifest field 'tokenizer_fingerprint'") as err:
        open_for(shard_dir, load_tokenizer(cfg), cfg)
    assert "tokenizer.kind=toy_arithmetic" in str(err.value) and "Rebuild them" in str(err.value)


def test_control_token_mode_changes_the_fingerprint(tmp_path):
    path = build_r1_style_tokenizer_dir(str(tmp_path / "tok"))
    added = TokenizerConfig(kind="pretrained", path=path)
    mapped = TokenizerConfig(kind="pretrained", path=path, control_tokens="map", short_token_id=r1_reserved_token_id())
    records = toy_records(20)
    build_shards(records, tmp_path / "s", load_tokenizer(added), added, max_seq_len=512)
    with pytest.raises(DataError, match="tokenizer_fingerprint"):
        open_for(tmp_path / "s", load_tokenizer(mapped), mapped, max_seq_len=512)


def _copy(src, dst):
    dst.mkdir()
    for item in src.iterdir():
        (dst / item.name).write_bytes(item.read_bytes())
    return dst


def test_missing_and_unfinished_folders_say_how_to_build(tmp_path, bundle):
    with pytest.raises(MissingPathError, match=r"data.sft_shards = .*does not exist: build the shards with `python -m megathink.data.shards.build"):
        open_for(tmp_path / "nowhere", bundle, CFG)
    (tmp_path / "partial").mkdir()
    with pytest.raises(MissingPathError, match="has no manifest.json"):
        open_for(tmp_path / "partial", bundle, CFG)


def test_missing_corrupt_or_truncated_shard_files_are_errors(shard_dir, tmp_path, bundle):
    missing = _copy(shard_dir, tmp_path / "missing")
    (missing / "shard_00002.tokens.npy").unlink()
    with pytest.raises(MissingPathError, match="shard_00002.tokens.npy: shard file listed in manifest.json is missing"):
        open_for(missing, bundle, CFG)

    flipped = _copy(shard_dir, tmp_path / "flipped")
    path = flipped / "shard_00001.tokens.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # same size, one token changed
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="shard_00001.tokens.npy: sha256 does not match the manifest"):
        open_for(flipped, bundle, CFG)
    unverified = open_for(flipped, bundle, CFG, verify=False)  # sizes fit: only the checksum sees it
    assert unverified.pair(13) != open_for(shard_dir, bundle, CFG).pair(13)

    truncated = _copy(shard_dir, tmp_path / "truncated")
    path = truncated / "shard_00000.index.npy"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match="shard_00000.index.npy: unreadable shard file"):
        open_for(truncated, bundle, CFG, verify=False)


def test_an_inconsistent_index_or_manifest_is_an_error(shard_dir, tmp_path, bundle):
    broken = _copy(shard_dir, tmp_path / "index")
    path = broken / "shard_00000.index.npy"
    index = np.load(path)
    index["target_start"][3] = index["length"][3]  # no trained token left
    np.save(path, index)
    with pytest.raises(DataError, match="shard index does not match its tokens file"):
        open_for(broken, bundle, CFG, verify=False)

    edited = _copy(shard_dir, tmp_path / "manifest")
    raw = json.loads((edited / MANIFEST_NAME).read_text())
    raw["questions"] += 1
    (edited / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(DataError, match="field 'questions' = .* but the shards listed hold"):
        ShardSet.open(edited)
    raw["questions"] -= 1
    raw["format_version"] = 99
    (edited / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(DataError, match="field 'format_version' = 99"):
        ShardSet.open(edited)


def test_a_failed_build_leaves_nothing_and_a_used_folder_is_never_touched(tmp_path, records, bundle):
    def broken():
        yield from records[:10]
        raise DataError("row 11: bad")

    with pytest.raises(DataError, match="row 11"):
        build_shards(broken(), tmp_path / "out", bundle, CFG, shard_size=3)
    assert list(tmp_path.iterdir()) == []  # no target and no hidden partial folder
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("x")
    with pytest.raises(ExistingOutputError, match="not an empty folder"):
        build_shards(records, tmp_path / "used", bundle, CFG)
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["keep.txt"]


def test_command_line_builds_what_the_library_builds(tmp_path, records, bundle, shard_dir, capsys):
    sft_file = tmp_path / "hybrid.jsonl"
    write_jsonl(str(sft_file), records)
    code = build_cli.main(["--sft-file", str(sft_file), "--out", str(tmp_path / "cli"), "--shard-size", "7",
                           f"data.max_seq_len={MAX_LEN}"])
    built, reference = ShardManifest.read(tmp_path / "cli"), ShardManifest.read(shard_dir)
    assert code == 0 and f"in {len(reference.shards)} shards" in capsys.readouterr().out
    assert [s.tokens_sha256 for s in built.shards] == [s.tokens_sha256 for s in reference.shards]
    assert [s.index_sha256 for s in built.shards] == [s.index_sha256 for s in reference.shards]
    assert built.source["sft_file"] == "hybrid.jsonl" and built.tokenizer_fingerprint == reference.tokenizer_fingerprint

    assert build_cli.main(["--sft-file", str(sft_file), "--out", str(tmp_path / "x"), "data.long_prefix=A"]) == 2
    assert "data.max_seq_len is unset" in capsys.readouterr().err
    assert build_cli.main(["--sft-file", str(sft_file), "--out", str(tmp_path / "x"), "data.seed=3"]) == 2
    assert "'data.seed=3' is not a shard setting" in capsys.readouterr().err
    assert build_cli.main(["--sft-file", str(sft_file), "--out", str(tmp_path / "x"), "data.max_seq_len=60",
                           "tokenizer.template=r1"]) == 2
    assert "tokenizer.template = 'r1' is invalid" in capsys.readouterr().err


def test_worker_processes_write_the_same_shards(tmp_path, records, bundle, shard_dir):
    from megathink.data.shards.writer import write_shards

    write_shards(records, tmp_path / "w", bundle, CFG, long_prefix="", nothinking_answers=True, max_seq_len=MAX_LEN,
                 shard_size=7, workers=2)
    built, reference = ShardManifest.read(tmp_path / "w"), ShardManifest.read(shard_dir)
    assert [(s.tokens_sha256, s.index_sha256) for s in built.shards] == [
        (s.tokens_sha256, s.index_sha256) for s in reference.shards
    ]


def test_command_line_takes_the_runs_tokenizer_preset(tmp_path, capsys):
    """`tokenizer=r1_distill` reads hydra_conf/tokenizer/r1_distill.yaml, so the shards fit a run with that preset."""
    tok_dir = build_r1_style_tokenizer_dir(str(tmp_path / "tok"))
    records = [HybridSFTRecord(problem=f"{a}*2", answer=str(2 * a), long=f"double</think>{2 * a}", short=str(2 * a),
                               level=1) for a in range(12)]
    sft_file = tmp_path / "hybrid.jsonl"
    write_jsonl(str(sft_file), records)
    argv = ["--sft-file", str(sft_file), "--out", str(tmp_path / "s"), "--tokenizer", tok_dir, "tokenizer=r1_distill",
            f"tokenizer.short_token_id={r1_reserved_token_id()}", "data.max_seq_len=400"]
    assert build_cli.main(argv) == 0, capsys.readouterr().err
    run = TokenizerConfig(kind="pretrained", path=tok_dir, control_tokens="map", short_token_id=r1_reserved_token_id(),
                          template="thinkless",
                          instruction="Please reason step by step, and put your final answer within \\boxed{}.")
    bundle = load_tokenizer(run)
    shards = open_for(tmp_path / "s", bundle, run, max_seq_len=400)
    assert [shards.pair(i) for i in range(len(shards))] == prepare_sft_pairs(records, bundle, run, 400)[0]
    with pytest.raises(DataError, match="tokenizer.instruction"):
        open_for(tmp_path / "s", bundle, TokenizerConfig(**{**run.__dict__, "instruction": ""}), max_seq_len=400)
    assert build_cli.main(argv[:4] + ["tokenizer=r2", "data.max_seq_len=400"]) == 2
    assert "tokenizer=r2 is not a tokenizer preset: use one of qwen3, r1_distill, r1_distill_adaptthink" in capsys.readouterr().err
