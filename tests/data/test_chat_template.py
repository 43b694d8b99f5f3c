"""Prompts rendered by the chat template and fitted to thinkless / adaptthink."""

import pytest

from megathink_fixtures.r1_tokenizer import build_r1_style_tokenizer_dir
from megathink.config import TokenizerConfig
from megathink.data.chat_template import encode_prompt, fit_prompt_to_template, render_prompt
from megathink.data.tokenizer import load_tokenizer

BOS = "<｜begin▁of▁sentence｜>"


@pytest.fixture(scope="module")
def r1_dir(tmp_path_factory):
    return build_r1_style_tokenizer_dir(str(tmp_path_factory.mktemp("r1")))


def both(r1_dir, **overrides):
    return [TokenizerConfig(**overrides), TokenizerConfig(kind="pretrained", path=r1_dir, **overrides)]


def test_thinkless_prompt_never_ends_with_think(r1_dir):
    toy_cfg, r1_cfg = both(r1_dir, template="thinkless")
    assert render_prompt(load_tokenizer(toy_cfg), "3+4=", toy_cfg) == "<|user|>3+4=<|assistant|>"
    r1_text = render_prompt(load_tokenizer(r1_cfg), "3+4=", r1_cfg)
    assert r1_text == BOS + "<｜User｜>3+4=<｜Assistant｜>"  # the template's "<think>\n" is stripped


def test_adaptthink_prompt_ends_with_think_newline(r1_dir):
    toy_cfg, r1_cfg = both(r1_dir, template="adaptthink")
    assert render_prompt(load_tokenizer(toy_cfg), "3+4=", toy_cfg) == "<|user|>3+4=<|assistant|><think>\n"
    r1_text = render_prompt(load_tokenizer(r1_cfg), "3+4=", r1_cfg)
    assert r1_text == BOS + "<｜User｜>3+4=<｜Assistant｜><think>\n"


def test_encode_prompt_ids_and_single_bos(r1_dir):
    for cfg in both(r1_dir, template="adaptthink"):
        bundle = load_tokenizer(cfg)
        ids = encode_prompt(bundle, "3+4=", cfg)
        assert ids[-2] == bundle.control.think
        assert bundle.tokenizer.decode(ids) == render_prompt(bundle, "3+4=", cfg)
    r1_bundle = load_tokenizer(both(r1_dir)[1])
    ids = encode_prompt(r1_bundle, "3+4=", both(r1_dir)[1])
    assert ids.count(r1_bundle.tokenizer.bos_token_id) == 1
    assert ids[-1] == r1_bundle.tokenizer.convert_tokens_to_ids("<｜Assistant｜>")


def test_instruction_and_system_prompt(r1_dir):
    cfg = TokenizerConfig(instruction="Answer in \\boxed{}.", system_prompt="You add numbers.")
    text = render_prompt(load_tokenizer(cfg), "3+4=", cfg)
    assert text == "You add numbers.\n<|user|>3+4= Answer in \\boxed{}.<|assistant|>"
    r1_cfg = TokenizerConfig(kind="pretrained", path=r1_dir, system_prompt="SYS")
    assert render_prompt(load_tokenizer(r1_cfg), "q", r1_cfg) == BOS + "SYS<｜User｜>q<｜Assistant｜>"


def test_config_chat_template_overrides_and_missing_template_errors():
    cfg = TokenizerConfig(chat_template="{% for m in messages %}Q:{{ m['content'] }}{% endfor %}A:")
    bundle = load_tokenizer(cfg)
    assert render_prompt(bundle, "1+1=", cfg) == "Q:1+1=A:"
    bundle.tokenizer.chat_template = None
    with pytest.raises(ValueError, match="tokenizer.chat_template"):
        render_prompt(bundle, "1+1=", TokenizerConfig())


@pytest.mark.parametrize(
    "text, thinkless, adaptthink",
    [
        ("P<think>\n", "P", "P<think>\n"),
        ("P<think>", "P", "P<think>\n"),
        ("P", "P", "P<think>\n"),
        ("P\n", "P\n", "P\n<think>\n"),
    ],
)
def test_fit_prompt_to_template(text, thinkless, adaptthink):
    assert fit_prompt_to_template(text, TokenizerConfig(template="thinkless")) == thinkless
    assert fit_prompt_to_template(text, TokenizerConfig(template="adaptthink")) == adaptthink
