"""Control tokens added as new special tokens or mapped onto a reserved id, on both tokenizers."""

import json
import os

import pytest
from transformers import AutoTokenizer

from megathink_fixtures.r1_tokenizer import build_r1_style_tokenizer_dir, r1_reserved_token_id, r1_token_id
from megathink.config import TokenizerConfig
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_tokenizer import build_arithmetic_tokenizer


@pytest.fixture(scope="module")
def r1_dir(tmp_path_factory):
    return build_r1_style_tokenizer_dir(str(tmp_path_factory.mktemp("r1")))


def toy_reserved_id() -> int:
    return build_arithmetic_tokenizer().convert_tokens_to_ids("<|reserved_0|>")


def configs(r1_dir):
    """(name, add config, map config, base vocabulary size) for both tokenizers."""
    toy_size = len(build_arithmetic_tokenizer())
    r1_size = len(AutoTokenizer.from_pretrained(r1_dir, local_files_only=True))
    return [
        ("toy", TokenizerConfig(), TokenizerConfig(control_tokens="map", short_token_id=toy_reserved_id()), toy_size),
        (
            "r1",
            TokenizerConfig(kind="pretrained", path=r1_dir),
            TokenizerConfig(
                kind="pretrained", path=r1_dir, control_tokens="map", short_token_id=r1_reserved_token_id()
            ),
            r1_size,
        ),
    ]


def check_roundtrip(tokenizer, token_id):
    assert tokenizer.convert_tokens_to_ids("<short>") == token_id
    assert tokenizer.encode("<short>", add_special_tokens=False) == [token_id]
    ids = tokenizer.encode("<short>12<think>", add_special_tokens=False)
    assert ids[0] == token_id
    assert tokenizer.decode(ids) == "<short>12<think>"


def test_add_grows_vocab_by_one_and_reuses_existing_think_tokens(r1_dir):
    for _, add_cfg, _, base_size in configs(r1_dir):
        bundle = load_tokenizer(add_cfg)
        assert bundle.vocab_grew
        assert bundle.vocab_size == base_size + 1
        assert bundle.control.short == base_size  # appended at the end
        tok = bundle.tokenizer
        assert bundle.control.think == tok.convert_tokens_to_ids("<think>") < base_size
        assert bundle.control.end_think == tok.convert_tokens_to_ids("</think>") < base_size
        check_roundtrip(tok, bundle.control.short)
    assert load_tokenizer(configs(r1_dir)[1][1]).control.think == r1_token_id("<think>")


def test_add_with_all_tokens_present_does_not_grow():
    cfg = TokenizerConfig(short_token="<|reserved_1|>")
    bundle = load_tokenizer(cfg)
    assert not bundle.vocab_grew
    assert bundle.vocab_size == len(build_arithmetic_tokenizer())


def test_add_new_think_tokens_when_missing():
    cfg = TokenizerConfig(think_token="<reason>", end_think_token="</reason>")
    bundle = load_tokenizer(cfg)
    base = len(build_arithmetic_tokenizer())
    assert bundle.vocab_size == base + 3
    assert sorted([bundle.control.short, bundle.control.think, bundle.control.end_think]) == [base, base + 1, base + 2]


def test_map_keeps_vocab_size_and_renames_reserved_id(r1_dir):
    for name, _, map_cfg, base_size in configs(r1_dir):
        bundle = load_tokenizer(map_cfg)
        assert not bundle.vocab_grew, name
        assert bundle.vocab_size == base_size, name
        assert bundle.control.short == map_cfg.short_token_id
        check_roundtrip(bundle.tokenizer, map_cfg.short_token_id)
        assert bundle.tokenizer.chat_template
        assert bundle.eos_id == bundle.tokenizer.eos_token_id and bundle.pad_id == bundle.tokenizer.pad_token_id


def test_map_renames_model_vocab_entry_too():
    bundle = load_tokenizer(TokenizerConfig(control_tokens="map", short_token_id=toy_reserved_id()))
    model_vocab = json.loads(bundle.tokenizer.backend_tokenizer.to_str())["model"]["vocab"]
    assert model_vocab["<short>"] == toy_reserved_id()
    assert "<|reserved_0|>" not in model_vocab


def test_map_keeps_bos_of_r1(r1_dir):
    bundle = load_tokenizer(configs(r1_dir)[1][2])
    assert bundle.tokenizer.bos_token_id == r1_token_id("<｜begin▁of▁sentence｜>")
    assert bundle.eos_id == r1_token_id("<｜end▁of▁sentence｜>") == bundle.pad_id


@pytest.mark.parametrize("mode", ["add", "map"])
def test_save_and_reload_keeps_control_tokens(r1_dir, tmp_path, mode):
    for name, add_cfg, map_cfg, _ in configs(r1_dir):
        cfg = add_cfg if mode == "add" else map_cfg
        bundle = load_tokenizer(cfg)
        out = tmp_path / f"{name}-{mode}"
        bundle.tokenizer.save_pretrained(str(out))
        again = load_tokenizer(
            TokenizerConfig(
                kind="pretrained", path=str(out), control_tokens=mode, short_token_id=cfg.short_token_id
            )
        )
        assert again.control == bundle.control
        assert again.vocab_size == bundle.vocab_size
        assert not again.vocab_grew
        check_roundtrip(again.tokenizer, bundle.control.short)
        assert again.tokenizer.chat_template == bundle.tokenizer.chat_template


def test_map_errors_name_the_field(r1_dir):
    size = len(build_arithmetic_tokenizer())
    with pytest.raises(ValueError, match="tokenizer.short_token_id = .* out of range"):
        load_tokenizer(TokenizerConfig(control_tokens="map", short_token_id=size))
    think_id = build_arithmetic_tokenizer().convert_tokens_to_ids("<think>")
    with pytest.raises(ValueError, match="is the control token '<think>'"):
        load_tokenizer(TokenizerConfig(control_tokens="map", short_token_id=think_id))
    with pytest.raises(ValueError, match="eos_token"):
        load_tokenizer(TokenizerConfig(control_tokens="map", short_token_id=0))
    with pytest.raises(ValueError, match="control_tokens=add"):
        load_tokenizer(TokenizerConfig(control_tokens="map", short_token_id=toy_reserved_id(), think_token="<reason>"))
    with pytest.raises(ValueError, match="already exists"):
        load_tokenizer(
            TokenizerConfig(control_tokens="map", short_token_id=toy_reserved_id(), short_token="<|reserved_1|>")
        )


def test_pretrained_path_errors(tmp_path, r1_dir):
    with pytest.raises(ValueError, match="tokenizer.path is unset"):
        load_tokenizer(TokenizerConfig(kind="pretrained"))
    with pytest.raises(FileNotFoundError, match="tokenizer.path"):
        load_tokenizer(TokenizerConfig(kind="pretrained", path=str(tmp_path / "missing")))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.path = .*could not be read"):
        load_tokenizer(TokenizerConfig(kind="pretrained", path=str(broken)))
    bare = os.path.join(r1_dir, "tokenizer.json")  # a bare tokenizer.json cannot name its EOS
    with pytest.raises(ValueError, match="no EOS token"):
        load_tokenizer(TokenizerConfig(kind="pretrained", path=bare))


def test_pad_falls_back_to_eos(tmp_path):
    tok = build_arithmetic_tokenizer()
    tok.pad_token = None
    tok.save_pretrained(str(tmp_path))
    config_path = tmp_path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("pad_token", None)
    config_path.write_text(json.dumps(config))
    bundle = load_tokenizer(TokenizerConfig(kind="pretrained", path=str(tmp_path)))
    assert bundle.pad_id == bundle.eos_id == tok.eos_token_id
