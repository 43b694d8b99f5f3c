"""Tokenizer, control tokens and chat template.

Two ways to get the control tokens (ALGORITHMS.md section 1): `control_tokens="add"` adds any
of `<short>`/`<think>`/`</think>` the tokenizer lacks as new special tokens (the model's
embeddings are resized), `control_tokens="map"` renames an existing reserved token id to
`<short>` as Thinkless did with Qwen2's id 151650, so the vocabulary size does not change.

The prompt is always rendered by the tokenizer's own chat template (or `chat_template`
below), then fitted to the method: `template="thinkless"` leaves the assistant turn open so
the control token is the first generated token (a trailing `<think>` that R1-style templates
add is removed); `template="adaptthink"` makes the prompt end with `<think>\\n`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from megathink.config.validation import ConfigError, check_choice, check_int, check_nonempty_str

TOKENIZER_KINDS = ("toy_arithmetic", "pretrained")
CONTROL_TOKEN_MODES = ("add", "map")
TEMPLATES = ("thinkless", "adaptthink")


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
        if self.kind == "toy_arithmetic" and self.path is not None:
            raise ConfigError(
                f"tokenizer.path = {self.path!r} is invalid with tokenizer.kind='toy_arithmetic': "
                "the toy tokenizer is built locally; use kind='pretrained' to load a directory."
            )
