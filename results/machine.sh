#!/usr/bin/env bash
# machine.json of a run folder: the CPU, its cores, the GPU if one was used (train.py's default device), and the
# code's commit ($CODE where the tree it runs in is a copy, as on a lent GPU machine, whose .git may be stale).
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
gpu=$(python -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "")')
code=${CODE:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
printf '{\n "cpu": "%s",\n "cores": %s,\n "gpu": "%s",\n "code": "%s"\n}\n' "$cpu" "$(nproc --all)" "${gpu:-none}" "$code"
