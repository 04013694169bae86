#!/usr/bin/env bash
# 3x3 runs of the CPU preset over seeds, one at a time: command 1 as the README runs it, the preset with its
# fixed 8,000 steps, the paper's linear s(t) and the change judged on fresh seeds (folders results/mult3x3/seeds/
# ROW/seedNN), and the ablation rows (results/mult3x3/ablation/ROW/seedNN; results/README.md says which claim
# each row backs). Every row but command1 has the preset's model, data and fixed budget (3 layers x 128, batch
# 128, 102,400 examples, 10 epochs = 8,000 steps) with one change; command1 stops at validation >= 0.99 at zero
# CoT or runs on to 14,400 steps. Each folder gets args.json, metrics.jsonl, test.json and machine.json
# (results/machine.sh: the CPU, the GPU if any, the commit).
#   bash results/mult3x3/run.sh ROW SEED [SEED ...]      # e.g. nocot 0 1 2; about 18-30 min a run on 2 cores
#   RESUME=1 bash results/mult3x3/run.sh ROW SEED        # continue a stopped run from its last ckpt.pt
#   AS=NAME bash results/mult3x3/run.sh ROW SEED         # file the run under row NAME (e.g. its code version)
set -euo pipefail
cd "$(dirname "$0")/../.."
fixed="--stop-at-val 0"                                                 # the rows' fixed 8,000 steps
declare -A ROW=([command1]=""                                           # exactly as the README runs it
                [preset]="$fixed"                                        # 8,000 steps, fixed
                [slower]="$fixed --slower-from 14 --slower-by 3"         # judged on fresh seeds 16-20
                [linear]="$fixed --schedule linear"                      # the paper's s(t) alone
                [nocot]="$fixed --mode nocot"                            # no CoT at all
                [nocot-carry]="$fixed --mode nocot --carry-weight 1"     # ... with the carry probe
                [all-at-once]="$fixed --remove-all-beyond 1"             # explicit CoT to the gate, then none
                [linear-carry]="$fixed --schedule linear --carry-weight 1"  # the paper's s(t) with the probe
                [no-smoothing]="$fixed --smoothing-lambda inf"           # no removal smoothing
                [no-reset]="$fixed --no-reset-optimizer"                 # ... without AdamW resets
                [linear-right]="$fixed --schedule linear --removal-side right"  # from the right
                [no-probe]="$fixed --carry-weight 0"                     # no carry probe
                [no-decay-wait]="$fixed --no-decay-after-recovery"       # lr decay over the last 4 epochs
                [explicit-then-all]="$fixed --remove-all-beyond 1 --gate-min-steps 4800 --gate-max-steps 4800")
                # ^ explicit CoT while the preset keeps some (to step 4,800), then all at once, with the probe
row="$1"; shift
[ -n "${ROW[$row]+set}" ] || { echo "run.sh: unknown row $row (one of: ${!ROW[*]})" >&2; exit 2; }
case "$row" in command1|preset|slower|linear) study=seeds ;; *) study=ablation ;; esac
for seed in "$@"; do
  out="runs/mult3x3-$row-seed$seed"
  python train.py --task mult3x3 --model tiny --seed "$seed" --out "$out" ${RESUME:+--resume} ${ROW[$row]}
  # explicit-then-all: no batch after the jump keeps CoT, so the reference's "best" rule keeps the explicit epoch
  # as best.pt; its row is scored on the last checkpoint, at zero CoT (docs/reference.md, "Best checkpoint")
  ckpt=$([ "$row" = explicit-then-all ] && echo ckpt.pt || echo best.pt)
  python eval.py --ckpt "$out/$ckpt" --batch-size 250 --json "$out/test.json"
  dest=$(printf "results/mult3x3/%s/%s/seed%02d" "$study" "${AS:-$row}" "$seed")
  mkdir -p "$dest"
  cp "$out/args.json" "$out/metrics.jsonl" "$out/test.json" "$dest/"
  bash results/machine.sh > "$dest/machine.json"
done
