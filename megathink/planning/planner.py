"""`plan_run`: the memory plan and step time of every training stage of a run.

    plan = plan_run(cfg, shape, world_size=None, device="cuda")
    plan.fits, plan.peak_bytes, plan.capacity_bytes, plan.stages[i].memory.worst

`shape` comes from `model_shape.read_model_shape` (config.json, or the random model's fields);
the layout from `layout.resolve_layout`. A stage fits when its worst rank's largest phase,
overhead included, is at most `plan.gpu_memory_gib * (1 - plan.headroom)`; the run fits when
every stage does. A CPU plan (`device="cpu"`) has no overhead line and is what
`benchmarks/memory_planner.py` measures against.
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.run import RunConfig
from megathink.planning.layout import Layout, resolve_layout
from megathink.planning.memory import GIB, StagePlan, plan_stage
from megathink.planning.model_shape import ModelShape
from megathink.planning.step_time import StepTime, step_time
from megathink.planning.workload import stage_work

PLANNED_STAGES = ("sft", "presample", "rl")


@dataclass(frozen=True)
class StageResult:
    memory: StagePlan
    time: StepTime


@dataclass(frozen=True)
class RunPlan:
    cfg: RunConfig
    shape: ModelShape
    layout: Layout
    stages: tuple[StageResult, ...]
    capacity_bytes: float  # gpu_memory_gib * (1 - headroom)

    @property
    def peak_bytes(self) -> float:
        return max((s.memory.worst[1].total for s in self.stages), default=0.0)

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.capacity_bytes

    def stage(self, name: str) -> StageResult:
        for result in self.stages:
            if result.memory.stage == name:
                return result
        raise KeyError(name)


def plan_run(cfg: RunConfig, shape: ModelShape, *, world_size: int | None = None, device: str = "cuda") -> RunPlan:
    """Plan every stage of `cfg.stages` on `device` ('cuda' or 'cpu') at `world_size` processes
    (None: plan.world_size or the layout's own; see layout.py)."""
    layout = resolve_layout(cfg, shape, world_size=world_size, device=device)
    results = []
    for stage in cfg.stages:
        stage_layout = layout
        if stage == "presample":  # one HF process that only samples
            stage_layout = resolve_layout(_hf(cfg), shape, device=device)
        work = stage_work(cfg, stage, stage_layout)
        results.append(StageResult(
            memory=plan_stage(cfg, shape, stage_layout, work), time=step_time(cfg, shape, stage_layout, work),
        ))
    capacity = cfg.plan.gpu_memory_gib * (1 - cfg.plan.headroom) * GIB
    return RunPlan(cfg=cfg, shape=shape, layout=layout, stages=tuple(results), capacity_bytes=capacity)


def _hf(cfg: RunConfig) -> RunConfig:
    import dataclasses

    parallel = dataclasses.replace(
        cfg.parallel, backend="hf", tp=1, pp=1, cp=1, vpp=1, dp=0, pack_sequences=False, distributed_optimizer=False,
        fp8=False, sequence_parallel=False, recompute="none",
    )
    return dataclasses.replace(cfg, parallel=parallel, stages=["presample"])
