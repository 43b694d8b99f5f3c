"""Which linear_logprob implementation runs where, and the clear refusal of 'fused'."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from megathink import kernels
from megathink.kernels import dispatch, fused_unavailable_reason, resolve_impl


def test_chunked_and_naive_run_anywhere() -> None:
    for device in ("cpu", "cuda", "meta"):
        assert resolve_impl("chunked", device) == "chunked" and resolve_impl("naive", device) == "naive"


def test_fused_without_cuda_or_interpreter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("triton")
    monkeypatch.setattr(dispatch, "_interpreting", lambda: False)
    reason = fused_unavailable_reason("cpu")
    assert reason is not None and "CUDA" in reason and "TRITON_INTERPRET" in reason
    with pytest.raises(RuntimeError, match="impl='fused' cannot run: .*CUDA"):
        resolve_impl("fused", "cpu")
    assert resolve_impl("auto", "cpu") == "chunked"  # auto falls back, fused never does


def test_fused_without_triton_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real(name, *a))
    assert "'triton' package is not installed" in fused_unavailable_reason("cuda")
    with pytest.raises(RuntimeError, match="triton"):
        resolve_impl("fused", torch.device("cuda"))


def test_package_imports_without_triton_modules() -> None:
    """megathink.kernels itself never imports triton (only linear_logprob_triton does, lazily)."""
    import ast
    import inspect

    for name in ("__init__", "dispatch", "linear_logprob", "linear_logprob_chunked", "linear_logprob_naive", "vocab_parallel",
                 "row_stats", "policy_loss"):
        module = kernels if name == "__init__" else importlib.import_module(f"megathink.kernels.{name}")
        tree = ast.parse(inspect.getsource(module))
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "triton" not in imported, name
