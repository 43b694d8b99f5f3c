"""Load the tokenizer a run uses and resolve the ids the pipeline needs.

`tokenizer.kind="toy_arithmetic"` builds the toy task's character-level tokenizer in memory;
`"pretrained"` reads a local HF tokenizer directory (never the model hub) or a single
`tokenizer.json` (a directory whose tokenizer_config.json names a generic tokenizers-backed
class is read from its tokenizer.json as is). The control tokens are then added or mapped (see control_tokens.py), and
EOS/PAD are resolved: PAD falls back to EOS when the tokenizer has none.
"""

from __future__ import annotations

import json
import os
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from megathink.errors import DataError, MissingPathError
from megathink.config.tokenizer import TokenizerConfig
from megathink.data.control_tokens import apply_control_tokens
from megathink.data.toy_tokenizer import build_arithmetic_tokenizer
from megathink.data.types import TokenizerBundle


def load_tokenizer(cfg: TokenizerConfig) -> TokenizerBundle:
    """Build or load the tokenizer of `cfg` with its control tokens in place."""
    if cfg.kind == "toy_arithmetic":
        tokenizer = build_arithmetic_tokenizer()
    else:
        tokenizer = _load_pretrained(cfg.path)
    if tokenizer.eos_token_id is None:
        raise DataError(
            f"the tokenizer at tokenizer.path = {cfg.path!r} has no EOS token: use a tokenizer directory "
            "whose tokenizer_config.json sets eos_token (a bare tokenizer.json cannot name it)."
        )
    tokenizer, control, grew = apply_control_tokens(tokenizer, cfg)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return TokenizerBundle(
        tokenizer=tokenizer,
        control=control,
        eos_id=int(tokenizer.eos_token_id),
        pad_id=int(tokenizer.pad_token_id),
        vocab_grew=grew,
    )


_GENERIC_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def _generic_fast_tokenizer(path: str) -> bool:
    """Whether the directory's tokenizer_config.json names a generic tokenizers-backed class.

    Such a tokenizer (the toy one, saved with a model) must be read from its tokenizer.json as
    is: AutoTokenizer would pick the model type's own class (Qwen2Tokenizer for a qwen2
    config.json), which rebuilds the pre-tokenizer and, for the toy tokenizer, silently drops
    the newline after `<think>` that the AdaptThink prompt ends with.
    """
    config = os.path.join(path, "tokenizer_config.json")
    if not os.path.isfile(config) or not os.path.isfile(os.path.join(path, "tokenizer.json")):
        return False
    try:
        with open(config, encoding="utf-8") as handle:
            tokenizer_class = json.load(handle).get("tokenizer_class")
    except (OSError, ValueError):
        return False
    return tokenizer_class in _GENERIC_CLASSES


def _load_pretrained(path: str | None) -> Any:
    if not path:
        raise DataError(
            "tokenizer.path is unset with tokenizer.kind='pretrained': set it to a local tokenizer "
            "directory or tokenizer.json file (or set model.path), or use tokenizer.kind=toy_arithmetic."
        )
    if not os.path.exists(path):
        raise MissingPathError(
            f"tokenizer.path = {path!r} does not exist: point it at a local tokenizer directory "
            "(with tokenizer.json/tokenizer_config.json) or a tokenizer.json file; the hub is never used."
        )
    try:
        if os.path.isdir(path):
            if _generic_fast_tokenizer(path):
                return PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
            return AutoTokenizer.from_pretrained(path, local_files_only=True)
        return PreTrainedTokenizerFast(tokenizer_file=path)
    except Exception as err:  # transformers/tokenizers raise many types for unreadable input
        raise DataError(
            f"tokenizer.path = {path!r} could not be read as a tokenizer ({type(err).__name__}: {err}): "
            "point it at a directory written by save_pretrained or at a valid tokenizer.json file."
        ) from err


def load_tokenizer_dir(path: str) -> Any:
    """The tokenizer saved at `path` exactly as saved: no control tokens added or mapped and no
    PAD filled in (a serving process must not change the vocabulary of the model it serves)."""
    return _load_pretrained(path)
