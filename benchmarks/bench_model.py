"""
Speed of model.py with GPT-2 small's shape and random weights, fp32 on the CPU (the issue's two figures):

  1. one training step, batch 32 of mult4x4, removal smoothing on (lambda=4): forward, backward, AdamW;
  2. batch-1 greedy decoding of a 4x4 prompt plus 12 new tokens, in examples per second.

    python benchmarks/bench_model.py [--steps 3] [--examples 10]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import data                                                     # noqa: E402
from model import GPT, GPTConfig                                # noqa: E402
from schedule import remove_cot, sample_offsets                 # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--examples", type=int, default=10)
args = parser.parse_args()

torch.manual_seed(0)
folder = Path(tempfile.mkdtemp()) / "mult4x4"
data.generate_multiplication("mult4x4", folder, {"train": 320, "val": 32, "test": 32}, seed=0)
split = data.load_split(folder, "train")
model = GPT(GPTConfig())                                       # GPT-2 small: 12 layers, 768 wide, 50257 vocab
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
rng = np.random.default_rng(0)

times = []
for step in range(args.steps + 1):                             # the first step is a warm-up
    tokens, lengths, seps = split.batch(np.arange(32 * step, 32 * step + 32) % len(split))
    tokens, labels, _, _, _, _ = remove_cot(tokens, lengths, seps, 3 + sample_offsets(4.0, 32, rng))
    started = time.perf_counter()
    _, loss = model(torch.from_numpy(tokens), torch.from_numpy(labels))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - started)
print(f"training step, batch 32 mult4x4: {np.mean(times[1:]):.2f} s/step (steps: {', '.join(f'{t:.2f}' for t in times[1:])})")

model.eval()
prompt = torch.from_numpy(split.batch(np.array([0]))[0][:, :split.seps[0, 0] - split.starts[0] + 1])
model.generate(prompt, 12, stop_after_separators=10 ** 9)    # warm-up
started = time.perf_counter()
for _ in range(args.examples):
    out = model.generate(prompt, 12, stop_after_separators=10 ** 9)
elapsed = time.perf_counter() - started
assert out.shape[1] == prompt.shape[1] + 12
print(f"batch-1 decoding, {prompt.shape[1]}-token 4x4 prompt + 12 new tokens: {args.examples / elapsed:.2f} examples/s")
