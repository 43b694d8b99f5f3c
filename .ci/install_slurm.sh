#!/usr/bin/env bash
# Install a local SLURM (slurm-wlm + munge, Debian packages) for the tests marked `slurm`.
#
# Idempotent: does nothing when sbatch, slurmctld, slurmd and munged are already installed.
# The daemons are NOT started here; tests/slurm/conftest.py writes a one-node slurm.conf at
# test time and starts (and stops) them. Needs root and apt-get; without them it says why and
# exits 0, so a developer machine still runs `make test` (the slurm tests then skip with the
# same reason). CI (.ci/run) sets MEGATHINK_REQUIRE_SLURM=1, which turns that skip into a failure.
set -euo pipefail

PACKAGES=(slurm-wlm slurmctld slurmd slurm-client munge)
NEEDED=(sbatch squeue scontrol slurmctld slurmd munged)

missing=()
for tool in "${NEEDED[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || [[ -x "/usr/sbin/$tool" ]] || missing+=("$tool")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install_slurm: SLURM and munge are already installed"
    exit 0
fi

skip() {
    if [[ "${MEGATHINK_REQUIRE_SLURM:-0}" == "1" ]]; then
        echo "install_slurm: error: $1 (MEGATHINK_REQUIRE_SLURM=1: the slurm tests must run here)" >&2
        exit 1
    fi
    echo "install_slurm: skipped: $1; the tests marked 'slurm' will be skipped" >&2
    exit 0
}

[[ "$(id -u)" == "0" ]] || skip "not root (installing ${PACKAGES[*]} needs root)"
command -v apt-get >/dev/null 2>&1 || skip "no apt-get on this machine (a Debian/Ubuntu package install)"

echo "install_slurm: installing ${PACKAGES[*]} (missing: ${missing[*]})"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "${PACKAGES[@]}" >/tmp/install_slurm.log 2>&1; then
    # A fresh image may have no package lists yet.
    apt-get update >>/tmp/install_slurm.log 2>&1 || true
    if ! apt-get install -y --no-install-recommends "${PACKAGES[@]}" >>/tmp/install_slurm.log 2>&1; then
        tail -n 30 /tmp/install_slurm.log >&2
        echo "install_slurm: error: apt-get install ${PACKAGES[*]} failed (log above, full log /tmp/install_slurm.log)" >&2
        exit 1
    fi
fi
echo "install_slurm: installed $(dpkg-query -W -f 'slurm-wlm ${Version}' slurm-wlm)"
