"""Render a problem as a prompt with the tokenizer's chat template, fitted to the method.

The prompt is always produced by the chat template (the tokenizer's own, or
`tokenizer.chat_template` when set) with `add_generation_prompt=True`; the user turn is the
problem followed by `tokenizer.instruction`, after an optional system message. Then:

- template="thinkless": a trailing think token (and newline) that R1-style templates append is
  removed, so the control token is the first generated token (ALGORITHMS.md section 1).
- template="adaptthink": the prompt is made to end with the think token and a newline, the
  standard R1 prompt (ALGORITHMS.md section 2).

Token ids are encoded with add_special_tokens=False: the template already carries any BOS.
"""

from __future__ import annotations

from megathink.errors import DataError
from megathink.config.tokenizer import TokenizerConfig
from megathink.data.types import TokenizerBundle


def render_prompt(bundle: TokenizerBundle, problem: str, cfg: TokenizerConfig) -> str:
    """The prompt text for `problem`: chat template + generation prompt, fitted to cfg.template."""
    tokenizer = bundle.tokenizer
    template = cfg.chat_template or tokenizer.chat_template
    if not template:
        raise DataError(
            "the tokenizer has no chat template and tokenizer.chat_template is unset: set "
            "tokenizer.chat_template to a Jinja template (it receives `messages` and "
            "`add_generation_prompt`)."
        )
    content = problem + (" " + cfg.instruction if cfg.instruction else "")
    messages = [{"role": "user", "content": content}]
    if cfg.system_prompt:
        messages.insert(0, {"role": "system", "content": cfg.system_prompt})
    text = tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=True
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


def encode_prompt(bundle: TokenizerBundle, problem: str, cfg: TokenizerConfig) -> list[int]:
    """Token ids of `render_prompt(...)`, without extra special tokens."""
    text = render_prompt(bundle, problem, cfg)
    return list(bundle.tokenizer.encode(text, add_special_tokens=False))
