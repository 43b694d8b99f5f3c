"""The one-screen plan `megathink plan` prints (and `megathink train` when it refuses a layout).

For each stage: the micro-batch, a table of the worst rank's memory by component (GiB) in
each phase of the step, the other rank's peak when pp > 1, and the step-time estimate; then
the GPU assumed and a last line saying whether the run fits, followed (when it does not) by
the knobs that would make it fit, each re-planned.
"""

from __future__ import annotations

from collections.abc import Sequence

from megathink.planning.knobs import Knob
from megathink.planning.memory import COMPONENTS, GIB
from megathink.planning.planner import RunPlan


def format_plan(plan: RunPlan, knobs: Sequence[Knob] = (), *, source: str = "") -> str:
    cfg, layout = plan.cfg, plan.layout
    lines = [f"model:   {plan.shape.describe()}" + (f" ({source})" if source else "")]
    lines.append(f"layout:  {layout.describe()}")
    for result in plan.stages:
        stage, time = result.memory, result.time
        rank, peak = stage.worst
        lines.append("")
        head = f"{stage.stage} stage"
        if stage.work.largest is not None:
            head += (f": largest micro-batch {stage.work.largest.describe()}, {stage.work.micro_batches} per "
                     f"replica per optimizer step")
        lines.append(head)
        names = [p.name for p in rank.phases]
        width = max(len(n) for n in names) + 2
        lines.append(f"  {'GiB, ' + rank.rank:<28}" + "".join(f"{n:>{max(width, 10)}}" for n in names))
        for component in COMPONENTS:
            values = [p.lines.get(component, 0.0) for p in rank.phases]
            if any(values):
                lines.append(f"  {component:<28}" + "".join(f"{v / GIB:>{max(width, 10)}.2f}" for v in values))
        lines.append(f"  {'total':<28}" + "".join(f"{p.total / GIB:>{max(width, 10)}.2f}" for p in rank.phases))
        lines.append(f"  peak: {rank.rank}, {peak.name}, {peak.total / GIB:.1f} GiB ({peak.note})")
        for other in stage.ranks:
            if other is not rank:
                lines.append(f"  {other.rank}: peak {other.peak.total / GIB:.1f} GiB in {other.peak.name}")
        if time.flops:
            lines.append(f"  step time: ~{time.describe()} at {100 * cfg.plan.mfu:.0f}% MFU of "
                         f"{cfg.plan.peak_tflops:g} TFLOP/s x {layout.world} GPU(s); rollout generation not modelled")
    lines.append("")
    gpu = cfg.plan.gpu_memory_gib
    if layout.device == "cuda":
        lines.append(f"GPU:     {gpu:g} GiB, headroom {100 * cfg.plan.headroom:.0f}% -> {plan.capacity_bytes / GIB:.1f} GiB "
                     f"usable; {cfg.plan.overhead_gib:g} GiB CUDA context + allocator counted in every phase")
    else:
        lines.append(f"CPU plan: no CUDA overhead; compared with {plan.capacity_bytes / GIB:.1f} GiB "
                     f"(plan.gpu_memory_gib x (1 - headroom))")
    if knobs:
        fitting = [k for k in knobs if k.fits]
        lines.append("knobs that make it fit (each re-planned):" if fitting else
                     "no single knob makes it fit; the closest (re-planned):")
        for knob in knobs:
            lines.append(f"  {knob.describe():<70} peak {knob.peak_gib:6.1f} GiB")
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    lines.append(f"{verdict}: peak {plan.peak_bytes / GIB:.1f} GiB per GPU of {plan.capacity_bytes / GIB:.1f} GiB usable "
                 f"({gpu:g} GiB, {100 * cfg.plan.headroom:.0f}% headroom)")
    return "\n".join(lines)
