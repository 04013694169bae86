#!/usr/bin/env bash
# 4x4, capacity or steps (issue 34): the 3x3 preset's parts on 4x4 as in the wall run (results/mult4x4-wall-seed0),
# with the gate alone deciding each count (threshold 0.8, up to 30,000 steps a count, no epoch deadline: the wall
# run's flags from its count 16 on), at one model shape, for a fixed number of seconds. Each folder gets args.json,
# metrics.jsonl (its advance events give the steps each count needed) and machine.json.
#   bash results/mult4x4-width/run.sh SHAPE SECONDS      # SHAPE: 3x128 (the wall run's), 3x256 or 2x384
set -euo pipefail
cd "$(dirname "$0")/../.."
shape="$1"; seconds="$2"
layers="${shape%x*}"; width="${shape#*x}"
out="runs/mult4x4-width-$shape"
timeout "$seconds" python train.py --task mult4x4 --model tiny --seed 0 --out "$out" \
    --n-layer "$layers" --n-embd "$width" --n-head $((width / 32)) \
    --schedule adaptive --carry-weight 1 --decay-after-recovery --pretrain-epochs 2 \
    --gate-threshold 0.8 --gate-max-steps 30000 --epochs 1000 --remove-by-epoch 1000 || [ $? -eq 124 ]
dest="results/mult4x4-width/$shape"
mkdir -p "$dest"
cp "$out/args.json" "$out/metrics.jsonl" "$dest/"
bash results/machine.sh > "$dest/machine.json"
