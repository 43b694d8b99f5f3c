"""The synthetic run folder fixture of the plotting tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_runs import build_run


@pytest.fixture
def synthetic_run(tmp_path: Path) -> Path:
    return build_run(tmp_path / "run")
