"""
Does a 3x3 model that fails an answer digit still hold that digit's value? For each answer digit of the first
1,000 validation examples at zero CoT, under teacher forcing:
  value: the carry probe's reading of the value (the column sum + carry, beyond/probes.py carry_targets)
         rounds to it
  digit on the circle: the probe's angle, atan2(sin, cos), rounds to the digit (beyond/probes.py
         probe_targets)
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
from beyond.checkpoints import upgrade_checkpoint   # noqa: E402
from beyond.probes import CarryProbe, carry_targets  # noqa: E402
from eval import load_checkpoint                # noqa: E402
from schedule import remove_cot                 # noqa: E402

for path in sys.argv[1:]:
    model, info = load_checkpoint(path)
    saved = upgrade_checkpoint(torch.load(path, map_location="cpu", weights_only=True))["additions"]
    if not saved.get("probe") or saved["probe"]["weight"].shape[0] != 3:
        sys.exit(f"{path}: trained without the carry probe (--carry-weight 0)")
    probe = CarryProbe(model.config, data.parse_task(info["task"]), 1.0, False)
    probe.load_state_dict(saved["probe"])
    k = data.parse_task(info["task"])
    split = data.load_split(Path(info["data"]) / info["task"], "val")
    ids = np.arange(min(1000, len(split)))
    tokens, lengths, seps = split.batch(ids)
    tokens, _, positions, _, seps, _ = remove_cot((tokens, lengths, seps), np.full(len(ids), math.inf),
                                                  "left", info["keep_position"])
    values = carry_targets(tokens, k)
    stream = {}
    block = model.transformer.h[probe.layer - 1]
    hook = block.register_forward_hook(lambda module, inputs, output: stream.update(x=output))
    with torch.no_grad():
        logits, _ = model(torch.tensor(tokens),
                          position_ids=None if positions is None else torch.tensor(positions))
        reading = probe(stream["x"]).numpy()                          # v / 10, cos, sin of 2 pi v / 10
    hook.remove()
    predicted = model.to_id(logits.argmax(-1)).numpy()
    # positions predicting an answer digit
    answer = ~np.isnan(values) & (np.arange(tokens.shape[1]) > seps[:, 1:2])
    gold_next = np.roll(tokens, -1, axis=1)[answer].reshape(len(ids), -1)
    value_right = np.abs(10 * reading[..., 0][answer] - values[answer]).reshape(len(ids), -1) < 0.5
    angle_digit = np.round(np.arctan2(reading[..., 2], reading[..., 1]) / (2 * np.pi) * 10) % 10
    circle_right = (angle_digit[answer] == values[answer] % 10).reshape(len(ids), -1)
    model_right = predicted[answer].reshape(len(ids), -1) == gold_next
    print(f"{path}: per answer digit, least significant first")
    for name, right in [("probe reads the value", value_right), ("probe's digit on the circle", circle_right),
                        ("model's digit", model_right)]:
        print(f"  {name:28s}:", " / ".join(f"{v:.3f}" for v in right.mean(0)))
