"""`megathink convert` both ways as users run it: HF -> megatron(TP=2) -> HF is bit-exact, the
exported folder loads in transformers with the same logits, and a checkpoint saved at TP=2
loads at PP=2 (resharding). Real dist_checkpointing on gloo processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import read_json, torchrun

pytestmark = [pytest.mark.megatron, pytest.mark.slow]


def convert(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "megathink.launch.cli", "convert", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def tp2_checkpoint(hf_dirs, tmp_path_factory):
    """`kind -> hf_dirs[kind]` converted by `megathink convert hf-to-megatron --tp 2`, once per kind
    for the whole module (read-only)."""
    converted: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in converted:
            ckpt = tmp_path_factory.mktemp(f"tp2_{kind}") / "mc"
            result = convert("hf-to-megatron", "--hf-dir", str(hf_dirs[kind]), "--out", str(ckpt), "--tp", "2")
            assert result.returncode == 0, result.stderr[-4000:]
            converted[kind] = ckpt
        return converted[kind]

    return get


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_hf_to_megatron_tp2_to_hf_is_bit_exact(hf_dirs, tp2_checkpoint, tmp_path, kind) -> None:
    ckpt, back = tp2_checkpoint(kind), tmp_path / "hf_back"
    assert (ckpt / "megathink_model.json").is_file() and not list(ckpt.parent.glob(".mc.tmp*"))
    result = convert("megatron-to-hf", "--ckpt", str(ckpt), "--out", str(back))
    assert result.returncode == 0, result.stderr[-4000:]
    original, exported = _tensors(hf_dirs[kind]), _tensors(back)
    assert set(exported) == set(original)
    for name, tensor in original.items():
        assert torch.equal(exported[name], tensor), name
    from transformers import AutoModelForCausalLM

    ids = torch.arange(10)[None]
    with torch.no_grad():
        want = AutoModelForCausalLM.from_pretrained(hf_dirs[kind]).eval()(input_ids=ids).logits
        got = AutoModelForCausalLM.from_pretrained(back).eval()(input_ids=ids).logits
    assert torch.equal(got, want)


def test_checkpoint_saved_at_tp2_loads_at_pp2(hf_dirs, tp2_checkpoint, tmp_path) -> None:
    ckpt = tp2_checkpoint("qwen2")
    out = tmp_path / "parity.json"
    torchrun("reshard_worker.py", 2, str(hf_dirs["qwen2"]), str(ckpt), "1", "2", str(out))
    assert read_json(out)["logits"] < 1e-5


def test_checkpoint_saved_interleaved_loads_at_tp2_and_back(hf_dirs_4_layers, tmp_path) -> None:
    """A checkpoint written at PP=2 x VPP=2 (model chunks saved with global layer numbers) loads
    at TP=2, and one written at TP=2 loads interleaved."""
    hf = hf_dirs_4_layers["llama"]
    ckpt = tmp_path / "mc"
    assert convert("hf-to-megatron", "--hf-dir", str(hf), "--out", str(ckpt), "--tp", "2").returncode == 0
    out = tmp_path / "interleaved.json"
    torchrun("reshard_worker.py", 2, str(hf), str(ckpt), "1", "2", str(out), "vpp=2", "save=" + str(tmp_path / "mc_vpp"))
    assert read_json(out)["logits"] < 1e-5
    out = tmp_path / "tp2.json"
    torchrun("reshard_worker.py", 2, str(hf), str(tmp_path / "mc_vpp"), "2", "1", str(out))
    assert read_json(out)["logits"] < 1e-5


def test_bad_input_is_one_line_exit_2(hf_dirs, tmp_path) -> None:
    result = convert("hf-to-megatron", "--hf-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "has no config.json" in result.stderr and "Traceback" not in result.stderr
    result = convert("hf-to-megatron", "--hf-dir", str(hf_dirs["qwen2"]), "--out", str(tmp_path / "o"), "--tp", "3")
    assert result.returncode == 2 and "parallel.tp = 3" in result.stderr
    result = convert("megatron-to-hf", "--ckpt", str(hf_dirs["qwen2"]), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "megathink_model.json" in result.stderr
