"""Stand-in model folders of the real R1-Distill-Qwen shapes: config.json only, no weights.

The cluster experiments read their paths from MEGATHINK_MODELS / MEGATHINK_RUNS when composed;
`model_roots` writes every folder they name (the base models and the SFT stages' `sft/hf`) into
a temporary directory and points both variables at it. The planner reads config.json only, so
a command that tried to load weights from these folders would fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

QWEN2 = dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_act="silu", rope_theta=10000.0,
             rms_norm_eps=1e-6, torch_dtype="bfloat16", use_sliding_window=False, max_position_embeddings=131072)
SHAPES = {
    "1.5B": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                 intermediate_size=8960, vocab_size=151936, tie_word_embeddings=False),
    "7B": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
               intermediate_size=18944, vocab_size=152064, tie_word_embeddings=False),
    "14B": dict(hidden_size=5120, num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8,
                intermediate_size=13824, vocab_size=152064, tie_word_embeddings=False, rms_norm_eps=1e-5),
    "32B": dict(hidden_size=5120, num_hidden_layers=64, num_attention_heads=40, num_key_value_heads=8,
                intermediate_size=27648, vocab_size=152064, tie_word_embeddings=False, rms_norm_eps=1e-5),
}
SIZES = {"1.5b": "1.5B", "7b": "7B", "14b": "14B", "32b": "32B"}


def write_config(folder: Path, size: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**QWEN2, **SHAPES[size]}), encoding="utf-8")
    return folder


@pytest.fixture
def model_roots(tmp_path, monkeypatch) -> Path:
    """MEGATHINK_MODELS and MEGATHINK_RUNS with a config.json for every model the experiments name."""
    models, runs = tmp_path / "models", tmp_path / "runs"
    for key, size in SIZES.items():
        write_config(models / f"DeepSeek-R1-Distill-Qwen-{size}", size)
        write_config(runs / f"thinkless_sft_{key}" / "sft" / "hf", size)
    monkeypatch.setenv("MEGATHINK_MODELS", str(models))
    monkeypatch.setenv("MEGATHINK_RUNS", str(runs))
    monkeypatch.setenv("MEGATHINK_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return tmp_path
