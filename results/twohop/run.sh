#!/usr/bin/env bash
# The two-hop study on a CPU (README, "Second study"): one graph, explicit CoT vs no-CoT vs stepwise,
# tail noise at four shares and bridge noise at one, two values of lambda; then the logit lens.
#   bash results/twohop/run.sh [NAME ...]     # default: every run; each about 8-11 min on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/../.."
GRAPH="--entities 50 --relations 20 --relations-per-entity 12 --ood-share 0.2 --test-id-share 0.05"
TRAIN="--model tiny --n-layer 4 --weight-decay 0.1 --batch-size 128 --lr 2e-3 --decay-epochs 0 --epochs 60 --log-every 200"
declare -A DATA=([cot]="" [nocot]="" [stepwise]="" [tail005]="--noise-share 0.05" [tail02]="--noise-share 0.2" [tail04]="--noise-share 0.4"
                 [tail06]="--noise-share 0.6" [bridge02]="--noise-share 0.2 --noise-kind bridge" [ratio36]="--ratio 3.6")
declare -A MODE=([cot]="--mode explicit" [nocot]="--mode nocot" [stepwise]="--mode stepwise --pretrain-epochs 20 --delta 0.2"
                 [tail005]="--mode explicit" [tail02]="--mode explicit" [tail04]="--mode explicit" [tail06]="--mode explicit"
                 [bridge02]="--mode explicit" [ratio36]="--mode explicit --epochs 101")   # 101 x 19 = the same 1,920 steps
for name in "${@:-cot nocot stepwise tail005 tail02 tail04 tail06 bridge02 ratio36}"; do
  for run in $name; do
    task="twohop-${run}"
    [ -f "data/$task/meta.json" ] || python data.py --task "$task" $GRAPH ${DATA[$run]}
    python train.py --task "$task" --out "runs/$task" $TRAIN ${MODE[$run]}
    mkdir -p "results/twohop/$run"
    cp "runs/$task/metrics.jsonl" "runs/$task/args.json" "data/$task/meta.json" "results/twohop/$run/"
  done
done
