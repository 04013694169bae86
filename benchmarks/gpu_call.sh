#!/usr/bin/env bash
# The one-call GPU check, offline: run from a checkout where benchmarks/prepare_offline.sh made offline/ (with
# the device tool: carry ["offline"]). Installs the reference's transformers 4.x from offline/wheels into
# offline/site, then runs bench_gpu.py with the reference beside it, writing $OUT/bench_gpu.json (OUT: the
# device tool's folder; elsewhere results/gpu/<gpu name>.json). On an H100 or H200 it should end within one
# 600 s call: bench_gpu.py's --budget (540 s) skips whatever would start later, and says so in the JSON.
#   bash benchmarks/gpu_call.sh            # on the GPU machine
#   bash benchmarks/gpu_call.sh --smoke    # the same on tiny sizes on a CPU (tests/test_benchmarks.py)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d offline/wheels/common ] || { echo "gpu_call.sh: no offline/ here: run benchmarks/prepare_offline.sh on a" \
  "machine with PyPI first" >&2; exit 2; }
python=$(python -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
[ -d "offline/wheels/$python" ] || { echo "gpu_call.sh: offline/wheels has no $python wheels: prepare with" \
  "PYTHON_VERSIONS=\"${python:2:1}.${python:3}\"" >&2; exit 2; }
[ -d offline/site ] || python -m pip install --quiet --no-index --no-deps --target offline/site \
  offline/wheels/common/*.whl "offline/wheels/$python"/*.whl
export TIKTOKEN_CACHE_DIR="$PWD/offline/tiktoken" PYTHONPATH="$PWD/offline/site" HF_HUB_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1
python benchmarks/bench_gpu.py --ref offline/reference ${OUT:+--out "$OUT/bench_gpu.json"} "$@"
