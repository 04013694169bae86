"""
Which CoT or answer token fails when one more CoT token is removed? Teacher-forced accuracy at every labelled
position of the first 1,000 validation examples, at each removal level given (all mult rows of a task have the
same template, so a column is the same token of every example); each position is printed as
gold-token-of-the-first-example:accuracy.
    python results/mult4x4-wall-seed0/position_readout.py RUN/ckpt.pt 14 15 16
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import data                                     # noqa: E402  (the repository's files, from any folder)
from eval import load_checkpoint, targets_right  # noqa: E402
from model import CheckpointError               # noqa: E402
from schedule import IGNORE, remove_cot         # noqa: E402

try:
    levels = [int(n) for n in sys.argv[2:]]
    if not levels:
        raise ValueError("no removal level given")
    model, info = load_checkpoint(sys.argv[1])
    split = data.load_split(Path(info["data"]) / info["task"], "val")
except (IndexError, ValueError, CheckpointError, data.DataError) as e:
    sys.exit(f"position_readout.py: error: {e} "
             f"(usage: position_readout.py CHECKPOINT N_REMOVED [N_REMOVED ...])")
enc = data.tokenizer()
ids = np.arange(min(1000, len(split)))
for n_remove in levels:
    tokens, lengths, seps = split.batch(ids)
    tokens, targets, positions, *_ = remove_cot((tokens, lengths, seps), np.full(len(ids), n_remove), "left",
                                                info["keep_position"])
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(tokens),
                          position_ids=None if positions is None else torch.from_numpy(positions))
    right = targets_right(model, logits, torch.from_numpy(targets)).numpy()   # position t predicts targets[t]
    columns = np.flatnonzero((targets != IGNORE).all(axis=0))
    print(f"{n_remove} removed: exact match {right[:, columns].all(axis=1).mean():.3f}")
    print("  " + " ".join(f"{enc.decode([int(targets[0, c])]).strip() or '_'}:{right[:, c].mean():.2f}"
                          for c in columns))
