#!/usr/bin/env bash
# The toy leaderboard of docs/RESULTS.md: every RL method megathink has, trained on the toy task
# from the same warm-up with the same budget (60 RL steps of 32 prompts x 8 samples, as the
# demo), over several seeds, then `megathink leaderboard` for the table and the figure.
#
#   bash examples/toy_leaderboard.sh                  # ~45 min on 2 idle CPU cores (3 seeds)
#   SEEDS="0" ENTRIES="degrpo grpo" bash examples/toy_leaderboard.sh   # a quick subset
#   bash examples/toy_leaderboard.sh trainer.num_threads=1             # extra overrides go to every RL run
#   WARMUP_OVERRIDES="sft.optimizer.lr=2e-3 sft.optimizer.min_lr=2e-4" bash examples/toy_leaderboard.sh
#       # the warm-ups of the table in docs/RESULTS.md (the demo's SFT lr before it was halved)
#
# Warm-ups (once each): the Thinkless hybrid SFT of the demo (both answer forms; every Thinkless
# family entry starts from it), the same SFT with effort-level prompts for the L1 entry (its
# prompts state a token budget, which the demo's warm-up never saw), and AdaptThink's thinking
# warm-up with its Rbar_ref pass (AdaptThink starts from a model that always thinks, as in its
# paper). Writes $OUT/<entry>/seed_<n>/ (each an RL run with summary.json) and
# $OUT/leaderboard.{md,csv,png}.
set -euo pipefail
OUT=${OUT:-outputs/leaderboard}
read -r -a WARMUP_EXTRA <<<"${WARMUP_OVERRIDES:-}"  # overrides for every warm-up (SFT) run
SEEDS=${SEEDS:-"0 1 2"}
ENTRIES=${ENTRIES:-"degrpo grpo hgpo degrpo_kimi degrpo_l1 degrpo_dler degrpo_hapo grpo_ada grpo_autothink adaptthink"}

warmup() {  # warmup NAME OVERRIDES...: an SFT (or SFT + presample) run, skipped when done
    local name=$1
    shift
    [[ -f "$OUT/_warmup/$name/sft/hf/config.json" ]] ||
        megathink train "$@" ${WARMUP_EXTRA[@]+"${WARMUP_EXTRA[@]}"} "hydra.run.dir=$OUT/_warmup/$name"
}

# entry -> warm-up and overrides (all entries: experiment=toy_demo's RL budget and sampling)
declare -A WARMUP=(
    [degrpo]=thinkless [grpo]=thinkless [hgpo]=thinkless [degrpo_kimi]=thinkless [degrpo_l1]=effort
    [degrpo_dler]=thinkless [degrpo_hapo]=thinkless [grpo_ada]=thinkless [grpo_autothink]=thinkless
    [adaptthink]=adaptthink
)
declare -A SETTINGS=(
    [degrpo]=""
    [grpo]="algorithm=grpo"
    [hgpo]="algorithm=hgpo algorithm.alpha=1.0"
    [degrpo_kimi]="reward.kimi_length_coef=0.5"
    [degrpo_l1]="data=toy_effort reward.l1_mode=exact reward.l1_alpha=0.01"
    [degrpo_dler]="reward.truncate_tokens=45 algorithm.batch_std_normalize=true"
    [degrpo_hapo]="reward.hapo_coef=0.5"
    [grpo_ada]="algorithm=grpo reward.ada_grpo=true"
    [grpo_autothink]="algorithm=grpo reward.autothink_balance=true reward.autothink_length_coef=0.1"
    [adaptthink]=""
)

for entry in $ENTRIES; do
    case ${WARMUP[$entry]} in
        thinkless) warmup thinkless experiment=toy_demo 'stages=[sft]' ;;
        effort) warmup effort experiment=toy_demo data=toy_effort 'stages=[sft]' ;;
        adaptthink) warmup adaptthink experiment=toy_adaptthink 'stages=[sft,presample]' ;;
    esac
done

for seed in $SEEDS; do
    for entry in $ENTRIES; do
        run="$OUT/$entry/seed_$seed"
        [[ -f "$run/summary.json" ]] && continue
        base="$OUT/_warmup/${WARMUP[$entry]}"
        if [[ $entry == adaptthink ]]; then
            from=(experiment=toy_adaptthink "algorithm.reference_accuracy_path=$base/reference_accuracy.jsonl")
        else
            from=(experiment=toy_demo)
        fi
        # shellcheck disable=SC2086  # SETTINGS holds several overrides
        megathink train "${from[@]}" 'stages=[rl]' tokenizer.kind=pretrained "model.path=$base/sft/hf" \
            ${SETTINGS[$entry]} "trainer.seed=$seed" "hydra.run.dir=$run" "$@"
    done
done

order=$(echo "$ENTRIES" | tr ' ' ',')
megathink leaderboard "$OUT" --order "$order"
