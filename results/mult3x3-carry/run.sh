#!/usr/bin/env bash
# 3x3 with the adaptive schedule and the carry probe (README, "The carry probe"), one run per seed:
#   bash results/mult3x3-carry/run.sh [SEED ...]     # default: seeds 0-10; each ~25-35 min on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/../.."
for seed in "${@:-0 1 2 3 4 5 6 7 8 9 10}"; do
  run="runs/mult3x3-carry-seed$seed"
  python train.py --task mult3x3 --model tiny --schedule adaptive --carry-weight 1 --seed "$seed" --out "$run"
  python eval.py --ckpt "$run/best.pt" --batch-size 250 --json "$run/test.json"
  mkdir -p "results/mult3x3-carry/carry-seed$seed"
  cp "$run/metrics.jsonl" "$run/args.json" "$run/test.json" "results/mult3x3-carry/carry-seed$seed/"
done
