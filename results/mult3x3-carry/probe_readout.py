"""
Does a 3x3 model that fails an answer digit still hold that digit's value? For each answer digit of the first
1,000 validation examples at zero CoT, under teacher forcing:
  probe: the carry probe's reading (the column sum + carry, data.carry_targets) rounds to the right value
  model: the model's argmax is the right digit
    python results/mult3x3-carry/probe_readout.py runs/mult3x3-carry-seed10/best.pt [more checkpoints]
"""
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import data                                     # noqa: E402  (the repository's files, from any folder)
from eval import load_checkpoint                # noqa: E402
from schedule import remove_cot                 # noqa: E402

for path in sys.argv[1:]:
    model, info = load_checkpoint(path)
    if not getattr(model.config, "carry_probe_layer", 0):
        sys.exit(f"{path}: trained without the carry probe (--carry-weight 0)")
    k = data.parse_task(info["task"])
    split = data.load_split(Path(info["data"]) / info["task"], "val")
    ids = np.arange(min(1000, len(split)))
    tokens, lengths, seps = split.batch(ids)
    tokens, _, positions, _, seps, _ = remove_cot(tokens, lengths, seps, np.full(len(ids), math.inf), "left",
                                                  info["keep_position"])
    values = data.carry_targets(tokens, k)
    stream = {}
    block = model.transformer.h[model.config.carry_probe_layer - 1]
    hook = block.register_forward_hook(lambda module, inputs, output: stream.update(x=output))
    with torch.no_grad():
        logits = model(torch.tensor(tokens), position_ids=None if positions is None else torch.tensor(positions))
        reading = model.carry_probe(stream["x"]).squeeze(-1).numpy() * 10       # the probe reads in units of ten
    hook.remove()
    predicted = model.to_id(logits.argmax(-1)).numpy()
    answer = ~np.isnan(values) & (np.arange(tokens.shape[1]) > seps[:, 1:2])    # positions predicting an answer digit
    gold_next = np.roll(tokens, -1, axis=1)[answer].reshape(len(ids), -1)
    probe_right = np.abs(reading[answer] - values[answer]).reshape(len(ids), -1) < 0.5
    model_right = predicted[answer].reshape(len(ids), -1) == gold_next
    print(f"{path}: per answer digit, least significant first")
    print("  probe reads the value:", " / ".join(f"{v:.3f}" for v in probe_right.mean(0)))
    print("  model's digit        :", " / ".join(f"{v:.3f}" for v in model_right.mean(0)))
