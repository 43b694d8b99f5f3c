"""Per-token log-probs from hidden states on one GPU: fused Triton vs chunked torch vs naive.

What is measured. For bf16 hidden [N, H] and lm_head weight [V, H] (both requiring grad),
one forward + backward of the per-token log-probs with a random per-token upstream gradient
(`(logp * g).sum().backward()`, as an RL loss does), for N in --n (default 8192, 32768),
H in --hidden (default 1536, 3584: Qwen2.5-1.5B and -7B), V = --vocab (151936):

- fused:   `megathink.kernels.linear_logprob(impl="fused")` (Triton; needs the triton package);
- chunked: `linear_logprob(impl="chunked")` (torch, cuBLAS matmuls a chunk of tokens at a time);
- naive:   `naive_linear_logprob` (full logits, log_softmax, gather); "OOM" when it does not fit;
- liger:   Liger-Kernel's `LigerFusedLinearCrossEntropyLoss(reduction="sum")` when
           `liger_kernel` imports (a different op: one scalar loss, so its gradients are taken
           in the forward with 6 N H V flops; listed as a reference point).

Reported per case: median time of --repeats calls after --warmup calls (CUDA events), peak
memory above the inputs (`torch.cuda.max_memory_allocated` after a reset, minus what was
allocated before the call), and the achieved TFLOP/s counting 8 N H V flops (logits in the
forward, logits again plus the two gradient matmuls in the backward; liger: 6 N H V) as a
fraction of the measured bf16 matmul rate (`torch.mm` of [N, H] x [H, V], same shapes).
Target: fused >= 70 % of the matmul rate. Before timing, fused is checked against chunked on
the same inputs (max |logp difference| is printed).

Without CUDA the script prints that nothing was measured and exits 0.

Command (from the repository root, on a machine with a GPU):

    python benchmarks/logprob_gpu.py
    python benchmarks/logprob_gpu.py --n 8192 --hidden 1536 --impls fused chunked   # one shape
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import torch

GIB = 1024**3
IMPLS = ("fused", "chunked", "naive", "liger")


def _call(impl: str, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, grad: torch.Tensor) -> None:
    from megathink.kernels import linear_logprob, naive_linear_logprob

    if impl == "liger":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        loss = LigerFusedLinearCrossEntropyLoss(reduction="sum")(weight, hidden, targets)
        (loss[0] if isinstance(loss, tuple) else loss).backward()
        return
    if impl == "naive":
        logp = naive_linear_logprob(hidden, weight, targets)
    else:
        logp = linear_logprob(hidden, weight, targets, impl=impl)
    (logp * grad).sum().backward()


def _matmul_tflops(n: int, h: int, v: int, repeats: int) -> float:
    a = torch.randn(n, h, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(v, h, device="cuda", dtype=torch.bfloat16)
    for _ in range(2):
        torch.mm(a, b.t())
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.mm(a, b.t())
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return 2 * n * h * v / statistics.median(times) / 1e12


def _measure(impl: str, n: int, h: int, v: int, warmup: int, repeats: int) -> dict:
    gen = torch.Generator(device="cuda").manual_seed(0)
    hidden = torch.randn(n, h, device="cuda", dtype=torch.bfloat16, generator=gen).requires_grad_(True)
    weight = (torch.randn(v, h, device="cuda", dtype=torch.bfloat16, generator=gen) / h**0.5).requires_grad_(True)
    targets = torch.randint(0, v, (n,), device="cuda", generator=gen)
    grad = torch.randn(n, device="cuda", generator=gen)
    try:
        for _ in range(warmup):
            _call(impl, hidden, weight, targets, grad)
            hidden.grad = weight.grad = None
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(repeats):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            _call(impl, hidden, weight, targets, grad)
            stop.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(stop) / 1e3)
            hidden.grad = weight.grad = None
        peak = torch.cuda.max_memory_allocated() - base
        return {"seconds": statistics.median(times), "peak": peak}
    except torch.cuda.OutOfMemoryError:
        return {"oom": True}
    finally:
        del hidden, weight, targets, grad
        torch.cuda.empty_cache()


def _check(n: int, h: int, v: int) -> float:
    """max |fused - chunked| of the log-probs on one random problem of this shape."""
    from megathink.kernels import linear_logprob

    gen = torch.Generator(device="cuda").manual_seed(1)
    hidden = torch.randn(min(n, 4096), h, device="cuda", dtype=torch.bfloat16, generator=gen)
    weight = torch.randn(v, h, device="cuda", dtype=torch.bfloat16, generator=gen) / h**0.5
    targets = torch.randint(0, v, (hidden.shape[0],), device="cuda", generator=gen)
    with torch.no_grad():
        fused = linear_logprob(hidden, weight, targets, impl="fused")
        chunked = linear_logprob(hidden, weight, targets, impl="chunked")
    return float((fused - chunked).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[8192, 32768])
    parser.add_argument("--hidden", type=int, nargs="+", default=[1536, 3584])
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("logprob_gpu: CUDA is not available on this machine; this benchmark needs a GPU. Nothing was measured.")
        return
    impls = list(args.impls)
    if "fused" in impls and importlib.util.find_spec("triton") is None:
        print("logprob_gpu: triton is not installed: skipping 'fused'.")
        impls.remove("fused")
    if "liger" in impls and importlib.util.find_spec("liger_kernel") is None:
        print("logprob_gpu: liger_kernel is not installed: skipping 'liger'.")
        impls.remove("liger")

    props = torch.cuda.get_device_properties(0)
    print(f"logprob GPU benchmark: {props.name}, {props.total_memory / GIB:.0f} GiB, torch {torch.__version__}, "
          f"bf16, V={args.vocab}, median of {args.repeats} after {args.warmup} warm-up calls")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    header = f"{'N':>6} {'H':>5} {'impl':>8} {'time (ms)':>10} {'peak (GiB)':>11} {'TFLOP/s':>8} {'of matmul':>10}"
    for h in args.hidden:
        for n in args.n:
            rate = _matmul_tflops(n, h, args.vocab, args.repeats)
            note = f"; fused vs chunked max |dlogp| = {_check(n, h, args.vocab):.2e}" if "fused" in impls else ""
            print(f"\nN={n} H={h}: bf16 matmul [N, H] x [H, V] runs at {rate:.0f} TFLOP/s{note}")
            print(header)
            for impl in impls:
                result = _measure(impl, n, h, args.vocab, args.warmup, args.repeats)
                if result.get("oom"):
                    print(f"{n:>6} {h:>5} {impl:>8} {'OOM':>10}")
                    continue
                flops = (6 if impl == "liger" else 8) * n * h * args.vocab
                achieved = flops / result["seconds"] / 1e12
                print(f"{n:>6} {h:>5} {impl:>8} {result['seconds'] * 1e3:>10.1f} {result['peak'] / GIB:>11.2f} "
                      f"{achieved:>8.0f} {achieved / rate:>9.0%}")


if __name__ == "__main__":
    main()
