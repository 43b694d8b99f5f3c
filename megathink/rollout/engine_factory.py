"""`build_rollout_engine`: the `RolloutEngine` a run's `rollout.engine` names.

The trainer and the evaluation code call this one function, so they never name an engine class.
`sampler` is the HF backend an in-process engine samples from: the policy itself with the HF
backend (colocated, no copy), or the HF copy a Megatron run keeps for rollouts and evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from megathink.config.rollout import RolloutConfig
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.protocol import RolloutEngine

if TYPE_CHECKING:
    from megathink.models.protocol import PolicyBackend


def build_rollout_engine(
    rollout: RolloutConfig, sampler: PolicyBackend, *, pad_id: int, batch_size: int, out_dir: Path
) -> RolloutEngine:
    """The engine for `rollout.engine`; `out_dir` is the stage folder (engines keep their files there)."""
    del out_dir  # the local engine keeps no files
    return LocalEngine(sampler, pad_id=pad_id, batch_size=batch_size)
