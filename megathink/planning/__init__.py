"""The memory planner: per-GPU memory by component and a step-time estimate, from a validated
`RunConfig` and the model's `config.json` (never its weights).

    shape = read_model_shape(cfg, vocab_size=...)          # model_shape.py
    plan = plan_run(cfg, shape, world_size=8)               # planner.py
    print(format_plan(plan, suggest_knobs(cfg, shape)))     # report.py, knobs.py

One module per job: `model_shape` (config.json -> sizes), `layout` (world, tp / pp / cp / dp,
recompute, layer implementation), `workload` (the largest micro-batch, generation batches),
`activations`, `static_memory`, `logprob_memory`, `generation_memory` (the components),
`memory` (phases per rank), `step_time` (FLOPs), `planner` (all stages), `knobs` (what to
change when it does not fit, by re-planning), `report` (the screen), `storage_tracker`
(the CPU measurement the benchmark checks the model against). Depends on `megathink.config`,
the standard library and torch (the tracker) only.
"""

from megathink.planning.knobs import Knob, suggest_knobs
from megathink.planning.model_shape import ModelShape, read_model_shape
from megathink.planning.planner import RunPlan, plan_run
from megathink.planning.report import format_plan

__all__ = ["Knob", "ModelShape", "RunPlan", "format_plan", "plan_run", "read_model_shape", "suggest_knobs"]
