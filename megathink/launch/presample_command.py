"""`megathink presample`: AdaptThink's reference pre-sampling pass (see `evaluation.presample`).

Thin on purpose: the command builds nothing itself, so the same pass runs from Python without
Hydra (`megathink.evaluation.presample.run_presample(RunConfig(...))`). The library is
imported when the command runs, so `megathink --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from megathink.config import RunConfig

if TYPE_CHECKING:
    from megathink.evaluation.presample import PresampleResult

SUMMARY = (
    "AdaptThink pre-sampling: Rbar_ref per training prompt from K reference samples "
    "(model.path=..., algorithm.presample_k=16)"
)


def run_presample_command(cfg: RunConfig) -> PresampleResult:
    from megathink.evaluation.presample import run_presample

    return run_presample(cfg)
