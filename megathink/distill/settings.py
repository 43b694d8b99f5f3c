"""The settings of one `megathink distill` run, validated, every error naming its command-line flag.

Two endpoints (the reasoning model for the long answers, the instruct model for the short
ones) each get an `EndpointSettings`: where it is (`--reasoning-url`), which API it speaks
(`--reasoning-api native|openai`), how its prompt is rendered (a tokenizer directory with the
model's chat template for the native API, a model name for the OpenAI API), an optional API
key read from an environment variable, and its sampling settings. `DistillSettings` adds the
prompt file, the output, the keep filter, the pick rule among n samples, concurrency, timeouts
and retries, and the grader.

The flag name of every field is `--<role>-<field>` for the endpoint fields (role `reasoning`
or `instruct`) and `--<field>` with dashes for the others; `ConfigError` messages use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from megathink.config.validation import check_choice, check_float, check_int, check_nonempty_str, fail
from megathink.errors import ConfigError, MissingPathError

APIS = ("native", "openai")
ROLES = ("reasoning", "instruct")
FILTERS = ("both_correct", "long_correct", "any_correct", "all")
PICK_RULES = ("first_correct", "shortest_correct")
GRADERS = ("math", "boxed")
OUTPUT_EXTENSIONS = (".jsonl", ".parquet")
DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True, kw_only=True)
class SamplingSettings:
    """How one endpoint samples (SGLang `sampling_params` / OpenAI request fields)."""

    max_tokens: int
    """Most new tokens per answer (`max_new_tokens` / `max_tokens`); a longer answer is cut and dropped."""
    temperature: float
    """Sampling temperature (0 = greedy)."""
    top_p: float
    """Nucleus sampling mass in (0, 1]."""
    n: int = 1
    """Answers sampled per question; `DistillSettings.pick` chooses the one kept."""

    def check(self, flag: str) -> None:
        check_int(f"{flag}-max-tokens", self.max_tokens, low=1)
        check_float(f"{flag}-temperature", self.temperature, low=0.0, high=10.0)
        check_float(f"{flag}-top-p", self.top_p, low=0.0, high=1.0, low_inclusive=False)
        check_int(f"{flag}-n", self.n, low=1, high=64)


@dataclass(frozen=True, kw_only=True)
class EndpointSettings:
    """One model server: where it is, how to talk to it and how it samples."""

    role: str
    """'reasoning' (long answers) or 'instruct' (short answers): the flag prefix."""
    url: str
    """Base URL (`http://host:port`); `/generate` or `/v1/chat/completions` is appended (see `client.endpoint_url`)."""
    api: str
    """'native' (SGLang `POST /generate` with `input_ids`) or 'openai' (`POST /v1/chat/completions`)."""
    sampling: SamplingSettings
    tokenizer: Optional[str] = None
    """Local tokenizer directory whose chat template renders the prompt (native API only; required there)."""
    model: str = "default"
    """The `model` field of OpenAI requests (the served model's name; SGLang accepts any)."""
    api_key_env: Optional[str] = None
    """Name of the environment variable holding the API key, sent as `Authorization: Bearer ...`."""
    system_prompt: Optional[str] = None
    """Optional system message before the user turn (DeepSeek advises none for R1)."""

    @property
    def flag(self) -> str:
        return f"--{self.role}"

    def check(self) -> None:
        check_choice("endpoint role", self.role, ROLES)
        flag = self.flag
        check_choice(f"{flag}-api", self.api, APIS)
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            fail(f"{flag}-url", self.url, "must be an http:// or https:// URL such as http://127.0.0.1:30000")
        self.sampling.check(flag)
        check_nonempty_str(f"{flag}-model", self.model)
        if self.api == "native":
            if not self.tokenizer:
                raise ConfigError(
                    f"{flag}-tokenizer is unset with {flag}-api native: give the served model's tokenizer directory "
                    f"(its chat template renders the prompt into input_ids), or use {flag}-api openai."
                )
            if not os.path.isdir(self.tokenizer):
                raise MissingPathError(
                    f"{flag}-tokenizer = {self.tokenizer!r} is not a directory: point it at the served model's "
                    "folder (tokenizer.json + tokenizer_config.json with its chat template)."
                )
        if self.api_key_env is not None:
            check_nonempty_str(f"{flag}-api-key-env", self.api_key_env)
            if not os.environ.get(self.api_key_env):
                raise ConfigError(
                    f"{flag}-api-key-env names the environment variable {self.api_key_env!r}, which is unset or "
                    f"empty: export it with the key, or drop {flag}-api-key-env for a server without a key."
                )

    def api_key(self) -> Optional[str]:
        """The key from the environment (never logged, never written)."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


@dataclass(frozen=True, kw_only=True)
class DistillSettings:
    """Everything one run needs; `check()` validates it before any request is sent."""

    prompts: str
    """Prompt file (.jsonl/.parquet: problem, answer[, level]), read with `data.loaders.load_prompts`."""
    out: str
    """The hybrid SFT file to write (.jsonl or .parquet); the journal and summary go beside it."""
    reasoning: EndpointSettings
    instruct: EndpointSettings
    filter: str = "both_correct"
    """Which questions are kept (filter.py): both_correct | long_correct | any_correct | all."""
    pick: str = "first_correct"
    """Which of n samples is kept per answer form: first_correct | shortest_correct."""
    instruction: str = DEFAULT_INSTRUCTION
    """Text appended (after a space) to every problem in the user turn; empty for none."""
    concurrency: int = 8
    """Questions in flight at once (each sends its short request, then its long one)."""
    timeout_s: float = 1800.0
    """Seconds an HTTP request may go without an answer (urllib's socket timeout) before it is retried."""
    retries: int = 3
    """Retries of a request that timed out, could not connect or got HTTP 408/429/5xx."""
    backoff_s: float = 2.0
    """Wait before retry k is backoff_s * 2**(k-1) seconds."""
    grader: str = "math"
    """'math' (math-verify equivalence in a time-bounded GraderPool) or 'boxed' (whitespace-free string match)."""
    grade_workers: int = 2
    """Grading worker processes (grader=math)."""
    grade_timeout_s: float = 5.0
    """Seconds to grade one answer (grader=math); slower is wrong."""
    problem_key: str = "problem"
    answer_key: str = "answer"
    level_key: str = "level"
    limit: int = 0
    """Distill only the first N distinct prompts (0 = all)."""
    think_token: str = "<think>"
    end_think_token: str = "</think>"
    short_token: str = "<short>"
    progress_bar: bool = True

    def check(self) -> None:
        for flag, path in (("--prompts", self.prompts), ("--out", self.out)):
            check_nonempty_str(flag, path)
        if not os.path.isfile(self.prompts):
            raise MissingPathError(f"--prompts {self.prompts!r}: no such file; give a .jsonl or .parquet prompt file.")
        if os.path.splitext(self.out)[1].lower() not in OUTPUT_EXTENSIONS:
            fail("--out", self.out, "must end in .jsonl or .parquet (the formats megathink sft reads)")
        for endpoint, role in ((self.reasoning, "reasoning"), (self.instruct, "instruct")):
            if endpoint.role != role:
                raise ConfigError(f"the {role} endpoint was built with role {endpoint.role!r}; this is a bug.")
            endpoint.check()
        check_choice("--filter", self.filter, FILTERS)
        check_choice("--pick", self.pick, PICK_RULES)
        if not isinstance(self.instruction, str):
            fail("--instruction", self.instruction, "must be a string (empty for none)")
        check_int("--concurrency", self.concurrency, low=1, high=1024)
        check_float("--timeout", self.timeout_s, low=0.0, low_inclusive=False)
        check_int("--retries", self.retries, low=0, high=100)
        check_float("--backoff", self.backoff_s, low=0.0, high=3600.0)
        check_choice("--grader", self.grader, GRADERS)
        check_int("--grade-workers", self.grade_workers, low=1)
        check_float("--grade-timeout", self.grade_timeout_s, low=0.0, high=600.0, low_inclusive=False)
        for flag, key in (("--problem-key", self.problem_key), ("--answer-key", self.answer_key),
                          ("--level-key", self.level_key)):
            check_nonempty_str(flag, key)
        check_int("--limit", self.limit, low=0)
        tokens = (self.think_token, self.end_think_token, self.short_token)
        for flag, token in zip(("--think-token", "--end-think-token", "--short-token"), tokens):
            check_nonempty_str(flag, token)
        if len(set(tokens)) != 3:
            raise ConfigError(f"--think-token/--end-think-token/--short-token = {tokens!r} must be three distinct strings.")
