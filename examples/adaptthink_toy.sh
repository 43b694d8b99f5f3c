#!/usr/bin/env bash
# AdaptThink on the toy task, as in docs/RESULTS.md: one warm-up (a model that always thinks)
# and one presample pass, then AdaptThink RL for several values of delta and the naive
# baseline (no forced openers), all from the same starting model and the same Rbar_ref file.
#
#   bash examples/adaptthink_toy.sh                      # ~25 minutes on 2 CPU cores
#   DELTAS="0.05" bash examples/adaptthink_toy.sh        # fewer runs
#   bash examples/adaptthink_toy.sh trainer.seed=1       # extra overrides go to every command
#
# Writes $OUT/base (sft/, reference_accuracy.jsonl), $OUT/delta_<d>/ and $OUT/naive/, each RL
# run with rl/summary.json and plots/, and $OUT/compare.png (NoThinking ratio, accuracy and
# length per level, every run side by side).
set -euo pipefail
OUT=${OUT:-outputs/adaptthink_toy}
DELTAS=${DELTAS:-"0 0.05 0.5 0.9"}

megathink train experiment=toy_adaptthink 'stages=[sft,presample]' "hydra.run.dir=$OUT/base" "$@"

FROM_BASE=(
  experiment=toy_adaptthink 'stages=[rl]' tokenizer.kind=pretrained
  "model.path=$OUT/base/sft/hf" "algorithm.reference_accuracy_path=$OUT/base/reference_accuracy.jsonl"
)
runs=()
for delta in $DELTAS; do
  megathink train "${FROM_BASE[@]}" "algorithm.delta=$delta" "hydra.run.dir=$OUT/delta_$delta" "$@"
  runs+=("$OUT/delta_$delta")
done
megathink train "${FROM_BASE[@]}" algorithm.importance_sampling=false "hydra.run.dir=$OUT/naive" "$@"
runs+=("$OUT/naive")

for run in "${runs[@]}"; do megathink plot "$run" > /dev/null; done
megathink plot --compare "${runs[@]}" --out "$OUT"
