"""Give a tokenizer the control tokens `<short>`, `<think>` and `</think>`.

Two modes (ALGORITHMS.md section 1, config field `tokenizer.control_tokens`):

- "add": every control token the vocabulary lacks becomes a new special token; the model's
  embeddings must then grow (`vocab_grew=True`).
- "map": the existing token at `tokenizer.short_token_id` is renamed to the short token, as
  Thinkless renamed Qwen2's reserved id 151650 (`<|quad_start|>`) to `<short>`. The backend
  tokenizer JSON is rewritten (its added-token entry and, when present, its model-vocabulary
  entry) and the fast tokenizer rebuilt with the same EOS/PAD/BOS/UNK and chat template, so
  the vocabulary size is unchanged. Map mode never adds tokens: `<think>`/`</think>` must
  already exist (they do in DeepSeek-R1-Distill tokenizers).
"""

from __future__ import annotations

import json
from typing import Any

from tokenizers import AddedToken, Tokenizer
from transformers import PreTrainedTokenizerFast

from megathink.errors import DataError
from megathink.config.tokenizer import TokenizerConfig
from megathink.data.types import ControlTokenIds

_KEPT_SPECIAL_TOKENS = ("bos_token", "eos_token", "pad_token", "unk_token")


def apply_control_tokens(tokenizer: Any, cfg: TokenizerConfig) -> tuple[Any, ControlTokenIds, bool]:
    """Return (tokenizer, control ids, vocab_grew) with the control tokens of `cfg` in place.

    The returned tokenizer is the same object in "add" mode and a rebuilt one in "map" mode.
    """
    if cfg.control_tokens == "add":
        grew = _add_missing(tokenizer, (cfg.short_token, cfg.think_token, cfg.end_think_token))
    else:
        tokenizer = _map_short_token(tokenizer, cfg)
        grew = False
    vocab = tokenizer.get_vocab()
    control = ControlTokenIds(
        short=vocab[cfg.short_token], think=vocab[cfg.think_token], end_think=vocab[cfg.end_think_token]
    )
    return tokenizer, control, grew


def _add_missing(tokenizer: Any, tokens: tuple[str, ...]) -> bool:
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    return bool(missing)


def _map_short_token(tokenizer: Any, cfg: TokenizerConfig) -> Any:
    token_id = cfg.short_token_id
    assert token_id is not None  # TokenizerConfig guarantees it in map mode
    size = len(tokenizer)
    if not 0 <= token_id < size:
        raise DataError(
            f"tokenizer.short_token_id = {token_id} is out of range for a tokenizer of {size} tokens: "
            f"pick a reserved id in [0, {size - 1}] (151650 for DeepSeek-R1-Distill-Qwen), "
            "or use tokenizer.control_tokens=add."
        )
    vocab = tokenizer.get_vocab()
    for field, token in (("think_token", cfg.think_token), ("end_think_token", cfg.end_think_token)):
        if token not in vocab:
            raise DataError(
                f"tokenizer.{field} = {token!r} is not in the tokenizer and tokenizer.control_tokens='map' "
                "never adds tokens: use tokenizer.control_tokens=add, or set tokenizer."
                f"{field} to a token the tokenizer has."
            )
    current = tokenizer.convert_ids_to_tokens(token_id)
    if current == cfg.short_token:
        return tokenizer  # already mapped (e.g. a tokenizer saved after mapping)
    if cfg.short_token in vocab:
        raise DataError(
            f"tokenizer.short_token = {cfg.short_token!r} already exists with id {vocab[cfg.short_token]}, "
            f"not tokenizer.short_token_id = {token_id}: set short_token_id={vocab[cfg.short_token]} "
            "or use tokenizer.control_tokens=add."
        )
    if current in (cfg.think_token, cfg.end_think_token):
        raise DataError(
            f"tokenizer.short_token_id = {token_id} is the control token {current!r}: "
            "pick an unused reserved token id instead."
        )
    roles = [name for name in _KEPT_SPECIAL_TOKENS if getattr(tokenizer, f"{name}_id", None) == token_id]
    if roles:
        raise DataError(
            f"tokenizer.short_token_id = {token_id} is the tokenizer's {'/'.join(roles)} {current!r}: "
            "pick an unused reserved token id instead."
        )
    backend = Tokenizer.from_str(_renamed_backend_json(tokenizer.backend_tokenizer.to_str(), token_id, cfg.short_token))
    kwargs = {name: getattr(tokenizer, name) for name in _KEPT_SPECIAL_TOKENS if getattr(tokenizer, name, None)}
    rebuilt = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        chat_template=tokenizer.chat_template,
        model_max_length=tokenizer.model_max_length,
        padding_side=tokenizer.padding_side,
        **kwargs,
    )
    if len(rebuilt) != size:
        raise RuntimeError(f"renaming id {token_id} changed the vocabulary size from {size} to {len(rebuilt)}")
    return rebuilt


def _renamed_backend_json(backend_json: str, token_id: int, new_content: str) -> str:
    """The tokenizer JSON with the token at `token_id` renamed to `new_content` (special, whole)."""
    data = json.loads(backend_json)
    model = data.get("model", {})
    vocab = model.get("vocab")
    if isinstance(vocab, dict):  # BPE / WordLevel / WordPiece: {token: id}
        old = next((tok for tok, i in vocab.items() if i == token_id), None)
        if old is not None:
            model["vocab"] = {(new_content if tok == old else tok): i for tok, i in vocab.items()}
    elif isinstance(vocab, list) and token_id < len(vocab):  # Unigram: [[piece, score], ...]
        vocab[token_id][0] = new_content
    added = data.setdefault("added_tokens", [])
    entry = next((e for e in added if e["id"] == token_id), None)
    if entry is None:
        entry = {"id": token_id, "single_word": False, "lstrip": False, "rstrip": False}
        added.append(entry)
        added.sort(key=lambda e: e["id"])
    entry.update(content=new_content, special=True, normalized=False)
    return json.dumps(data, ensure_ascii=False)
