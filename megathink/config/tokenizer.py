"""Tokenizer, control tokens and chat template.

Two ways to get the control tokens (ALGORITHMS.md section 1): `control_tokens="add"` adds any
of `<short>`/`<think>`/`</think>` the tokenizer lacks as new special tokens (the model's
embeddings are resized), `control_tokens="map"` renames an existing reserved token id to
`<short>` as Thinkless did with Qwen2's id 151650, so the vocabulary size does not change.

The prompt is always rendered by the tokenizer's own chat template (or `chat_template`
below), then fitted to the method: `template="thinkless"` leaves the assistant turn open so
the control token is the first generated token (a trailing `<think>` that R1-style templates
add is removed); `template="adaptthink"` makes the prompt end with `<think>\\n`.

The user turn is the problem, then `instruction`, then the budget sentence when the prompt has
a token budget (`budget_instruction`, L1's "Think for N tokens."), then `mode_switch` (Qwen3's
soft switch `/think` or `/no_think`). `chat_template_kwargs` reach the Jinja template as
variables (Qwen3's hard switch `enable_thinking: false` puts an empty thought at the end of the
generation prompt).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Optional

from megathink.config.validation import ConfigError, check_choice, check_int, check_nonempty_str, fail

TOKENIZER_KINDS = ("toy_arithmetic", "pretrained")
CONTROL_TOKEN_MODES = ("add", "map")
TEMPLATES = ("thinkless", "adaptthink")
MODE_SWITCHES = ("", "/think", "/no_think")
RESERVED_TEMPLATE_KWARGS = (
    "messages", "conversation", "add_generation_prompt", "tokenize", "chat_template", "tools", "documents",
    "continue_final_message", "return_dict",
)
"""Arguments of `apply_chat_template` that megathink sets itself (not template variables)."""


@dataclass(kw_only=True)
class TokenizerConfig:
    kind: str = "toy_arithmetic"
    """'toy_arithmetic' builds the toy task's character-level tokenizer locally;
    'pretrained' loads a local HF tokenizer directory or tokenizer.json from `path`."""

    path: Optional[str] = None
    """Local tokenizer directory or tokenizer.json file; required when kind='pretrained'.
    Defaults to model.path when that is set."""

    control_tokens: str = "add"
    """'add' new special tokens for missing control tokens (resizes embeddings), or 'map' the
    short token onto the existing reserved id `short_token_id` (vocabulary unchanged)."""

    short_token: str = "<short>"
    """Text of the control token that opens a direct answer."""

    think_token: str = "<think>"
    """Text of the control token that opens a long chain of thought."""

    end_think_token: str = "</think>"
    """Text of the token that closes the chain of thought."""

    short_token_id: Optional[int] = None
    """With control_tokens='map': the existing (reserved) token id renamed to `short_token`
    (151650 for DeepSeek-R1-Distill-Qwen, as in Thinkless)."""

    template: str = "thinkless"
    """'thinkless': assistant turn left open, the control token is generated;
    'adaptthink': the prompt ends with the think token and a newline."""

    chat_template: Optional[str] = None
    """Jinja chat template to use instead of the tokenizer's own (needed when it has none)."""

    system_prompt: Optional[str] = None
    """Optional system message placed before the user turn."""

    instruction: str = ""
    """Text appended to every problem in the user turn, e.g. 'Please reason step by step, and
    put your final answer within \\\\boxed{}.' for the math recipes."""

    budget_instruction: str = "Think for {budget} tokens."
    """The sentence appended to the user turn of a prompt that has a token budget (data.budget_key,
    data.effort_levels), after `instruction`; `{budget}` becomes the number (L1's prompt)."""

    mode_switch: str = ""
    """Qwen3's soft switch appended to the user turn (after the budget sentence): '/think',
    '/no_think', or '' for none. For models whose chat template was trained with it."""

    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra variables for the Jinja chat template, passed to `apply_chat_template`, e.g.
    {enable_thinking: false} (Qwen3's hard switch: an empty `<think>\\n\\n</think>\\n\\n` ends the
    prompt; refused with template='adaptthink', whose prompt must end with an open thought)."""

    def __post_init__(self) -> None:
        check_choice("tokenizer.kind", self.kind, TOKENIZER_KINDS)
        check_choice("tokenizer.control_tokens", self.control_tokens, CONTROL_TOKEN_MODES)
        check_choice("tokenizer.template", self.template, TEMPLATES)
        check_nonempty_str("tokenizer.short_token", self.short_token)
        check_nonempty_str("tokenizer.think_token", self.think_token)
        check_nonempty_str("tokenizer.end_think_token", self.end_think_token)
        tokens = (self.short_token, self.think_token, self.end_think_token)
        if len(set(tokens)) != 3:
            raise ConfigError(
                f"tokenizer.short_token/think_token/end_think_token = {tokens!r} are invalid: "
                "the three control tokens must be distinct."
            )
        if self.control_tokens == "map":
            if self.short_token_id is None:
                raise ConfigError(
                    "tokenizer.short_token_id = None is invalid with tokenizer.control_tokens='map': "
                    "set it to the reserved token id to rename (151650 for DeepSeek-R1-Distill-Qwen), "
                    "or use control_tokens='add'."
                )
            check_int("tokenizer.short_token_id", self.short_token_id, low=0)
        elif self.short_token_id is not None:
            raise ConfigError(
                f"tokenizer.short_token_id = {self.short_token_id!r} is invalid with "
                "tokenizer.control_tokens='add': it is only used by control_tokens='map'."
            )
        check_nonempty_str("tokenizer.budget_instruction", self.budget_instruction)
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(self.budget_instruction) if name is not None]
        except ValueError as err:
            fail(
                "tokenizer.budget_instruction", self.budget_instruction,
                f"must be a format string ({err}); write a literal brace as {{{{ or }}}}",
            )
        if fields != ["budget"]:
            fail(
                "tokenizer.budget_instruction", self.budget_instruction,
                "must contain {budget} exactly once and no other {field} (write a literal brace as {{ or }})",
            )
        try:
            self.budget_instruction.format(budget=1)
        except (ValueError, TypeError) as err:
            fail("tokenizer.budget_instruction", self.budget_instruction, f"cannot format an integer budget ({err})")
        check_choice("tokenizer.mode_switch", self.mode_switch, MODE_SWITCHES)
        if not isinstance(self.chat_template_kwargs, dict):
            fail(
                "tokenizer.chat_template_kwargs", self.chat_template_kwargs,
                "must be a mapping of template variables, e.g. {enable_thinking: false}",
            )
        for key in self.chat_template_kwargs:
            if not isinstance(key, str) or not key.isidentifier() or key in RESERVED_TEMPLATE_KWARGS:
                fail(
                    "tokenizer.chat_template_kwargs", self.chat_template_kwargs,
                    f"key {key!r} must be a template variable name other than {', '.join(RESERVED_TEMPLATE_KWARGS)} "
                    "(megathink sets those)",
                )
        if self.template == "adaptthink" and self.chat_template_kwargs.get("enable_thinking") is False:
            raise ConfigError(
                "tokenizer.chat_template_kwargs.enable_thinking = False is invalid with "
                "tokenizer.template='adaptthink': AdaptThink's prompt ends with an open thought (<think>\\n) "
                "and decides NoThinking itself; drop enable_thinking or use template=thinkless."
            )
        if self.kind == "toy_arithmetic" and self.path is not None:
            raise ConfigError(
                f"tokenizer.path = {self.path!r} is invalid with tokenizer.kind='toy_arithmetic': "
                "the toy tokenizer is built locally; use kind='pretrained' to load a directory."
            )
