"""
Speed of train.py's own training step and of batch-1 decoding, with GPT-2 small's shape and random weights, on
this machine's CPU (benchmarks/bench_gpu.py measures the paper's recipe on a GPU):

  1. beyond.plan.time_training_step, what `train.py --plan` times: forward, backward and AdamW on a mult4x4
     batch of 32 with the whole CoT, as `train.py --task mult4x4 --init gpt2` runs it; s/step and tokens/s;
  2. batch-1 greedy decoding of a 4x4 prompt plus 12 new tokens, in examples per second.

    python benchmarks/bench_model.py [--steps 3] [--examples 10]
"""
import argparse
import atexit
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_gpu import random_gpt2, train_args
import data
import train
from beyond.plan import time_training_step

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=data.POSITIVE, default=3)
parser.add_argument("--examples", type=data.POSITIVE, default=10)
args = parser.parse_args()

root = Path(tempfile.mkdtemp())                                 # ~0.5 GB of weights: removed at exit
atexit.register(shutil.rmtree, root, ignore_errors=True)
# GPT-2 small: 12 layers, 768 wide, 50257 vocab
gpt2 = random_gpt2(root / "gpt2", 12, 12, 768)
data.generate_multiplication("mult4x4", root / "data" / "mult4x4", {"train": 64, "val": 8, "test": 8}, seed=0)
run = train_args("mult4x4", root, gpt2, "cpu")
task = data.load_task(run)
model = train.build_model(run, task.meta, task.longest_example)
seconds, tokens = time_training_step(train, run, task, model, args.steps)[0][0]
print(f"training step, batch 32 mult4x4, float32 on cpu: {np.mean(seconds):.3f} s/step, "
      f"{tokens / np.mean(seconds):,.0f} tokens/s (steps: {', '.join(f'{s:.3f}' for s in seconds)})")

model.eval()
prompt = torch.from_numpy(task.val.batch(np.array([0]))[0][:, :task.val.seps[0, 0] - task.val.starts[0] + 1])
model.generate(prompt, 12, temperature=0)    # warm-up
started = time.perf_counter()
for _ in range(args.examples):
    out = model.generate(prompt, 12, temperature=0)
elapsed = time.perf_counter() - started
assert out.shape[1] == prompt.shape[1] + 12
print(f"batch-1 decoding, {prompt.shape[1]}-token 4x4 prompt + 12 new tokens: "
      f"{args.examples / elapsed:.2f} examples/s")
