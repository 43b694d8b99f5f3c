"""`megathink distill`: Thinkless stage-1 hybrid SFT data from a reasoning and an instruct endpoint (argparse, no Hydra).

    megathink distill --prompts FILE --reasoning-url URL --instruct-url URL --out FILE
        [--reasoning-api native|openai --reasoning-tokenizer DIR --reasoning-max-tokens N ...]
        [--instruct-api ... (the same per-endpoint flags)]
        [--filter both_correct|long_correct|any_correct|all --pick first_correct|shortest_correct]
        [--concurrency 8 --timeout 1800 --retries 3 --backoff 2 --grader math|boxed --limit N]

The library is `megathink.distill` (docs/DISTILL.md); this module only turns flags into
`DistillSettings`. Exit status: 0 when every selected question is done, 1 when some requests
failed (the others are written; rerun the same command to retry them), 2 for bad input or an
endpoint that is down or refuses requests (one line naming the flag and the fix), 130 on
Ctrl-C (finished questions are kept in the journal; rerun to resume).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from megathink.errors import MegathinkError

if TYPE_CHECKING:
    from megathink.distill.settings import DistillSettings

ROLE_DEFAULTS = {
    "reasoning": {"max_tokens": 16384, "what": "reasoning model (long answers, e.g. DeepSeek-R1)"},
    "instruct": {"max_tokens": 4096, "what": "instruct model (short answers, e.g. Qwen2.5-Math-1.5B-Instruct)"},
}


def build_parser() -> argparse.ArgumentParser:
    from megathink.distill.settings import (
        DEFAULT_INSTRUCTION,
        FILTERS,
        GRADERS,
        PICK_RULES,
    )

    parser = argparse.ArgumentParser(
        prog="megathink distill",
        description="Ask a reasoning endpoint for long answers and an instruct endpoint for short answers, grade "
        "both, and write the hybrid SFT file (problem, answer, long, short[, level]) that megathink sft reads "
        "with data.source=files data.sft_path=FILE. Resumable: rerun the same command after a stop.",
    )
    parser.add_argument("--prompts", required=True, metavar="FILE", help="prompt file (.jsonl/.parquet: problem, answer[, level])")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="hybrid SFT file to write (.jsonl/.parquet); OUT.journal.jsonl and OUT.summary.json go beside it")
    for role, defaults in ROLE_DEFAULTS.items():
        group = parser.add_argument_group(f"{role} endpoint: the {defaults['what']}")
        flag = f"--{role}"
        group.add_argument(f"{flag}-url", required=True, metavar="URL", help="base URL, e.g. http://127.0.0.1:30000")
        group.add_argument(f"{flag}-api", default="openai", choices=("native", "openai"),
                           help="native: SGLang POST /generate with input_ids rendered here (needs "
                           f"{flag}-tokenizer); openai: POST /v1/chat/completions (default)")
        group.add_argument(f"{flag}-tokenizer", metavar="DIR", help="the served model's tokenizer folder (native API)")
        group.add_argument(f"{flag}-model", default="default", metavar="NAME", help="'model' of OpenAI requests")
        group.add_argument(f"{flag}-api-key-env", metavar="VAR",
                           help="environment variable holding the API key (sent as 'Authorization: Bearer ...')")
        group.add_argument(f"{flag}-system-prompt", metavar="TEXT", help="system message (default: none)")
        group.add_argument(f"{flag}-max-tokens", type=int, default=defaults["max_tokens"], metavar="N",
                           help=f"new-token cap per answer (default {defaults['max_tokens']}); a capped answer is dropped")
        group.add_argument(f"{flag}-temperature", type=float, default=0.6, metavar="T", help="sampling temperature (default 0.6)")
        group.add_argument(f"{flag}-top-p", type=float, default=0.95, metavar="P", help="top-p (default 0.95)")
        group.add_argument(f"{flag}-n", type=int, default=1, metavar="N", help="samples per question; --pick keeps one (default 1)")
    keep = parser.add_argument_group("selection and grading")
    keep.add_argument("--filter", default="both_correct", choices=FILTERS, help="which questions are written (default both_correct)")
    keep.add_argument("--pick", default="first_correct", choices=PICK_RULES, help="which of n samples is kept (default first_correct)")
    keep.add_argument("--grader", default="math", choices=GRADERS,
                      help="math: math-verify equivalence in worker processes (default); boxed: exact boxed match")
    keep.add_argument("--grade-workers", type=int, default=2, metavar="N", help="grading processes (default 2)")
    keep.add_argument("--grade-timeout", type=float, default=5.0, metavar="S", help="seconds to grade one answer (default 5)")
    keep.add_argument("--instruction", default=DEFAULT_INSTRUCTION, metavar="TEXT",
                      help="text appended to every problem in the user turn ('' for none)")
    keep.add_argument("--problem-key", default="problem", metavar="COL", help="prompt-file column of the question (default problem)")
    keep.add_argument("--answer-key", default="answer", metavar="COL", help="column of the reference answer (default answer)")
    keep.add_argument("--level-key", default="level", metavar="COL", help="column of the optional level (default level)")
    keep.add_argument("--limit", type=int, default=0, metavar="N", help="only the first N distinct prompts (default 0: all)")
    keep.add_argument("--think-token", default="<think>", metavar="TEXT", help="opens the long form (default <think>)")
    keep.add_argument("--end-think-token", default="</think>", metavar="TEXT",
                      help="closes the thought; a long answer needs exactly one (default </think>)")
    keep.add_argument("--short-token", default="<short>", metavar="TEXT",
                      help="opens the short form; must not occur in answers (default <short>)")
    run = parser.add_argument_group("requests")
    run.add_argument("--concurrency", type=int, default=8, metavar="N", help="questions in flight (default 8)")
    run.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                     help="seconds an HTTP request may go without an answer before it is retried (default 1800)")
    run.add_argument("--retries", type=int, default=3, metavar="N", help="retries of a request that may pass later (default 3)")
    run.add_argument("--backoff", type=float, default=2.0, metavar="S", help="first retry wait in seconds, doubled each retry (default 2)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def settings_from_args(args: argparse.Namespace) -> "DistillSettings":
    """The run settings the parsed flags describe (validated later, by `run_distill`)."""
    from megathink.distill.settings import (
        DistillSettings,
        EndpointSettings,
        SamplingSettings,
    )

    def endpoint(role: str) -> EndpointSettings:
        get = lambda name: getattr(args, f"{role}_{name}")  # noqa: E731
        return EndpointSettings(
            role=role, url=get("url"), api=get("api"), tokenizer=get("tokenizer"), model=get("model"),
            api_key_env=get("api_key_env"), system_prompt=get("system_prompt"),
            sampling=SamplingSettings(max_tokens=get("max_tokens"), temperature=get("temperature"),
                                      top_p=get("top_p"), n=get("n")),
        )

    return DistillSettings(
        prompts=args.prompts, out=args.out, reasoning=endpoint("reasoning"), instruct=endpoint("instruct"),
        filter=args.filter, pick=args.pick, instruction=args.instruction, concurrency=args.concurrency,
        timeout_s=args.timeout, retries=args.retries, backoff_s=args.backoff, grader=args.grader,
        grade_workers=args.grade_workers, grade_timeout_s=args.grade_timeout, problem_key=args.problem_key,
        answer_key=args.answer_key, level_key=args.level_key, limit=args.limit, think_token=args.think_token,
        end_think_token=args.end_think_token, short_token=args.short_token, progress_bar=not args.no_progress,
    )


def main(argv: list[str]) -> int:
    """Run the command; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    from megathink.distill.journal import journal_path
    from megathink.distill.pipeline import run_distill

    try:
        result = run_distill(settings_from_args(args))
    except MegathinkError as err:
        print(f"megathink distill: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"megathink distill: interrupted; finished questions are in {journal_path(args.out)}: rerun the same "
            "command to resume.", file=sys.stderr,
        )
        return 130
    if not result.complete:
        print(
            f"megathink distill: {result.summary['not_done']} of {result.summary['questions']} questions not done "
            f"({len(result.failures)} failed this run); {result.out} holds the rest. Rerun the same command to "
            "retry them.", file=sys.stderr,
        )
        return 1
    print(f"wrote {result.out} ({result.summary['kept']} questions), summary {result.summary_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
