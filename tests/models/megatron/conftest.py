"""Shared helpers of the megatron tests: tiny HF checkpoints and torchrun launches.

The HF folders are random Qwen2 (untied, qkv bias, GQA) and Llama (tied, no bias, another
RoPE theta) models small enough that a 2-process gloo run takes seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("megatron.core", reason="megatron-core is not installed (pip install -e '.[megatron]')")

HERE = Path(__file__).parent


def make_hf_dir(kind: str, out: Path, *, layers: int = 2) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    common = dict(vocab_size=93, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2)
    if kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(tie_word_embeddings=False, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=True, rope_theta=500000.0, **common))
    with torch.no_grad():  # peaked attention, so a wrong RoPE or head layout cannot hide
        for name, param in model.named_parameters():
            if "q_proj" in name or "k_proj" in name:
                param.mul_(30)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def hf_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {kind: make_hf_dir(kind, root / kind) for kind in ("qwen2", "llama")}


@pytest.fixture(scope="session")
def hf_dirs_4_layers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same kinds with 4 layers: enough for pp=2 x vpp=2 interleaving."""
    root = tmp_path_factory.mktemp("hf4")
    return {kind: make_hf_dir(kind, root / kind, layers=4) for kind in ("qwen2", "llama")}


def torchrun(script: str, nproc: int, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `script` (a file next to this one) under torchrun on `nproc` CPU processes."""
    from megathink.models.megatron.distributed import free_port

    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
        "--master-port", str(free_port()), str(HERE / script), *args,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
