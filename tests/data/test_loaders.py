"""Reading prompt / hybrid SFT files (jsonl, parquet), their error messages, atomic writers."""

import json
import os

import pytest

from megathink.config import DataConfig
from megathink.data.loaders import load_hybrid_sft, load_prompts, write_jsonl, write_parquet
from megathink.data.toy_task import record_for
from megathink.data.types import HybridSFTRecord, PromptRecord

CFG = DataConfig()


@pytest.mark.parametrize("writer, ext", [(write_jsonl, "jsonl"), (write_parquet, "parquet")])
def test_prompts_round_trip(tmp_path, writer, ext):
    path = str(tmp_path / f"p.{ext}")
    writer(path, [{"problem": "1+1=", "answer": 2, "level": 1}, {"problem": "x?", "answer": 10, "level": None}])
    records = load_prompts(path, CFG)
    assert records == [
        PromptRecord(problem="1+1=", answer="2", level=1, source=f"p.{ext}"),
        PromptRecord(problem="x?", answer="10", level=None, source=f"p.{ext}"),
    ]


@pytest.mark.parametrize("writer, ext", [(write_jsonl, "jsonl"), (write_parquet, "parquet")])
def test_hybrid_round_trip_from_dataclasses(tmp_path, writer, ext):
    path = str(tmp_path / f"h.{ext}")
    records = [record_for(12, 34, 2), record_for(5, 6, 1)]
    writer(path, records)
    assert load_hybrid_sft(path, CFG) == records


def test_custom_keys_and_numeric_answers(tmp_path):
    path = str(tmp_path / "k.jsonl")
    write_jsonl(path, [{"question": "q", "solution": 1.5, "difficulty": 3}, {"question": "r", "solution": 4.0}])
    cfg = DataConfig(problem_key="question", answer_key="solution", level_key="difficulty")
    assert [(r.answer, r.level) for r in load_prompts(path, cfg)] == [("1.5", 3), ("4", None)]


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"problem": "a", "answer": "1"}\n\n{"problem": "b", "answer": "2"}\n')
    assert len(load_prompts(str(path), CFG)) == 2


def write_lines(tmp_path, lines, name="bad.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_bad_prompt_inputs(tmp_path):
    ok = '{"problem": "a", "answer": "1"}'
    cases = [
        ([ok, '{"answer": "1"}'], r"line 2: missing field 'problem'.*data.problem_key"),
        ([ok, '{"problem": "a"}'], r"line 2: missing field 'answer'.*data.answer_key"),
        (['{"problem": 3, "answer": "1"}'], r"line 1: field 'problem' must be a string"),
        (['{"problem": "a", "answer": [1]}'], r"line 1: field 'answer' must be a string"),
        (['{"problem": "a", "answer": true}'], r"line 1: field 'answer' must be a string"),
        (['{"problem": "a", "answer": "1", "level": "hard"}'], r"line 1: field 'level'.*data.level_key"),
        ([ok, "{not json"], r"line 2: invalid JSON"),
        (["[1, 2]"], r"line 1: expected a JSON object"),
    ]
    for lines, message in cases:
        path = write_lines(tmp_path, lines)
        with pytest.raises(ValueError, match=message) as err:
            load_prompts(path, CFG)
        assert path in str(err.value)


def test_bad_files(tmp_path):
    empty = write_lines(tmp_path, [""], "empty.jsonl")
    with pytest.raises(ValueError, match="empty.jsonl: the file has no rows"):
        load_prompts(empty, CFG)
    csv = tmp_path / "p.csv"
    csv.write_text("problem,answer\n")
    with pytest.raises(ValueError, match=r"unknown file extension '\.csv'.*\.jsonl or \.parquet"):
        load_prompts(str(csv), CFG)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_prompts(str(tmp_path / "missing.jsonl"), CFG)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="broken.parquet: not a readable parquet file"):
        load_prompts(str(broken), CFG)


def test_bad_parquet_row_is_named(tmp_path):
    path = str(tmp_path / "rows.parquet")
    write_parquet(path, [{"problem": "a", "answer": "1"}, {"problem": None, "answer": "2"}])
    with pytest.raises(ValueError, match=r"rows.parquet row 2: missing field 'problem'"):
        load_prompts(path, CFG)


def test_bad_hybrid_rows(tmp_path):
    base = {"problem": "1+1=", "answer": "2", "long": "t</think>\\boxed{2}", "short": "\\boxed{2}"}
    for drop in ("long", "short"):
        row = {k: v for k, v in base.items() if k != drop}
        path = write_lines(tmp_path, [json.dumps(row)])
        with pytest.raises(ValueError, match=f"line 1: missing field '{drop}'"):
            load_hybrid_sft(path, CFG)
    for long in ("no end token \\boxed{2}", "a</think>b</think>\\boxed{2}"):
        path = write_lines(tmp_path, [json.dumps(dict(base, long=long))])
        with pytest.raises(ValueError, match="field 'long' contains .* end-of-thinking tokens '</think>'"):
            load_hybrid_sft(path, CFG)
    path = write_lines(tmp_path, [json.dumps(dict(base, long="t<|end|>x"))])
    assert load_hybrid_sft(path, CFG, end_think_token="<|end|>")[0].long == "t<|end|>x"
    assert isinstance(load_hybrid_sft(write_lines(tmp_path, [json.dumps(base)]), CFG)[0], HybridSFTRecord)


def test_writers_are_atomic(tmp_path):
    path = str(tmp_path / "sub" / "out.jsonl")
    write_jsonl(path, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert open(path).read() == '{"a": 1}\n'  # the old file survives a failed write
    assert os.listdir(tmp_path / "sub") == ["out.jsonl"]  # no temp file left behind
