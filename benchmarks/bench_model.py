"""
Speed of model.py with GPT-2 small's shape and random weights:

  1. one training step of mult4x4, removal smoothing on (lambda=4): forward, backward, AdamW; in s/step,
     tokens/s and (on a GPU) model-FLOPs utilization, MFU = 6N + 12 L T d FLOPs per token (PaLM, App. B)
     against the GPU's dense peak;
  2. batch-1 greedy decoding of a 4x4 prompt plus 12 new tokens, in examples per second.

    python benchmarks/bench_model.py [--steps 3] [--examples 10]                 # fp32 on the CPU
    python benchmarks/bench_model.py --device cuda --dtype bfloat16 --compile --batch-size 32 --steps 20
"""
import argparse
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import data                                                     # noqa: E402
from model import GPT, GPTConfig                                # noqa: E402
from schedule import remove_cot, sample_offsets                 # noqa: E402
from train import to_device                                     # noqa: E402

PEAK_TFLOPS = {"H100": {"bfloat16": 989, "float32": 495}, "H200": {"bfloat16": 989, "float32": 495},
               "A100": {"bfloat16": 312, "float32": 156}}       # dense; float32 runs as TF32 (train.py turns it on)

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--examples", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--device", default="cpu")
parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="bfloat16: autocast")
parser.add_argument("--compile", action="store_true")
parser.add_argument("--peak-tflops", type=float, help="the device's dense peak (default: known GPUs by name)")
args = parser.parse_args()
device = torch.device(args.device)
if device.type == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True


def synchronized_time():
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


torch.manual_seed(0)
folder = Path(tempfile.mkdtemp()) / "mult4x4"
data.generate_multiplication("mult4x4", folder, {"train": 10 * args.batch_size, "val": 32, "test": 32}, seed=0)
split = data.load_split(folder, "train")
model = GPT(GPTConfig()).to(device)                            # GPT-2 small: 12 layers, 768 wide, 50257 vocab
forward = torch.compile(model) if args.compile else model
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
autocast = torch.autocast(device.type, torch.bfloat16) if args.dtype == "bfloat16" else nullcontext()
rng = np.random.default_rng(0)

times, tokens_per_step, flops_per_token = [], [], []
warmup = 3 if args.compile else 1
for step in range(args.steps + warmup):
    ids = np.arange(args.batch_size * step, args.batch_size * (step + 1)) % len(split)
    tokens, lengths, seps = split.batch(ids)
    tokens, labels, _, _, _, _ = remove_cot(tokens, lengths, seps, 3 + sample_offsets(4.0, args.batch_size, rng))
    started = synchronized_time()
    with autocast:
        _, loss = forward(to_device(tokens, device), to_device(labels, device))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if step >= warmup:                                          # the first steps warm up (and compile)
        times.append(synchronized_time() - started)
        tokens_per_step.append(tokens.size)
        c = model.config
        flops_per_token.append(6 * model.num_params() + 12 * c.n_layer * tokens.shape[1] * c.n_embd)
tokens_per_s = sum(tokens_per_step) / sum(times)
flops_per_s = np.dot(flops_per_token, tokens_per_step) / sum(times)
name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
peak = args.peak_tflops or next((p[args.dtype] for gpu, p in PEAK_TFLOPS.items() if gpu in name), None)
mfu = f"MFU {flops_per_s / (peak * 1e12):.1%} of {peak:g} TFLOPS" if peak else "MFU: pass --peak-tflops"
print(f"training step, batch {args.batch_size} mult4x4, {args.dtype}{' compiled' if args.compile else ''} on {name}: "
      f"{np.mean(times):.3f} s/step, {tokens_per_s:,.0f} tokens/s, {flops_per_s / 1e12:.2f} TFLOPS, {mfu} "
      f"(steps: {', '.join(f'{t:.3f}' for t in times)})")

model.eval()
prompt = to_device(split.batch(np.array([0]))[0][:, :split.seps[0, 0] - split.starts[0] + 1], device)
model.generate(prompt, 12, stop_after_separators=10 ** 9)    # warm-up
started = synchronized_time()
for _ in range(args.examples):
    out = model.generate(prompt, 12, stop_after_separators=10 ** 9)
elapsed = synchronized_time() - started
assert out.shape[1] == prompt.shape[1] + 12
print(f"batch-1 decoding, {prompt.shape[1]}-token 4x4 prompt + 12 new tokens: {args.examples / elapsed:.2f} examples/s")
