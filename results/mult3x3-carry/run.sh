#!/usr/bin/env bash
# The 3x3 CPU preset (adaptive schedule + carry probe + lr decay after recovery), one run per seed:
#   bash results/mult3x3-carry/run.sh [SEED ...]     # default: seeds 0-10; each ~21-26 min on 2 CPU cores (8,000 steps)
# Its runs land in dar-seedN/. The carry-seedN/ runs are the preset before the decay waited for recovery:
# the same command with --no-decay-after-recovery.
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2 3 4 5 6 7 8 9 10)
for seed in "${seeds[@]}"; do
  run="runs/dar-seed$seed"
  python train.py --task mult3x3 --model tiny --seed "$seed" --out "$run"
  python eval.py --ckpt "$run/best.pt" --batch-size 250 --json "$run/test.json"
  mkdir -p "results/mult3x3-carry/dar-seed$seed"
  cp "$run/metrics.jsonl" "$run/args.json" "$run/test.json" "results/mult3x3-carry/dar-seed$seed/"
done
