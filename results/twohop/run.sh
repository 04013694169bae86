#!/usr/bin/env bash
# The two-hop study on a CPU (README, "Second study"): one graph, explicit CoT vs no-CoT vs stepwise,
# tail noise at four shares and bridge noise at one, two values of lambda, the bridge probe; then the logit lens.
#   bash results/twohop/run.sh [NAME ...]            # default: every 1,920-step run; each ~3 min on an idle 2-core CPU
#   SEED=1 bash results/twohop/run.sh cot            # another training seed on the same graph: main/cot/seed01
#   BRIDGE_W=3 bash results/twohop/run.sh stepwise-bridge   # the probe's weight (default 1): bridge-weight/w3/seed00
#   bash results/twohop/run.sh cot-10x tail005-10x   # ten times the budget (19,200 steps): 33-38 min each, idle
# Folders: results/twohop/STUDY/ROW/seedNN, STUDY main (cot, nocot, stepwise, stepwise-bridge), noise (the other
# graphs), noise-10x (NAME-10x) or bridge-weight (BRIDGE_W other than 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
SEED="${SEED:-0}"
BRIDGE_W="${BRIDGE_W:-1}"
GRAPH="--entities 50 --relations 20 --relations-per-entity 12 --ood-share 0.2 --test-id-share 0.05"
TRAIN="--model tiny --n-layer 4 --weight-decay 0.1 --batch-size 128 --lr 2e-3 --decay-epochs 0 --log-every 200 --seed $SEED"
STEPWISE="--mode stepwise --pretrain-epochs 20 --delta 0.2"
TEN_X="--epochs 600 --log-every 2000"                                         # 600 x 32 batches = 19,200 steps
declare -A DATA=([tail005]="--noise-share 0.05" [tail02]="--noise-share 0.2" [tail04]="--noise-share 0.4"
                 [tail06]="--noise-share 0.6" [bridge02]="--noise-share 0.2 --noise-kind bridge" [ratio36]="--ratio 3.6")
declare -A MODE=([cot]="--mode explicit" [nocot]="--mode nocot" [stepwise]="$STEPWISE"
                 [stepwise-bridge]="$STEPWISE --bridge-weight $BRIDGE_W"
                 [tail005]="--mode explicit" [tail02]="--mode explicit" [tail04]="--mode explicit" [tail06]="--mode explicit"
                 [bridge02]="--mode explicit" [ratio36]="--mode explicit --epochs 101")   # 101 x 19 = the same 1,920 steps
for run in ${@:-cot nocot stepwise stepwise-bridge tail005 tail02 tail04 tail06 bridge02 ratio36}; do
  recipe="${run%-10x}"                                                        # cot-10x: cot's recipe, 10x the steps
  graph="${recipe%-bridge}"                                                   # stepwise-bridge: stepwise's graph
  task="twohop-${graph}"
  name="$run$([ "$recipe" != stepwise-bridge ] || [ "$BRIDGE_W" = 1 ] || echo "-w$BRIDGE_W")$([ "$SEED" = 0 ] || echo "-seed$SEED")"
  [ -f "data/$task/meta.json" ] || python data.py --task "$task" $GRAPH ${DATA[$graph]:-}
  extra=$([ "$run" = "$recipe" ] && echo "--epochs 60" || echo "$TEN_X")
  python train.py --task "$task" --out "runs/twohop-$name" $TRAIN $extra ${MODE[$recipe]}
  case "$run" in *-10x) study=noise-10x ;; cot|nocot|stepwise|stepwise-bridge) study=main ;; *) study=noise ;; esac
  row="$recipe"
  [ "$recipe" != stepwise-bridge ] || [ "$BRIDGE_W" = 1 ] || { study=bridge-weight; row="w$BRIDGE_W"; }
  dest=$(printf "results/twohop/%s/%s/seed%02d" "$study" "$row" "$SEED")
  mkdir -p "$dest"
  cp "runs/twohop-$name/metrics.jsonl" "runs/twohop-$name/args.json" "data/$task/meta.json" "$dest/"
  bash results/machine.sh > "$dest/machine.json"
done
