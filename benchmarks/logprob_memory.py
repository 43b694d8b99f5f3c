"""Per-token log-probs from hidden states on CPU: naive full logits against the chunked path.

What is measured. One forward + backward of `logp = log_softmax(h W^T)[y]` with a random
per-token upstream gradient (`(logp * g).sum().backward()`), fp32, hidden [N, H], lm_head
weight [V, H] and both requiring grad, no temperature (T = 1), no ignored targets:

- naive:   `megathink.kernels.naive_linear_logprob`, the standard torch way: the lm_head matmul
           into full `[N, V]` logits, `log_softmax`, `gather` (no division at T = 1); autograd
           keeps the `[N, V]` tensors for the backward.
- chunked: `megathink.kernels.linear_logprob(impl="chunked")`: the forward takes the lm_head
           matmul a chunk of tokens at a time (default chunk: 256 MiB of fp32 logits), the
           backward recomputes the logits one vocabulary tile at a time in a buffer of the same
           size.

Each (implementation, N) runs alone in a fresh child process (the parent imports only the
standard library, so nothing of it counts in the children's high-water marks). The child
builds the inputs, runs one tiny warm-up call (N = 8) so BLAS and thread start-up are not
timed, then times --repeat forward + backward calls (the fastest is reported: on a shared
machine it is the least disturbed one). Reported per case: wall time, peak RSS of the child
(`getrusage(RUSAGE_SELF).ru_maxrss`, inputs and imports included), RSS just before the first
call (inputs allocated) and their difference, the op's own working set ("peak above inputs",
which includes the gradients it returns: grad_W alone is V H 4 bytes), and the 1-minute load
average before and after the case. With --profile the child also runs one call under
`torch.profiler` and prints where the time goes: the lm_head-sized matmuls (`aten::mm`,
`aten::addmm_`) against everything else.

The naive path needs about 3 N V 4 bytes at its peak, ~29 GB at N = 16384, V = 151936: more
than a 24 GiB machine has. So the naive big case is *computed*, not measured: naive is
measured at the --naive-n sizes (default 2048 and 4096) and its peak-above-inputs and time,
both linear in N, are extrapolated from those two points to --big-n. The chunked path is
measured at every size, the big one included. A case that would not fit in the available
memory (less --headroom-gib), or that needs more than 8 GiB while less than 16 GiB are
available, is skipped with a note.

Command (from the repository root; ~15 minutes on 2 cores):

    python benchmarks/logprob_memory.py                  # N in {2048, 4096} both, 16384 chunked
    python benchmarks/logprob_memory.py --naive-n 512 1024 --big-n 4096 --hidden 256 --vocab 32000  # quick
    python benchmarks/logprob_memory.py --big-n 0 --repeat 3 --profile   # the small cases, with breakdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

GIB = 1024**3


def _child(impl: str, n: int, args: argparse.Namespace) -> None:
    import resource

    import torch

    from megathink.kernels import linear_logprob, naive_linear_logprob

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def call(h: torch.Tensor, w: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> None:
        h.grad = w.grad = None
        if impl == "naive":
            logp = naive_linear_logprob(h, w, y)
        else:
            logp = linear_logprob(h, w, y, impl="chunked", chunk_tokens=args.chunk_tokens or None)
        (logp * g).sum().backward()

    def inputs(rows: int) -> tuple[torch.Tensor, ...]:
        h = torch.randn(rows, args.hidden).requires_grad_(True)
        w = (torch.randn(args.vocab, args.hidden) / args.hidden**0.5).requires_grad_(True)
        return h, w, torch.randint(0, args.vocab, (rows,)), torch.randn(rows)

    call(*inputs(8))  # warm-up: BLAS and threads
    h, w, y, g = inputs(n)
    before = _rss_bytes()
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        call(h, w, y, g)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    assert torch.isfinite(h.grad).all() and torch.isfinite(w.grad).all()
    result = {"seconds": min(times), "times": times, "peak": peak, "before": before}
    if args.profile:
        result["ops"] = _profile(lambda: call(h, w, y, g))
    print(json.dumps(result))


MATMULS = ("aten::mm", "aten::addmm", "aten::addmm_")


def _profile(fn) -> dict:
    """Self time (s) of the matmuls and of everything else in one call, by torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    ops: dict[str, float] = {}
    calls = 0
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6
        if event.key in MATMULS:
            calls += event.count
        key = "matmul" if event.key in MATMULS else event.key
        ops[key] = ops.get(key, 0.0) + seconds
    total = sum(ops.values())
    top = sorted(((v, k) for k, v in ops.items() if k != "matmul"), reverse=True)[:4]
    return {"total": total, "matmul": ops.get("matmul", 0.0), "matmul_calls": calls,
            "other": total - ops.get("matmul", 0.0), "top_other": [[k, v] for v, k in top]}


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _estimate(impl: str, n: int, hidden: int, vocab: int, chunk_tokens: int) -> int:
    """Rough bytes a case needs (inputs, grads, logits buffers), to skip what cannot fit. naive:
    three fp32 [N, V] buffers at its peak (the measured slope, see RESULTS.md) and 10% slack."""
    fixed = 2 * 4 * vocab * hidden + 2 * 4 * n * hidden + GIB
    if impl == "naive":
        return fixed + int(3.3 * 4 * n * vocab)
    chunk = chunk_tokens or max(1, (1 << 28) // (4 * vocab))
    return fixed + 3 * 4 * min(chunk, n) * vocab


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _run(args: argparse.Namespace, impl: str, n: int) -> dict | None:
    need, free = _estimate(impl, n, args.hidden, args.vocab, args.chunk_tokens), _available_bytes()
    if need > free - args.headroom_gib * GIB or (need > 8 * GIB and free < 16 * GIB):
        print(f"  skip {impl} N={n}: needs ~{need / GIB:.1f} GiB, {free / GIB:.1f} GiB available", flush=True)
        return None
    cmd = [sys.executable, __file__, "--child", impl, str(n), "--hidden", str(args.hidden), "--vocab", str(args.vocab),
           "--threads", str(args.threads), "--chunk-tokens", str(args.chunk_tokens), "--repeat", str(args.repeat)]
    cmd += ["--profile"] if args.profile else []
    print(f"  running {impl} N={n} (load {_load():.2f}) ...", flush=True)
    load_before = _load()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["above"] = result["peak"] - result["before"]
    result["load"] = (load_before, _load())
    times = ", ".join(f"{t:.1f}" for t in result["times"])
    print(f"    {result['seconds']:.1f} s (calls: {times}), peak {result['peak'] / GIB:.2f} GiB, "
          f"load {result['load'][0]:.2f} -> {result['load'][1]:.2f}", flush=True)
    if "ops" in result:
        ops, flops = result["ops"], 2 * n * args.hidden * args.vocab
        top = ", ".join(f"{k} {v:.2f}" for k, v in ops["top_other"])
        print(f"    profiled call: {ops['total']:.1f} s = matmuls {ops['matmul']:.1f} s ({ops['matmul_calls']} calls, "
              f"{ops['matmul'] / (ops['total'] or 1):.0%}; {flops / 1e9:.0f} GFLOP per lm_head-sized matmul) + "
              f"other {ops['other']:.2f} s ({top})", flush=True)
    return result


def _line(label: str, naive: str, chunked: str, ratio: str) -> str:
    return f"{label:<34}{naive:>12}{chunked:>12}{ratio:>10}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--hidden", type=int, default=1536)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--naive-n", type=int, nargs=2, default=[2048, 4096], help="sizes measured on both paths")
    parser.add_argument("--big-n", type=int, default=16384, help="measured chunked; naive extrapolated (0: skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk-tokens", type=int, default=0, help="0: the chunked path's default")
    parser.add_argument("--headroom-gib", type=float, default=4.0, help="free memory to leave to the rest")
    parser.add_argument("--repeat", type=int, default=1, help="timed calls per case; the fastest is reported")
    parser.add_argument("--profile", action="store_true", help="one more call per case under torch.profiler")
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]), args)
        return

    print(f"logprob memory benchmark: H={args.hidden} V={args.vocab} fp32, {args.threads} threads, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}")
    measured: dict[tuple[str, int], dict] = {}
    for n in args.naive_n:
        for impl in ("naive", "chunked"):
            result = _run(args, impl, n)
            if result:
                measured[impl, n] = result
    big = _run(args, "chunked", args.big_n) if args.big_n else None

    print()
    print(_line("", "naive", "chunked", "ratio"))
    print("(time ratio = chunked / naive, target <= 1.2; memory ratios = naive / chunked, target >= 10)")
    for n in args.naive_n:
        naive, chunked = measured.get(("naive", n)), measured.get(("chunked", n))
        if not (naive and chunked):
            continue
        print(f"N = {n} (both measured)")
        print(_line("  time fwd+bwd (s)", f"{naive['seconds']:.1f}", f"{chunked['seconds']:.1f}",
                    f"{chunked['seconds'] / naive['seconds']:.2f}"))
        for key, label in (("peak", "  peak RSS (GiB)"), ("above", "  peak above inputs (GiB)")):
            print(_line(label, f"{naive[key] / GIB:.2f}", f"{chunked[key] / GIB:.2f}", f"{naive[key] / chunked[key]:.1f}"))
    (n1, n2) = args.naive_n
    if big and ("naive", n1) in measured and ("naive", n2) in measured:
        a, b = measured["naive", n1], measured["naive", n2]

        def extrapolate(key: str) -> float:
            slope = (b[key] - a[key]) / (n2 - n1)
            return b[key] + slope * (args.big_n - n2)

        naive_above = extrapolate("above")
        naive_time = extrapolate("seconds")
        naive_peak = big["before"] + naive_above
        print(f"N = {args.big_n} (chunked measured; naive COMPUTED by linear extrapolation from N = {n1}, {n2})")
        print(_line("  time fwd+bwd (s)", f"~{naive_time:.1f}", f"{big['seconds']:.1f}", f"{big['seconds'] / naive_time:.2f}"))
        print(_line("  peak RSS (GiB)", f"~{naive_peak / GIB:.1f}", f"{big['peak'] / GIB:.2f}", f"{naive_peak / big['peak']:.1f}"))
        print(_line("  peak above inputs (GiB)", f"~{naive_above / GIB:.1f}", f"{big['above'] / GIB:.2f}",
                    f"{naive_above / big['above']:.1f}"))
        per_token = (b["above"] - a["above"]) / (n2 - n1)
        print(f"  naive: {per_token / (4 * args.vocab):.2f} fp32 [N, V] buffers alive at its peak (measured slope)")
    elif big:
        print(f"N = {args.big_n}: chunked {big['seconds']:.1f} s, peak {big['peak'] / GIB:.2f} GiB "
              f"(above inputs {big['above'] / GIB:.2f} GiB); naive not measured at two sizes, no extrapolation")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
