#!/usr/bin/env bash
# Prepares, on a CPU machine with access to PyPI, the git-ignored folder offline/ that the one-call GPU check
# needs on a machine without a network (docs/reference.md, "GPU path"):
#   offline/tiktoken/   the GPT-2 BPE files, under the names tiktoken caches them (data generation needs them)
#   offline/reference/  the reference's src/ (bench_gpu.py --ref runs its train.py and generate)
#   offline/wheels/     transformers 4.44.2 and its dependencies (the reference needs 4.x) without numpy and
#                       torch, which the GPU machine has: pure-Python wheels in common/, compiled ones in cpXY/
#                       for each Python of PYTHON_VERSIONS (default: this machine's and 3.12, the lent GPUs')
#   bash benchmarks/prepare_offline.sh REFERENCE_SRC [TIKTOKEN_CACHE]   # e.g. ../shared/reference-code/src
# The folder is about 30 MB; it travels with the call (the device tool's `carry: ["offline"]`), and
# benchmarks/gpu_call.sh is the call.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] && [ -f "$1/train.py" ] || { echo "prepare_offline.sh: give the reference's src/ folder" \
  "(one holding train.py), e.g. ../shared/reference-code/src" >&2; exit 2; }
rm -rf offline.writing && mkdir -p offline.writing/tiktoken offline.writing/wheels/common
cp -r "$1" offline.writing/reference
export TIKTOKEN_CACHE_DIR="${2:-${TIKTOKEN_CACHE_DIR:-$PWD/offline.writing/tiktoken}}"
python -c 'import tiktoken; tiktoken.get_encoding("gpt2")'         # fills the cache where it is empty
cp "$TIKTOKEN_CACHE_DIR"/* offline.writing/tiktoken/ 2>/dev/null || true
here=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for version in $(printf '%s\n' ${PYTHON_VERSIONS:-$here 3.12} | sort -u); do
  folder=offline.writing/wheels/cp${version/./}
  python -m pip download --quiet --only-binary=:all: --python-version "$version" -d "$folder" transformers==4.44.2
  rm -f "$folder"/numpy-* "$folder"/torch-* "$folder"/nvidia_*
  for wheel in "$folder"/*-none-any.whl "$folder"/*-abi3-*.whl; do
    [ -e "$wheel" ] && mv "$wheel" offline.writing/wheels/common/
  done
done
rm -rf offline && mv offline.writing offline
echo "offline/: $(find offline/wheels -name "*.whl" | wc -l) wheels, $(ls offline/tiktoken | wc -l) tokenizer files, $(du -sh offline | cut -f1)"
