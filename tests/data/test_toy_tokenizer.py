"""The toy character tokenizer: fixed ids, round trips, one-token `\\boxed{`, chat template."""

import string

from megathink.data.toy_tokenizer import (
    BOXED_TOKEN,
    CHARACTERS,
    RESERVED_TOKENS,
    build_arithmetic_tokenizer,
)


def test_ids_are_deterministic():
    first, second = build_arithmetic_tokenizer(), build_arithmetic_tokenizer()
    assert first.get_vocab() == second.get_vocab()
    assert len(first) == len(set(first.get_vocab().values()))


def test_every_character_is_one_token_and_round_trips():
    tok = build_arithmetic_tokenizer()
    text = CHARACTERS
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    for needed in string.digits + "+-*=,;:.()<>/|_ \n{}" + string.ascii_letters:
        assert needed in CHARACTERS


def test_boxed_is_one_token_and_specials_are_single_ids():
    tok = build_arithmetic_tokenizer()
    ids = tok.encode("\\boxed{605}</think><think><|endoftext|>", add_special_tokens=False)
    assert tok.convert_ids_to_tokens(ids) == [BOXED_TOKEN, "6", "0", "5", "}", "</think>", "<think>", "<|endoftext|>"]
    assert tok.decode(ids) == "\\boxed{605}</think><think><|endoftext|>"
    for reserved in RESERVED_TOKENS:
        assert len(tok.encode(reserved, add_special_tokens=False)) == 1


def test_eos_pad_and_no_short_token():
    tok = build_arithmetic_tokenizer()
    assert tok.eos_token == "<|endoftext|>"
    assert tok.pad_token_id == tok.eos_token_id
    assert "<short>" not in tok.get_vocab()
    assert tok.encode("12", add_special_tokens=False) == tok.encode("12")  # no BOS/EOS added


def test_chat_template_user_system_and_generation_prompt():
    tok = build_arithmetic_tokenizer()
    user = [{"role": "user", "content": "3+4="}]
    assert tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True) == "<|user|>3+4=<|assistant|>"
    assert tok.apply_chat_template(user, tokenize=False, add_generation_prompt=False) == "<|user|>3+4="
    with_system = [{"role": "system", "content": "Be brief."}] + user
    rendered = tok.apply_chat_template(with_system, tokenize=False, add_generation_prompt=True)
    assert rendered == "Be brief.\n<|user|>3+4=<|assistant|>"


def test_saved_with_a_qwen2_model_the_tokenizer_reloads_with_the_same_ids(tmp_path):
    """A toy model's HF dir (qwen2 config.json + the toy tokenizer) must encode exactly as the
    tokenizer it was trained with: AutoTokenizer alone would pick Qwen2Tokenizer, whose
    rebuilt pre-tokenizer drops the newline after <think> that AdaptThink prompts end with."""
    from megathink.config import ModelConfig, TokenizerConfig
    from megathink.data.chat_template import encode_prompt
    from megathink.data.tokenizer import load_tokenizer
    from megathink.models import build_hf_backend

    cfg = TokenizerConfig(template="adaptthink")
    built = load_tokenizer(cfg)
    small = ModelConfig(hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=32)
    backend = build_hf_backend(small, built, device="cpu", seed=0)
    directory = backend.save_hf(tmp_path / "hf", built.tokenizer)
    loaded = load_tokenizer(TokenizerConfig(kind="pretrained", path=str(directory), template="adaptthink"))
    text = "Alright 12+34=\n</think>\\boxed{46}<think>\n"
    assert loaded.tokenizer.encode(text, add_special_tokens=False) == built.tokenizer.encode(text, add_special_tokens=False)
    assert encode_prompt(loaded, "12+34=", cfg) == encode_prompt(built, "12+34=", cfg)
    assert encode_prompt(loaded, "12+34=", cfg)[-1] == built.tokenizer.convert_tokens_to_ids("\n")
