"""The `slurm_cluster` fixture: a real one-node SLURM (local_cluster.py) for the tests marked `slurm`.

Started once per session and stopped by PID at the end. Where it cannot run (not root, SLURM
not installed: `bash .ci/install_slurm.sh` installs it) the tests skip with the reason, unless
MEGATHINK_REQUIRE_SLURM=1 (set by .ci/run), which turns the skip into a failure: in CI the
cluster must come up.
"""

from __future__ import annotations

import os

import pytest
from local_cluster import LocalCluster, start_cluster, unavailable_reason


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> LocalCluster:
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("MEGATHINK_REQUIRE_SLURM") == "1":
            pytest.fail(f"MEGATHINK_REQUIRE_SLURM=1 but no local SLURM can start: {reason}")
        pytest.skip(reason)
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()
