"""HFBackend: random Qwen2/Llama builds, save_hf round trips, vocabulary growth, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from megathink.config import ModelConfig, TokenizerConfig
from megathink.data.tokenizer import load_tokenizer
from megathink.data.types import TokenizerBundle
from megathink.models import HFBackend, PolicyBackend, build_hf_backend

SMALL = dict(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)


def _toy_bundle(**tok: object) -> TokenizerBundle:
    return load_tokenizer(TokenizerConfig(**tok))


def _ids(bundle: TokenizerBundle) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, bundle.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding in row 1
    return ids, mask


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_random_build(arch: str) -> None:
    bundle = _toy_bundle()
    backend = build_hf_backend(ModelConfig(arch=arch, **SMALL), bundle, device="cpu", seed=0)
    assert isinstance(backend, PolicyBackend)
    model = backend.model
    assert model.config.model_type == arch
    assert model.get_input_embeddings().num_embeddings == bundle.vocab_size
    assert model.config.eos_token_id == bundle.eos_id and model.config.pad_token_id == bundle.pad_id
    has_bias = model.model.layers[0].self_attn.q_proj.bias is not None
    assert has_bias == (arch == "qwen2")
    ids, mask = _ids(bundle)
    out = backend.logprobs(ids, mask, temperature=0.6)
    assert out.shape == (2, 7) and out.dtype == torch.float32
    assert torch.all(out[:, 0] == 0) and torch.all(out[1, :4] == 0)  # pads and the first real token
    assert torch.all(out[0, 1:] < 0)
    again = build_hf_backend(ModelConfig(arch=arch, **SMALL), bundle, device="cpu", seed=0)
    torch.testing.assert_close(again.logprobs(ids, mask, temperature=0.6), out)


def test_logprobs_match_manual_log_softmax() -> None:
    bundle = _toy_bundle()
    backend = build_hf_backend(ModelConfig(**SMALL), bundle, device="cpu", seed=1)
    ids = torch.randint(0, bundle.vocab_size, (1, 6), generator=torch.Generator().manual_seed(1))
    out = backend.logprobs(ids, torch.ones_like(ids))
    logits = backend.model(input_ids=ids).logits.double()  # [1, 6, V]
    ref = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    torch.testing.assert_close(out[:, 1:].double(), ref, atol=1e-5, rtol=1e-5)


def test_save_hf_round_trip_gives_identical_logits(tmp_path: Path) -> None:
    bundle = _toy_bundle()
    backend = build_hf_backend(ModelConfig(arch="llama", tie_word_embeddings=False, **SMALL), bundle, device="cpu", seed=2)
    out_dir = backend.save_hf(tmp_path / "hf", bundle.tokenizer)
    assert (out_dir / "config.json").is_file() and list(out_dir.glob("*.safetensors"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left
    reloaded_bundle = load_tokenizer(TokenizerConfig(kind="pretrained", path=str(out_dir)))
    assert reloaded_bundle.vocab_size == bundle.vocab_size and not reloaded_bundle.vocab_grew
    assert reloaded_bundle.control == bundle.control
    reloaded = build_hf_backend(ModelConfig(path=str(out_dir)), reloaded_bundle, device="cpu", seed=99)
    ids, mask = _ids(bundle)
    torch.testing.assert_close(reloaded.logprobs(ids, mask), backend.logprobs(ids, mask), atol=0, rtol=0)
    backend.save_hf(out_dir, bundle.tokenizer)  # our own directory may be replaced


def test_save_hf_refuses_foreign_directory(tmp_path: Path) -> None:
    bundle = _toy_bundle()
    backend = build_hf_backend(ModelConfig(**SMALL), bundle, device="cpu", seed=0)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not written by megathink"):
        backend.save_hf(foreign, bundle.tokenizer)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_add_mode_grows_embeddings_with_mean_rows(tmp_path: Path) -> None:
    mapped = _toy_bundle(control_tokens="map", short_token_id=6)  # <|reserved_0|> -> <short>
    assert not mapped.vocab_grew
    base = build_hf_backend(ModelConfig(tie_word_embeddings=False, **SMALL), mapped, device="cpu", seed=3)
    path = base.save_hf(tmp_path / "base", mapped.tokenizer)
    grown = load_tokenizer(TokenizerConfig(kind="pretrained", path=str(path), short_token="<quick>"))
    assert grown.vocab_grew and grown.vocab_size == mapped.vocab_size + 1
    backend = build_hf_backend(ModelConfig(path=str(path)), grown, device="cpu", seed=0)
    for weight in (backend.model.get_input_embeddings().weight, backend.model.get_output_embeddings().weight):
        assert weight.shape[0] == grown.vocab_size
        torch.testing.assert_close(weight[-1], weight[:-1].mean(0))
    old = base.model.get_input_embeddings().weight
    torch.testing.assert_close(backend.model.get_input_embeddings().weight[:-1], old)


def test_pretrained_errors(tmp_path: Path) -> None:
    bundle = _toy_bundle()
    with pytest.raises(FileNotFoundError, match="model.path"):
        build_hf_backend(ModelConfig(path=str(tmp_path / "missing")), bundle, device="cpu", seed=0)
    with pytest.raises(FileNotFoundError, match="config.json"):
        build_hf_backend(ModelConfig(path=str(tmp_path)), bundle, device="cpu", seed=0)
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ValueError, match="'gpt2'"):
        build_hf_backend(ModelConfig(path=str(gpt2)), bundle, device="cpu", seed=0)


def test_foreign_tokenizer_is_refused(tmp_path: Path) -> None:
    mapped = _toy_bundle(control_tokens="map", short_token_id=6)
    path = build_hf_backend(ModelConfig(**SMALL), mapped, device="cpu", seed=0).save_hf(tmp_path / "m", mapped.tokenizer)
    bigger = _toy_bundle()  # 93 tokens against 92 rows
    foreign = TokenizerBundle(
        tokenizer=bigger.tokenizer, control=bigger.control, eos_id=bigger.eos_id, pad_id=bigger.pad_id, vocab_grew=False
    )
    with pytest.raises(ValueError, match="tokenizer.path"):
        build_hf_backend(ModelConfig(path=str(path)), foreign, device="cpu", seed=0)


def test_backend_state_dict_round_trip() -> None:
    bundle = _toy_bundle()
    a = build_hf_backend(ModelConfig(**SMALL), bundle, device="cpu", seed=0)
    b = build_hf_backend(ModelConfig(**SMALL), bundle, device="cpu", seed=1)
    b.load_state_dict(a.state_dict())
    ids, mask = _ids(bundle)
    torch.testing.assert_close(a.logprobs(ids, mask), b.logprobs(ids, mask))
    assert isinstance(a, HFBackend) and sum(1 for _ in a.parameters()) == len(list(a.named_parameters()))


def test_added_token_inside_spare_rows_is_reset_to_the_mean(tmp_path: Path) -> None:
    mapped = _toy_bundle(control_tokens="map", short_token_id=6)
    base = build_hf_backend(ModelConfig(**SMALL), mapped, device="cpu", seed=4)
    base.model.resize_token_embeddings(mapped.vocab_size + 8)  # spare rows, like Qwen2's padded vocab
    path = base.save_hf(tmp_path / "padded", mapped.tokenizer)
    grown = load_tokenizer(TokenizerConfig(kind="pretrained", path=str(path), short_token="<quick>"))
    new_id = grown.control.short
    assert grown.vocab_grew and new_id == mapped.vocab_size
    backend = build_hf_backend(ModelConfig(path=str(path)), grown, device="cpu", seed=0)
    weight = backend.model.get_input_embeddings().weight
    assert weight.shape[0] == mapped.vocab_size + 8  # never shrinks
    torch.testing.assert_close(weight[new_id], weight[:new_id].mean(0))
    torch.testing.assert_close(weight[new_id + 1 :], base.model.get_input_embeddings().weight[new_id + 1 :])
