#!/usr/bin/env bash
# 4x4, capacity or steps (issue 34): the 3x3 preset's parts on 4x4 at one model shape, for a fixed number of
# seconds, with one of two flag sets of the 128-wide wall run:
#   wall: its first stretch (results/mult4x4/stepwise/pretrain2: threshold 0.9, up to 4,000 steps a count, all CoT
#         removed by epoch 13), so that a run reaches the hard counts 15-17 in a bounded number of steps;
#   gate: its flags from count 16 on (results/mult4x4/stepwise/pretrain2-continued: threshold 0.8, up to 30,000 steps a count, no
#         epoch deadline), so that the gate alone decides and each count's steps measure what it needs.
# The folder FLAGS-SHAPE/seed00 gets args.json, metrics.jsonl (its advance events give the steps each count needed),
# train.log and machine.json.
#   bash results/mult4x4/width/run.sh SHAPE SECONDS FLAGS      # SHAPE: 3x128 (the wall run's), 3x256, 2x384
set -euo pipefail
cd "$(dirname "$0")/../.."
shape="$1"; seconds="$2"; flags="$3"
layers="${shape%x*}"; width="${shape#*x}"
case "$flags" in
  wall) schedule=(--gate-max-steps 4000 --epochs 18 --remove-by-epoch 13) ;;
  gate) schedule=(--gate-threshold 0.8 --gate-max-steps 30000 --epochs 1000 --remove-by-epoch 1000) ;;
  *) echo "run.sh: FLAGS is wall or gate, not '$flags'" >&2; exit 2 ;;
esac
out="runs/mult4x4-width-$flags-$shape"
dest="results/mult4x4/width/$flags-$shape/seed00"
mkdir -p "$dest"
timeout "$seconds" python train.py --task mult4x4 --model tiny --seed 0 --out "$out" \
    --n-layer "$layers" --n-embd "$width" --n-head $((width / 32)) \
    --schedule adaptive --carry-weight 1 --decay-after-recovery --pretrain-epochs 2 "${schedule[@]}" \
    > "$dest/train.log" 2>&1 || [ $? -eq 124 ]
cp "$out/args.json" "$out/metrics.jsonl" "$dest/"
bash results/machine.sh > "$dest/machine.json"
