#!/usr/bin/env bash
# The 3x3 CPU preset on seeds it was never tuned on (results/README.md, "Fresh seeds"): one run at a time, each
# folder with args.json, metrics.jsonl, test.json and machine.json (the CPU and the code's commit).
#   bash results/mult3x3-fresh/run.sh preset 11 12 13      # the preset, exactly as the README runs it
#   bash results/mult3x3-fresh/run.sh slower 16 17 18      # the change judged on seeds 16-20
set -euo pipefail
cd "$(dirname "$0")/../.."
declare -A CHANGE=([preset]="" [slower]="--slower-from 14 --slower-by 3")
variant="$1"; shift
[ -n "${CHANGE[$variant]+set}" ] || { echo "run.sh: unknown variant $variant (one of: ${!CHANGE[*]})" >&2; exit 2; }
for seed in "$@"; do
  out="runs/mult3x3-$variant-seed$seed"
  python train.py --task mult3x3 --model tiny --seed "$seed" --out "$out" ${CHANGE[$variant]}
  python eval.py --ckpt "$out/best.pt" --batch-size 250 --json "$out/test.json"
  dest="results/mult3x3-fresh/$variant-seed$seed"
  mkdir -p "$dest"
  cp "$out/args.json" "$out/metrics.jsonl" "$out/test.json" "$dest/"
  cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
  printf '{\n "cpu": "%s",\n "cores": %s,\n "code": "%s"\n}\n' "$cpu" "$(nproc)" "$(git rev-parse --short HEAD)" > "$dest/machine.json"
done
