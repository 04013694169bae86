#!/usr/bin/env bash
# Many small runs at once on one lent GPU, within a deadline (issue 34). A 3-layer 128-wide run keeps a GPU mostly
# idle (its time goes to launching kernels), so the 3x3 ablation runs share it, SLOTS at a time, in the order given,
# beside the 4x4 width runs, which train until the deadline. The result folders and logs come back as one tar.
#   OUT=folder bash results/gpu-batch.sh SECONDS SLOTS "ROW SEED" ... -- SHAPE ...
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
end=$(( $(date +%s) + $1 )); slots=$2; shift 2
jobs=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do jobs+=("$1"); shift; done; shift
python data.py --task mult3x3 && python data.py --task mult4x4 || exit 1      # once, before the runs share it
mkdir -p logs
for shape in "$@"; do
  bash results/mult4x4/width/run.sh "$shape" $(( end - $(date +%s) - 30 )) gate > "logs/mult4x4-width-$shape.log" 2>&1 &
done
printf '%s\n' "${jobs[@]}" | END=$end xargs -P "$slots" -L 1 bash -c '
  left=$(( END - $(date +%s) )); [ "$left" -gt 60 ] || { echo "skipped $1 $2: deadline"; exit 0; }
  timeout "$left" bash results/mult3x3/run.sh "$1" "$2" > "logs/mult3x3-$1-seed$2.log" 2>&1 \
    || echo "$1 $2: exit $?"' _
wait
for f in results/mult3x3/*/*/seed*/test.json; do
  [ "$f" -nt data/mult3x3/meta.json ] && echo "$f $(python -c "import json,sys; print(json.load(open(sys.argv[1]))[0]['accuracy'])" "$f")"
done
tar czf "$OUT/results.tgz" logs results/mult3x3 results/mult4x4/width runs/*/metrics.jsonl
