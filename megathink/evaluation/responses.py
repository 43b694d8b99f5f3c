"""Reading a sampled response: its mode (from the first response token) and its graded text.

Shared by the policy evaluation, the forced-mode evaluation and AdaptThink's pre-sampling, so
every table reads modes and texts the same way.
"""

from __future__ import annotations

from megathink.data.types import TokenizerBundle
from megathink.rewards.modes import SHORT, THINK, detect_mode
from megathink.rollout.types import Sample


def response_mode(sample: Sample, bundle: TokenizerBundle, template: str) -> tuple[str, int]:
    """(mode, index of the first response token of the graded text) under the prompt template.

    thinkless: the mode of the first response token (`<short>` / `<think>`, else "none"), the
    text after it. adaptthink (the prompt ends with `<think>\\n`): a first token `</think>` is
    NoThinking ("short", the text after it), anything else Thinking ("think", the whole text).
    A forced prefix counts: it is the start of the response.
    """
    if template == "adaptthink":
        if sample.response_ids[:1] == [bundle.control.end_think]:
            return SHORT, 1
        return THINK, 0
    return detect_mode(sample.response_ids, bundle.control), 1


def response_text(sample: Sample, bundle: TokenizerBundle, *, start: int = 1) -> str:
    """The decoded response from token `start` on (1: after the control token), the final stop token removed."""
    body = sample.response_ids[start:]
    if sample.finish_reason == "stop" and body:
        body = body[:-1]
    return bundle.tokenizer.decode(body, skip_special_tokens=False)
