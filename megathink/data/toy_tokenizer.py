"""Character-level tokenizer of the toy "when to think" arithmetic task.

Every printable character the task and its chat template use is one token; `\\boxed{` is one
extra (non-special) token so the answer wrapper costs one step, not seven. Special tokens: EOS
(also used as padding), the chat-turn markers, `<think>`/`</think>` and four reserved tokens.
There is deliberately no `<short>`: control-token handling adds it (control_tokens="add") or
renames `<|reserved_0|>` to it (control_tokens="map"), the way Thinkless renamed a reserved
Qwen2 token. Ids are fixed by the order of the lists below, so they are the same on every run.
"""

from __future__ import annotations

import string

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
UNK_TOKEN = "<|unk|>"
USER_TOKEN = "<|user|>"
ASSISTANT_TOKEN = "<|assistant|>"
THINK_TOKEN = "<think>"
END_THINK_TOKEN = "</think>"
RESERVED_TOKENS = tuple(f"<|reserved_{i}|>" for i in range(4))
BOXED_TOKEN = "\\boxed{"

SPECIAL_TOKENS = (EOS_TOKEN, UNK_TOKEN, USER_TOKEN, ASSISTANT_TOKEN, THINK_TOKEN, END_THINK_TOKEN) + RESERVED_TOKENS
CHARACTERS = (
    string.digits
    + "+-*=,;:.()<>/|_ \n"
    + string.ascii_lowercase
    + string.ascii_uppercase
    + "{}"
)

# System message (if any) as plain text on its own line, then `<|user|>content`, then
# `<|assistant|>` when a generation prompt is requested.
TOY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n"
    "{% elif message['role'] == 'user' %}" + USER_TOKEN + "{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT_TOKEN + "{{ message['content'] }}" + EOS_TOKEN +
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT_TOKEN + "{% endif %}"
)


def build_arithmetic_tokenizer() -> PreTrainedTokenizerFast:
    """Build the toy tokenizer (no files read or written; identical ids on every call)."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + tuple(CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    backend.add_tokens([AddedToken(BOXED_TOKEN, special=False, normalized=False)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        chat_template=TOY_CHAT_TEMPLATE,
    )
    return tokenizer
