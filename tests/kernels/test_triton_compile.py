"""The fused kernels compile for an H100 (sm_90) with Triton's bundled ptxas, no GPU needed,
and fit in the register file without spilling (cuobjdump's STACK:0), for bf16 and fp32.

Runs in a child process without TRITON_INTERPRET (this process built interpreted kernels).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")

CHILD = r'''
import os, subprocess, sys, tempfile
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import megathink.kernels.linear_logprob_triton as m

assert not m.INTERPRETING
tools = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
COMMON = dict(n_rows="i32", vocab="i32", hidden="i32", vocab_start="i32", temperature="fp32", stride_h="i32", stride_w="i32")
for dtype in ("bf16", "fp32"):
    stats = dict(h_ptr=f"*{dtype}", w_ptr=f"*{dtype}", y_ptr="*i64", lse_ptr="*fp32", mu_ptr="*fp32", picked_ptr="*fp32",
                 split_cols="i32", **COMMON)
    grads = dict(h_ptr=f"*{dtype}", w_ptr=f"*{dtype}", y_ptr="*i64", lse_ptr="*fp32", ent_ptr="*fp32", g_ptr="*fp32",
                 ge_ptr="*fp32", out_ptr=f"*{dtype}", stride_out="i32", **COMMON)
    precision = "ieee" if dtype == "fp32" else None
    for name, fn, sig, extra in (("row_stats", m._row_stats_kernel, stats, {}),
                                 ("dlogits", m._dlogits_kernel, grads, {"GROUP_N": 8})):
        blocks = dict(m.GPU_BLOCKS[name])
        options = dict(num_warps=blocks.pop("num_warps"), num_stages=blocks.pop("num_stages"))
        consts = dict(blocks, ENTROPY=True, DOT_FP32=False, PRECISION=precision, **extra)
        ordered = {a: sig.get(a, "constexpr") for a in fn.arg_names}
        kernel = triton.compile(ASTSource(fn=fn, signature=ordered, constexprs=consts),
                                target=GPUTarget("cuda", 90, 32), options=options)
        with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
            f.write(kernel.asm["cubin"]); f.flush()
            usage = subprocess.run([os.path.join(tools, "cuobjdump"), "--dump-resource-usage", f.name],
                                   capture_output=True, text=True, check=True).stdout
        line = next(l for l in usage.splitlines() if "REG:" in l).strip()
        print(dtype, name, line)
        if dtype == "bf16":
            assert "STACK:0 " in line, (name, line)
'''


def test_kernels_compile_for_sm90_without_spills() -> None:
    tools = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    if not (tools / "ptxas").exists() or not (tools / "cuobjdump").exists():
        pytest.skip("this triton build ships no ptxas/cuobjdump")
    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_DEFAULT_FP_FUSION="1")
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("REG:") == 4, out.stdout
