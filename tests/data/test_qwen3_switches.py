"""Qwen3-style switches: the hard one (`tokenizer.chat_template_kwargs`, `enable_thinking`) and
the soft one (`tokenizer.mode_switch`), on a locally built tokenizer whose chat template ends
like Qwen3's (an empty thought in the generation prompt when enable_thinking is false)."""

from __future__ import annotations

import os

import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from megathink.config import ConfigError, TokenizerConfig
from megathink.data.chat_template import encode_prompt, render_prompt
from megathink.data.tokenizer import load_tokenizer
from megathink.errors import DataError

IM_START, IM_END, EOS = "<|im_start|>", "<|im_end|>", "<|endoftext|>"

# The tail of Qwen3's template: every turn as <|im_start|>role\ncontent<|im_end|>\n, then the
# assistant header, and with enable_thinking=false an empty thought.
QWEN3_STYLE_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)
USER = "<|im_start|>user\n3+4={}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory):
    """A byte-level tokenizer with Qwen3's chat tokens and <think>/</think>, saved to a folder."""
    path = str(tmp_path_factory.mktemp("qwen3"))
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (EOS, IM_START, IM_END)])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in ("<think>", "</think>")])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=IM_END, pad_token=EOS, chat_template=QWEN3_STYLE_TEMPLATE
    )
    tokenizer.save_pretrained(path)
    assert os.path.isfile(os.path.join(path, "tokenizer.json"))
    return path


def _render(path, problem="3+4=", budget=None, **overrides):
    cfg = TokenizerConfig(kind="pretrained", path=path, **overrides)
    return render_prompt(load_tokenizer(cfg), problem, cfg, budget=budget)


def test_enable_thinking_false_ends_the_prompt_with_an_empty_thought(qwen3_dir):
    assert _render(qwen3_dir) == USER.format("")
    assert _render(qwen3_dir, chat_template_kwargs={"enable_thinking": True}) == USER.format("")
    closed = _render(qwen3_dir, chat_template_kwargs={"enable_thinking": False})
    assert closed == USER.format("") + "<think>\n\n</think>\n\n"
    cfg = TokenizerConfig(kind="pretrained", path=qwen3_dir, chat_template_kwargs={"enable_thinking": False})
    bundle = load_tokenizer(cfg)
    ids = encode_prompt(bundle, "3+4=", cfg)
    assert bundle.tokenizer.decode(ids) == closed
    assert bundle.control.end_think in ids


def test_adaptthink_opens_the_thought_and_refuses_a_closed_one(qwen3_dir):
    assert _render(qwen3_dir, template="adaptthink") == USER.format("") + "<think>\n"
    with pytest.raises(ConfigError, match="tokenizer.chat_template_kwargs.enable_thinking"):
        TokenizerConfig(kind="pretrained", path=qwen3_dir, template="adaptthink",
                        chat_template_kwargs={"enable_thinking": False})
    # any template variable that closes the thought is refused at rendering
    template = QWEN3_STYLE_TEMPLATE.replace("enable_thinking is defined and enable_thinking is false", "no_thought")
    with pytest.raises(DataError, match="already closes the thought"):
        _render(qwen3_dir, template="adaptthink", chat_template=template, chat_template_kwargs={"no_thought": True})


@pytest.mark.parametrize("switch", ["/think", "/no_think"])
def test_mode_switch_ends_the_user_turn(qwen3_dir, switch):
    assert _render(qwen3_dir, mode_switch=switch) == USER.format(" " + switch)
    assert _render(qwen3_dir, mode_switch=switch, budget=100) == USER.format(" Think for 100 tokens. " + switch)
    toy = TokenizerConfig(mode_switch=switch, instruction="Box it.")
    assert render_prompt(load_tokenizer(toy), "1+2=", toy) == f"<|user|>1+2= Box it. {switch}<|assistant|>"


def test_both_switches_together(qwen3_dir):
    text = _render(qwen3_dir, mode_switch="/no_think", chat_template_kwargs={"enable_thinking": False})
    assert text == USER.format(" /no_think") + "<think>\n\n</think>\n\n"
