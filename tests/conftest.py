"""Test-wide settings: no network services, deterministic CPU math, quiet tokenizers, Triton interpreted."""

from __future__ import annotations

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Triton kernels run through Triton's interpreter on CPU. The switch must be set before anything
# imports triton, and any test module may import it indirectly (megathink.kernels comes in with
# the backends), so it is set here, before collection, not only in tests/kernels/.
os.environ.setdefault("TRITON_INTERPRET", "1")


import pytest  # noqa: E402  (after the environment switches above)


@pytest.fixture(scope="session")
def tiny_sft_stage(tmp_path_factory: pytest.TempPathFactory):
    """A finished 4-step SFT stage of a tiny model (megathink_fixtures/tiny_runs.py), shared by the
    evaluation tests; read-only (copy before changing anything)."""
    from megathink_fixtures.tiny_runs import build_tiny_sft_stage

    return build_tiny_sft_stage(tmp_path_factory.mktemp("tiny_sft_run"))
