#!/usr/bin/env bash
# Thinkless stage 2 (DeGRPO RL from the SFT model), 14B.
# Layout: 4 trainer node(s) x 8 H100 (torchrun, megatron-core) + 2 rollout node(s) (4 SGLang engines of 2 GPUs each).
#   sbatch slurm/degrpo_14b.sh [hydra overrides...]      e.g. rl.max_steps=50 reward.gamma=0.8
# Settings (RUN_DIR, ROLLOUT_NODES, NPROC_PER_NODE, ...): slurm/lib/megathink_job.sh; walk-through: docs/CLUSTER.md.
# Command-line sbatch options override these lines (sbatch --nodes=... --time=...).
#SBATCH --job-name=thinkless_degrpo_14b
#SBATCH --nodes=6
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --exclusive
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@600
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

: "${EXPERIMENT:=thinkless_degrpo_14b}"
: "${ROLLOUT_NODES:=2}"
: "${ROLLOUT_GPUS_PER_ENGINE:=2}"
: "${PRESAMPLE:=0}"
export EXPERIMENT ROLLOUT_NODES ROLLOUT_GPUS_PER_ENGINE PRESAMPLE

# sbatch runs a copy of this file from its spool folder: find the checkout from the submitted path.
if [[ -z "${MEGATHINK_REPO:-}" ]]; then
    here=$(dirname "$(scontrol show job "${SLURM_JOB_ID:?submit with sbatch}" | sed -n 's/^ *Command=\([^ ]*\).*/\1/p')")
    MEGATHINK_REPO=$(cd "$here/.." && pwd)
fi
export MEGATHINK_REPO
# shellcheck source=lib/megathink_job.sh
source "$MEGATHINK_REPO/slurm/lib/megathink_job.sh"
megathink_job_main "$@"
