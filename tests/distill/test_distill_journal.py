"""journal.py: header and settings check, append, torn last line, malformed lines; outcomes round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from megathink.distill.journal import Journal, check_settings, journal_path, read_journal, read_results
from megathink.distill.outcomes import FormResult, QuestionResult, Sample
from megathink.errors import ConfigError, DataError

SETTINGS = {"--reasoning-temperature": 0.6, "--pick": "first_correct"}


def _result(pid: str, level: int | None = 1) -> QuestionResult:
    long = FormResult(picked=Sample("\nt</think>\\boxed{1}", True, True, True, tokens=7), samples=2, correct=1, finished=2)
    short = FormResult(picked=Sample("\\boxed{2}", True, True, False), samples=1, correct=0, finished=1)
    return QuestionResult(prompt_id=pid, problem=f"problem {pid}", answer="1", level=level, long=long, short=short)


def _write(path: Path, results: list[QuestionResult]) -> None:
    contents = read_journal(path)
    with Journal(path, contents, SETTINGS) as journal:
        for result in results:
            journal.append(result)


def test_path_round_trip_and_resume_appends(tmp_path: Path) -> None:
    path = journal_path(str(tmp_path / "data" / "hybrid.parquet"))
    assert path == tmp_path / "data" / "hybrid.journal.jsonl"
    _write(path, [_result("a"), _result("b", level=None)])
    _write(path, [_result("c")])
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"megathink_distill_journal": 1, "settings": SETTINGS}
    assert len(lines) == 4  # one header, three results
    contents = read_journal(path)
    assert contents.settings == SETTINGS and list(contents.entries) == ["a", "b", "c"]
    assert contents.intact_bytes == path.stat().st_size
    light = contents.entries["b"].result  # held in memory without texts, lengths kept
    assert light == _result("b", level=None).light() and light.problem == "" and light.long.picked.text == ""
    assert light.long.picked.chars == len(_result("b").long.picked.text)
    entries = [contents.entries[pid] for pid in ("c", "a")]
    assert list(read_results(path, entries)) == [_result("c"), _result("a")]  # texts read back by offset


@pytest.mark.parametrize("cut", [1, 25, -1])
def test_torn_last_line_is_ignored_then_cut(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "j.jsonl"
    _write(path, [_result("a"), _result("b")])
    intact = path.read_bytes()
    last_start = intact.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(intact[: last_start + cut] if cut > 0 else intact[:-1])  # mid-line, or valid JSON without "\n"
    contents = read_journal(path)
    assert list(contents.entries) == ["a"] and contents.intact_bytes == last_start
    _write(path, [_result("c")])
    assert list(read_journal(path).entries) == ["a", "c"]
    assert path.read_bytes().startswith(intact[:last_start])


def test_malformed_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    _write(path, [_result("a"), _result("b")])
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + '{"prompt_id": "x"}\n' + lines[2])
    with pytest.raises(DataError, match=r"j.jsonl line 2: problem and answer must be strings"):
        read_journal(path)
    path.write_text(lines[1] + lines[2])
    with pytest.raises(DataError, match="line 1: the first line is not a megathink distill journal header"):
        read_journal(path)


def test_settings_mismatch_names_the_flag(tmp_path: Path) -> None:
    check_settings(tmp_path, None, SETTINGS)
    check_settings(tmp_path, SETTINGS, dict(SETTINGS))
    with pytest.raises(ConfigError, match=r"--reasoning-temperature 0.7 differs from 0.6.*rerun with --reasoning-temperature 0.6"):
        check_settings(tmp_path, SETTINGS, {**SETTINGS, "--reasoning-temperature": 0.7})


def test_from_json_rejects_bad_counts() -> None:
    raw = _result("a").to_json()
    raw["long"]["correct"] = 3  # more correct than samples
    with pytest.raises(ValueError, match="samples/correct/finished"):
        QuestionResult.from_json(raw)
