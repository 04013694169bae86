#!/usr/bin/env bash
# machine.json of a run folder: the CPU, its cores, the GPU if one was used (train.py's default device), and the
# code's commit (from $CODE where the tree has no .git, as on a lent GPU machine).
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
gpu=$(python -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "")')
code=$(git rev-parse --short HEAD 2>/dev/null || echo "${CODE:-unknown}")
printf '{\n "cpu": "%s",\n "cores": %s,\n "gpu": "%s",\n "code": "%s"\n}\n' "$cpu" "$(nproc --all)" "${gpu:-none}" "$code"
