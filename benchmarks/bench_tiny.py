"""
Training-step time of the CPU preset's model shapes (batch 128, or --batch-size; removal smoothing on),
with the full CoT (mult3x3: 45 tokens a row) and with all of it removed (mult3x3: 20): what chose the
preset's erf GELU and shape. The variants take turns step by step and the median is reported, so a drift
of the machine's speed hits them all alike.

    python benchmarks/bench_tiny.py [--task mult3x3] [--steps 40] [--batch-size 128]
                                    [--variants 3x128:gelu_tanh 2x128:gelu]
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
parser.add_argument("--task", default="mult3x3")
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--variants", nargs="+",
                    default=["3x128:gelu_tanh", "3x128:gelu", "2x128:gelu", "3x96:gelu"],
                    help="LAYERSxWIDTH:ACTIVATION, 4 heads each")
args = parser.parse_args()
if args.batch_size < 1 or args.steps < 1:
    parser.error(f"--batch-size and --steps must be at least 1 (got {args.batch_size} and {args.steps})")

folder = Path(tempfile.mkdtemp()) / args.task
data.generate_multiplication(args.task, folder, {"train": 12800, "val": 10, "test": 10}, seed=0)
split = data.load_split(folder, "train")
meta = data.load_meta(folder)
runs = []
for variant in args.variants:
    shape, activation = variant.split(":")
    n_layer, n_embd = map(int, shape.split("x"))
    torch.manual_seed(0)
    config = GPTConfig(block_size=meta["splits"]["train"]["longest_example"], n_layer=n_layer, n_head=4,
                       n_embd=n_embd, activation=activation, vocab_ids=meta["vocab_ids"])
    model = GPT(config)
    runs.append((variant, model, torch.optim.AdamW(model.parameters(), lr=1e-3)))
rng = np.random.default_rng(0)

for label, n_remove in (("full CoT", 0), ("zero CoT", np.inf)):
    times = {variant: [] for variant, _, _ in runs}
    for step in range(args.steps + 2):                          # the first two steps are a warm-up
        tokens, lengths, seps = split.batch(rng.integers(0, len(split), args.batch_size))
        n_removed = n_remove + sample_offsets(4.0, args.batch_size, rng)
        tokens, labels, positions, _, _, _ = remove_cot((tokens, lengths, seps), n_removed, "left",
                                                        keep_position=True)
        batch = [torch.from_numpy(a) for a in (tokens, labels, positions)]
        for variant, model, optimizer in runs:
            started = time.perf_counter()
            _, loss = model(*batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step >= 2:
                times[variant].append(time.perf_counter() - started)
    steps = ", ".join(f"{variant} {np.median(t) * 1000:.0f} ms/step" for variant, t in times.items())
    print(f"{label} ({tokens.shape[1]} tokens a row): {steps}", flush=True)
