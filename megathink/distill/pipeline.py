"""`run_distill(settings)`: Thinkless stage-1 data from two endpoints (the library side of `megathink distill`).

ALGORITHMS.md section 1, stage 1: every question gets a long answer from a reasoning model
(opened by `<think>` in training) and a short answer from an instruct model (opened by
`<short>`). One run:

1. reads the prompt file with `data.loaders.load_prompts` (problem, answer[, level]), keeps
   the first occurrence of each `prompt_id` (and only the first `--limit` prompts when set);
2. reads the journal beside the output (journal.py) and skips the questions already in it;
   a journal started with other settings stops the run, naming the flag;
3. checks that both endpoints answer at all (a clear error naming the URL when one is down),
   then runs the remaining questions `--concurrency` at a time (scheduler.py): each sends its
   short request, then its long one, grades all samples and picks one per form
   (question.py); its result is appended to the journal the moment it finishes;
4. writes the hybrid SFT file from the journal, in prompt-file order, keeping the questions
   `--filter` keeps (filter.py): one row `{problem, answer, long, short[, level]}` each, the
   format `load_hybrid_sft` and `megathink sft data.source=files data.sft_path=...` read;
   written atomically, replaced by every run (it is derived: the journal is the record);
5. prints and writes the summary (summary.py).

A request that fails for good (retries spent, or HTTP 400 for that prompt) leaves its question
out of the journal: the run finishes the others and returns the failures, and the next run
retries them. An unreachable endpoint or one that refuses every request (key, route) stops
the run; what finished is already in the journal.

Departures from the Thinkless authors' pipeline are listed in docs/DISTILL.md.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from megathink.config.data import DataConfig
from megathink.data.loaders import load_prompts, write_jsonl, write_parquet
from megathink.data.types import PromptRecord, prompt_id
from megathink.distill.completions import build_client
from megathink.distill.filter import drop_reason
from megathink.distill.grading import build_grader
from megathink.distill.journal import (
    Journal,
    JournalContents,
    JournalEntry,
    check_settings,
    fingerprint,
    journal_path,
    read_journal,
    read_results,
)
from megathink.distill.outcomes import QuestionResult
from megathink.distill.question import distill_question
from megathink.distill.scheduler import Done, run_concurrently
from megathink.distill.settings import DistillSettings
from megathink.distill.summary import build_summary, format_summary, summary_path, write_summary
from megathink.distill.transport import RequestFailed, RetryPolicy
from megathink.errors import DataError, ExistingOutputError

_SHOWN_CHARS = 40


@dataclass
class DistillResult:
    """What `run_distill` did and where it wrote."""

    out: Path
    journal: Path
    summary_path: Path
    summary: dict[str, Any]
    failures: list[str]
    """One line per question whose request failed this run (not written; a rerun retries them)."""

    @property
    def complete(self) -> bool:
        """Every selected question is done."""
        return self.summary["not_done"] == 0


def run_distill(settings: DistillSettings) -> DistillResult:
    """Distill every selected prompt not yet in the journal, then write the SFT file and the summary."""
    settings.check()
    records, duplicates = select_prompts(settings)
    out, journal_file = Path(settings.out), journal_path(settings.out)
    if out.exists() and not journal_file.exists():
        raise ExistingOutputError(
            f"--out {settings.out!r} exists and has no journal {journal_file.name} beside it, so megathink distill "
            "did not write it: give another --out, or move the file away."
        )
    contents = read_journal(journal_file)
    check_settings(journal_file, contents.settings, fingerprint(settings))
    entries = dict(contents.entries)
    todo = [record for record in records if prompt_id(record.problem) not in entries]
    failures: list[str] = []
    if todo:
        failures = _distill(settings, todo, len(records) - len(todo), contents, journal_file, entries)
    write_output(out, records, entries, journal_file, settings.filter)
    results = {pid: entry.result for pid, entry in entries.items()}
    summary = build_summary(
        settings, records, results, queried=len(todo) - len(failures), already_done=len(records) - len(todo),
        failures=failures, duplicates=duplicates,
    )
    summary["journal"] = str(journal_file)
    path = summary_path(settings.out)
    write_summary(path, summary)
    print(format_summary(summary), flush=True)
    return DistillResult(out=out, journal=journal_file, summary_path=path, summary=summary, failures=failures)


def select_prompts(settings: DistillSettings) -> tuple[list[PromptRecord], int]:
    """(the distinct prompts in file order, first `--limit` of them; how many repeats were skipped)."""
    data = DataConfig(problem_key=settings.problem_key, answer_key=settings.answer_key, level_key=settings.level_key)
    try:
        records = load_prompts(settings.prompts, data)
    except DataError as err:
        message = str(err)
        for key in ("problem_key", "answer_key", "level_key"):
            message = message.replace(f"data.{key}", "--" + key.replace("_", "-"))
        raise DataError(message) from err
    distinct: dict[str, PromptRecord] = {}
    for record in records:
        distinct.setdefault(prompt_id(record.problem), record)
    chosen = list(distinct.values())
    if settings.limit:
        chosen = chosen[: settings.limit]
    return chosen, len(records) - len(distinct)


def write_output(
    out: Path, records: Sequence[PromptRecord], entries: dict[str, JournalEntry], journal_file: Path, keep: str
) -> int:
    """Write the kept questions as hybrid SFT rows (atomically), their texts read back from the journal
    one at a time (a jsonl output streams; a parquet table is built in memory); returns how many.
    Rows carry `level` when any selected prompt has one (null for those without), so every parquet
    row has the column."""
    with_level = any(record.level is not None for record in records)
    kept = [
        (record, entries[pid]) for record in records
        if (pid := prompt_id(record.problem)) in entries and drop_reason(entries[pid].result, keep) is None
    ]

    def rows() -> Iterator[dict[str, Any]]:
        if not kept:
            return
        for (record, _), full in zip(kept, read_results(journal_file, [entry for _, entry in kept])):
            row: dict[str, Any] = {
                "problem": record.problem, "answer": record.answer,
                "long": full.long.picked.text, "short": full.short.picked.text,
            }
            if with_level:
                row["level"] = record.level
            yield row

    if out.suffix.lower() == ".parquet":
        write_parquet(str(out), list(rows()))
    else:
        write_jsonl(str(out), rows())
    return len(kept)


def _distill(
    settings: DistillSettings,
    todo: Sequence[PromptRecord],
    done_before: int,
    contents: JournalContents,
    journal_file: Path,
    entries: dict[str, JournalEntry],
) -> list[str]:
    """Run the questions of `todo`, appending each finished one to the journal and to `entries`."""
    policy = RetryPolicy(timeout_s=settings.timeout_s, retries=settings.retries, backoff_s=settings.backoff_s)
    tokens = dict(think_token=settings.think_token, end_think_token=settings.end_think_token)
    reasoning = build_client(settings.reasoning, settings.instruction, policy, **tokens)
    instruct = build_client(settings.instruct, settings.instruction, policy, **tokens)
    reasoning.check_reachable()
    instruct.check_reachable()
    failures: list[str] = []
    with contextlib.ExitStack() as stack:
        grade = build_grader(settings, stack)
        journal = stack.enter_context(Journal(journal_file, contents, fingerprint(settings)))
        progress = tqdm(
            total=done_before + len(todo), initial=done_before, desc="distill", unit="question",
            disable=not settings.progress_bar, dynamic_ncols=True,
        )
        stack.callback(progress.close)

        def work(record: PromptRecord) -> QuestionResult:
            return distill_question(record, reasoning, instruct, grade, settings)

        for outcome in run_concurrently(todo, work, settings.concurrency, (RequestFailed,)):
            if isinstance(outcome, Done):
                entries[outcome.result.prompt_id] = journal.append(outcome.result)
                progress.update(1)
            else:
                line = f"{_shorten(outcome.item.problem)!r}: {outcome.error}"
                failures.append(line)
                progress.write(f"megathink distill: warning: question failed (a rerun retries it): {line}", file=sys.stderr)
    return failures


def _shorten(problem: str) -> str:
    flat = " ".join(problem.split())
    return flat if len(flat) <= _SHOWN_CHARS else flat[: _SHOWN_CHARS - 3] + "..."
