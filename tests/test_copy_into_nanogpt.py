"""model.py copied alone into an empty folder and driven the way nanoGPT's train.py and sample.py drive their
own model.py, the same calls in the same order: a GPTConfig from `model_args` with bias=False,
crop_block_size, configure_optimizers, forward(X, Y) with nanoGPT's targets (Y[t] is the token after X[t]),
estimate_mfu, a checkpoint saved and resumed from `model_args`, and generate(..., temperature, top_k). On
repeated pairs (a a b b ...) every second token can be predicted, so the validation loss falls toward ln(16) /
2; a model that shifted the targets once more could not learn them and would stay at ln(16)."""
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NANOGPT_LIKE = r'''
import json, math, time
import numpy as np
import torch
from model import GPTConfig, GPT

torch.manual_seed(1337)
data = np.repeat(np.random.default_rng(0).integers(0, 16, 20000), 2)      # a a b b c c ...
train_data, val_data = data[:36000], data[36000:]
block_size, batch_size = 16, 32

def get_batch(split):
    d = train_data if split == "train" else val_data
    ix = torch.randint(len(d) - block_size, (batch_size,))
    x = torch.stack([torch.from_numpy(d[i:i + block_size].astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy(d[i + 1:i + 1 + block_size].astype(np.int64)) for i in ix])
    return x, y

@torch.no_grad()
def estimate_loss(model):
    model.eval()
    losses = [model(*get_batch("val"))[1].item() for _ in range(20)]
    model.train()
    return float(np.mean(losses))

model_args = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, bias=False, vocab_size=None, dropout=0.0)
model_args["vocab_size"] = 16
model = GPT(GPTConfig(**model_args))
if block_size < model.config.block_size:
    model.crop_block_size(block_size)
    model_args["block_size"] = block_size
optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
before = estimate_loss(model)
t0 = time.time()
for it in range(500):
    X, Y = get_batch("train")
    logits, loss = model(X, Y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
mfu = model.estimate_mfu(batch_size, (time.time() - t0) / 500)
val_loss = estimate_loss(model)
torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "model_args": model_args,
            "iter_num": 500, "best_val_loss": val_loss, "config": {}}, "ckpt.pt")

checkpoint = torch.load("ckpt.pt", map_location="cpu")                  # resume, as nanoGPT's train.py does
model_args = {k: checkpoint["model_args"][k] for k in ["n_layer", "n_head", "n_embd", "block_size", "bias",
                                                        "vocab_size"]}
resumed = GPT(GPTConfig(**model_args))
state_dict = checkpoint["model"]
for k in list(state_dict):
    if k.startswith("_orig_mod."):
        state_dict[k[len("_orig_mod."):]] = state_dict.pop(k)
resumed.load_state_dict(state_dict)
optimizer = resumed.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
optimizer.load_state_dict(checkpoint["optimizer"])
X, Y = get_batch("train")
resumed(X, Y)[1].backward()
optimizer.step()

resumed.eval()                                                            # sample.py
sample = resumed.generate(torch.tensor([[3, 3, 7]]), 10, temperature=0.8, top_k=5)
no_bias = [n for n, _ in model.named_parameters() if "bias" in n]
print(json.dumps({"before": before, "val_loss": val_loss, "mfu": mfu, "params": model.get_num_params(),
                  "sample": sample.tolist(), "no_bias": no_bias}))
'''


def test_model_py_alone_runs_nanogpts_train_and_sample_calls_and_learns_the_right_objective(tmp_path):
    shutil.copy(ROOT / "model.py", tmp_path / "model.py")
    (tmp_path / "nanogpt_like.py").write_text(NANOGPT_LIKE)
    done = subprocess.run([sys.executable, "nanogpt_like.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert abs(result["before"] - math.log(16)) < 0.3                       # untrained: chance
    assert result["val_loss"] < 0.75 * math.log(16)                         # the pairs' second halves learned
    assert 0 < result["mfu"] < 1 and result["no_bias"] == []                # bias=False: no bias anywhere
    sample = result["sample"][0]
    assert len(sample) == 13 and sample[:3] == [3, 3, 7] and all(0 <= t < 16 for t in sample)
