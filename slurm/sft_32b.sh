#!/usr/bin/env bash
# Thinkless stage 1 (SFT warm-up on both answer forms), DeepSeek-R1-Distill-Qwen-32B.
# Layout: 4 trainer node(s) x 8 H100 (torchrun, megatron-core) + 1 rollout node (2 SGLang engines of 4 GPUs each) for the evaluations.
#   sbatch slurm/sft_32b.sh [hydra overrides...]      e.g. sft.max_steps=50
# Settings (RUN_DIR, ROLLOUT_NODES, NPROC_PER_NODE, ...): slurm/lib/megathink_job.sh; walk-through: docs/CLUSTER.md.
# Command-line sbatch options override these lines (sbatch --nodes=... --time=...).
#SBATCH --job-name=thinkless_sft_32b
#SBATCH --nodes=5
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --exclusive
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@600
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

: "${EXPERIMENT:=thinkless_sft_32b}"
: "${ROLLOUT_NODES:=1}"
: "${ROLLOUT_GPUS_PER_ENGINE:=4}"
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
