"""What SFT token ids depend on, recorded at build time and checked when shards are opened.

Two parts:

- `tokenizer_fingerprint`: sha256 of the tokenizer's full tokenizers JSON (vocabulary, merges,
  added tokens, normalizer, pre-tokenizer; the mutable padding/truncation settings left out),
  its length and the control/EOS/PAD ids. `control_tokens=add` and `map` both change it.
- `encoding_settings`: the prompt and example settings, keyed by the config field that sets
  them, so a mismatch names the field to change.

`check_compatible` compares a manifest with the run and raises a DataError naming the field,
both values and the fix.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from megathink.config.tokenizer import TokenizerConfig
from megathink.data.types import TokenizerBundle
from megathink.errors import DataError

BUILD_COMMAND = "python -m megathink.data.shards.build"

ENCODING_FIELDS = (
    "tokenizer.template",
    "tokenizer.chat_template",
    "tokenizer.system_prompt",
    "tokenizer.instruction",
    "tokenizer.mode_switch",
    "tokenizer.chat_template_kwargs",
    "data.long_prefix",
    "sft.nothinking_answers",
    "data.max_seq_len",
)
"""The settings `encoding_settings` records, in the order a mismatch is reported."""

ADDED_LATER = {"tokenizer.mode_switch": "", "tokenizer.chat_template_kwargs": {}}
"""Settings manifests written before they existed lack; those shards were built with these values."""


def tokenizer_fingerprint(bundle: TokenizerBundle) -> str:
    """sha256 hex digest of what the tokenizer maps text to (see the module docstring)."""
    state = json.loads(bundle.tokenizer.backend_tokenizer.to_str())
    state.pop("padding", None)
    state.pop("truncation", None)
    control = bundle.control
    ids = {"vocab": len(bundle.tokenizer), "short": control.short, "think": control.think,
           "end_think": control.end_think, "eos": bundle.eos_id, "pad": bundle.pad_id}
    text = json.dumps({"tokenizer": state, "ids": ids}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def examples_per_question(cfg: TokenizerConfig, nothinking_answers: bool) -> int:
    """How many examples `encode_sft_pair` makes per question with these settings."""
    return 2 if cfg.template == "thinkless" or nothinking_answers else 1


def encoding_settings(
    bundle: TokenizerBundle, cfg: TokenizerConfig, *, long_prefix: str, nothinking_answers: bool, max_seq_len: int
) -> dict[str, Any]:
    """The settings the examples' token ids depend on, by config field."""
    template = cfg.chat_template or bundle.tokenizer.chat_template or ""
    settings: dict[str, Any] = {
        "tokenizer.template": cfg.template,
        "tokenizer.chat_template": hashlib.sha256(template.encode("utf-8")).hexdigest(),
        "tokenizer.system_prompt": cfg.system_prompt,
        "tokenizer.instruction": cfg.instruction,
        "tokenizer.mode_switch": cfg.mode_switch,
        "tokenizer.chat_template_kwargs": dict(sorted(cfg.chat_template_kwargs.items())),
        "data.long_prefix": long_prefix,
        "data.max_seq_len": max_seq_len,
    }
    if cfg.template == "adaptthink":  # thinkless ignores it
        settings["sft.nothinking_answers"] = nothinking_answers
    return settings


def check_compatible(
    where: str,
    built: dict[str, Any],
    fingerprint: str,
    source: dict[str, Any],
    run_fingerprint: str,
    run: dict[str, Any],
) -> None:
    """Refuse shards built with another tokenizer or other settings than the run's.

    `built`/`fingerprint` come from the manifest, `run`/`run_fingerprint` from the run's config;
    data.max_seq_len may be lower in the run (longer examples are then skipped), never higher.
    """
    if fingerprint != run_fingerprint:
        made_with = f"tokenizer.kind={source.get('tokenizer.kind')} tokenizer.path={source.get('tokenizer.path')}"
        raise DataError(
            f"{where}: manifest field 'tokenizer_fingerprint' = {fingerprint[:16]}... does not match the run's "
            f"tokenizer ({run_fingerprint[:16]}...): the shards were built with another tokenizer or control-token "
            f"setting ({made_with}, tokenizer.control_tokens={source.get('tokenizer.control_tokens')}). Rebuild them "
            f"with the run's tokenizer ({BUILD_COMMAND} --tokenizer ...), or run with the tokenizer they were built with."
        )
    for key in ENCODING_FIELDS + tuple(sorted(set(built) - set(ENCODING_FIELDS))):
        have, want = built.get(key, ADDED_LATER.get(key)), run.get(key)
        if key == "data.max_seq_len" and isinstance(have, int) and isinstance(want, int) and want <= have:
            continue
        if have != want:
            what = "the sha256 of the rendered chat template" if key == "tokenizer.chat_template" else "value"
            raise DataError(
                f"{where}: the shards were built with {key} = {_short(have)} but the run has {key} = {_short(want)} "
                f"({what}): rebuild the shards with {key}={_short(want)} ({BUILD_COMMAND} ... {key}=...), or set "
                f"{key}={_short(have)} in the run." + (
                    " (A run may lower data.max_seq_len below the shards', never raise it.)"
                    if key == "data.max_seq_len" else ""
                )
            )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
