#!/usr/bin/env bash
# The 3x3 ablation over seeds (README, "What makes the CPU preset work"): every row is the CPU preset's model,
# data and budget (3 layers x 128, batch 128, 102,400 examples, 10 epochs = 8,000 steps) with one change.
#   bash results/mult3x3-ablation/run.sh ROW SEED [SEED ...]      # e.g. nocot 0 1 2; about 15-25 min a run
# Then: python eval.py --ablation "preset=results/mult3x3-carry/dar-seed*" "no CoT=results/mult3x3-ablation/nocot-seed*" ...
set -euo pipefail
cd "$(dirname "$0")/../.."
declare -A ROW=([nocot]="--mode nocot"                                  # no CoT at all
                [nocot-carry]="--mode nocot --carry-weight 1"           # ... with the carry probe
                [all-at-once]="--remove-all-beyond 1"                   # explicit CoT until the gate passes, then none
                [linear-carry]="--schedule linear --carry-weight 1"     # the paper's s(t) with the probe
                [no-smoothing]="--smoothing-lambda inf"                 # the preset without removal smoothing
                [no-reset]="--no-reset-optimizer"                       # ... without AdamW resets
                [linear-right]="--schedule linear --removal-side right")   # the paper's s(t), removing from the right
row="$1"; shift
[ -n "${ROW[$row]:-}" ] || { echo "run.sh: unknown row $row (one of: ${!ROW[*]})" >&2; exit 2; }
for seed in "$@"; do
  out="runs/mult3x3-$row-seed$seed"
  python train.py --task mult3x3 --model tiny --seed "$seed" --out "$out" ${ROW[$row]}
  python eval.py --ckpt "$out/best.pt" --batch-size 250 --json "$out/test.json"
  mkdir -p "results/mult3x3-ablation/$row-seed$seed"
  cp "$out/args.json" "$out/metrics.jsonl" "$out/test.json" "results/mult3x3-ablation/$row-seed$seed/"
done
