"""Render a problem as a prompt with the tokenizer's chat template, fitted to the method.

The prompt is always produced by the chat template (the tokenizer's own, or
`tokenizer.chat_template` when set) with `add_generation_prompt=True` and the variables of
`tokenizer.chat_template_kwargs` (Qwen3's `enable_thinking`); the user turn is, joined by
spaces, the problem, `tokenizer.instruction`, the budget sentence when the prompt states a
token budget (`tokenizer.budget_instruction` with the number, L1's "Think for N tokens.") and
the soft switch `tokenizer.mode_switch` (Qwen3's `/think` / `/no_think`), after an optional
system message. Then:

- template="thinkless": a trailing think token (and newline) that R1-style templates append is
  removed, so the control token is the first generated token (ALGORITHMS.md section 1). A
  template that closes the thought itself (Qwen3 with enable_thinking=false:
  `<think>\\n\\n</think>\\n\\n`) is left as rendered.
- template="adaptthink": the prompt is made to end with the think token and a newline, the
  standard R1 prompt (ALGORITHMS.md section 2). A generation prompt that already closes the
  thought is refused: reopening it would make a prompt no model was trained on.

L1 (arXiv 2503.04697) appends the budget sentence to the question the same way; where it sits
relative to `instruction` is this module's choice (after it, so the budget is the last thing
the model reads before the switch).

Token ids are encoded with add_special_tokens=False: the template already carries any BOS.
"""

from __future__ import annotations

from typing import Any, Optional

from megathink.errors import DataError
from megathink.config.tokenizer import TokenizerConfig
from megathink.data.types import TokenizerBundle


def user_content(problem: str, cfg: TokenizerConfig, budget: Optional[int] = None) -> str:
    """The user turn: problem, instruction, budget sentence (when `budget` is set), mode switch."""
    parts = [problem]
    if cfg.instruction:
        parts.append(cfg.instruction)
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise DataError(
                f"a prompt's token budget = {budget!r} is invalid: it must be a positive integer "
                "(fix the data.budget_key column or data.effort_levels)."
            )
        parts.append(cfg.budget_instruction.format(budget=budget))
    if cfg.mode_switch:
        parts.append(cfg.mode_switch)
    return " ".join(parts)


def render_prompt(
    bundle: TokenizerBundle, problem: str, cfg: TokenizerConfig, *, budget: Optional[int] = None
) -> str:
    """The prompt text for `problem` (stating `budget` when set): chat template + generation
    prompt, fitted to cfg.template."""
    tokenizer = bundle.tokenizer
    template = cfg.chat_template or tokenizer.chat_template
    if not template:
        raise DataError(
            "the tokenizer has no chat template and tokenizer.chat_template is unset: set "
            "tokenizer.chat_template to a Jinja template (it receives `messages` and "
            "`add_generation_prompt`)."
        )
    content = user_content(problem, cfg, budget)
    messages = [{"role": "user", "content": content}]
    if cfg.system_prompt:
        messages.insert(0, {"role": "system", "content": cfg.system_prompt})
    text = tokenizer.apply_chat_template(
        messages,
        chat_template=template,
        tokenize=False,
        add_generation_prompt=True,
        **dict(cfg.chat_template_kwargs),
    )
    if cfg.template == "adaptthink" and content in text:
        tail = text[text.rfind(content) + len(content):]
        if cfg.end_think_token in tail:
            raise DataError(
                f"the chat template's generation prompt {tail!r} already closes the thought "
                f"({cfg.end_think_token!r}), which tokenizer.template='adaptthink' cannot reopen: drop the "
                "template variable that does it from tokenizer.chat_template_kwargs (e.g. enable_thinking) "
                "or use tokenizer.template=thinkless."
            )
    return fit_prompt_to_template(text, cfg)


def fit_prompt_to_template(text: str, cfg: TokenizerConfig) -> str:
    """Strip (thinkless) or ensure (adaptthink) a trailing `think_token + "\\n"` on a prompt."""
    think = cfg.think_token
    stripped = text[:-1] if text.endswith("\n") and text[:-1].endswith(think) else text
    if stripped.endswith(think):
        stripped = stripped[: -len(think)]
    if cfg.template == "thinkless":
        return stripped
    return stripped + think + "\n"


def encode_prompt(
    bundle: TokenizerBundle, problem: str, cfg: TokenizerConfig, *, budget: Optional[int] = None
) -> list[int]:
    """Token ids of `render_prompt(...)`, without extra special tokens."""
    text = render_prompt(bundle, problem, cfg, budget=budget)
    return list(bundle.tokenizer.encode(text, add_special_tokens=False))


def record_budget(record: Any) -> Optional[int]:
    """The token budget a record's prompt states (`PromptRecord` / `HybridSFTRecord.budget`), else None."""
    return getattr(record, "budget", None)


def encode_record_prompt(bundle: TokenizerBundle, record: Any, cfg: TokenizerConfig) -> list[int]:
    """Token ids of the prompt of a record (anything with `.problem`, optionally `.budget`): the
    problem with the budget it carries. Use this wherever records become prompts (RL, evaluation,
    presample), so an effort level reaches the model and the L1 reward alike."""
    return encode_prompt(bundle, record.problem, cfg, budget=record_budget(record))
