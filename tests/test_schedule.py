import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import data
import model
import schedule
from data import EOT as E
from schedule import (IGNORE, offset_distribution, remove_cot, sample_offsets,
                      scheduled_to_remove, should_reset, steps_per_token)


def test_count_grows_every_round_T_over_delta():
    T = math.ceil(3200 / 32)                                   # 3,200 examples, batch 32 -> T = 100
    assert T == 100 and steps_per_token(T, 8) == 12            # round(12.5) = 12 (half to even)
    counts = [scheduled_to_remove(b, T, 8) for b in range(40)]
    growth = [b for b in range(1, 40) if counts[b] > counts[b - 1]]
    assert growth == [12, 24, 36]
    assert counts[0] == 0 and counts[11] == 0 and counts[12] == 1 and counts[39] == 3
    assert steps_per_token(100, 16) == 6 and scheduled_to_remove(13, 100, 16) == 2
    assert steps_per_token(101, 2) == 50                        # round(50.5) = 50


def test_start_from_and_remove_all_beyond():
    assert scheduled_to_remove(0, 100, 8, start_from=5) == 5
    assert scheduled_to_remove(24, 100, 8, start_from=5) == 7
    assert scheduled_to_remove(47, 100, 8, remove_all_beyond=4) == 3
    assert scheduled_to_remove(48, 100, 8, remove_all_beyond=4) == math.inf
    assert scheduled_to_remove(0, 10, 25) == 1 and scheduled_to_remove(3, 10, 25) == 4   # round(T/Delta) = 0


def test_smoothing_distribution():
    p = offset_distribution(4)
    assert len(p) == 100 and p.sum() == pytest.approx(1.0)
    assert p[0] == pytest.approx(1 - math.exp(-4)) and round(p[0], 3) == 0.982
    assert p[1] == pytest.approx((1 - math.exp(-4)) * math.exp(-4))
    q = offset_distribution(0.01)                              # small lambda: leftover mass lands on o = 99
    assert q.sum() == pytest.approx(1.0) and q[99] > q[98]
    assert offset_distribution(math.inf).tolist() == [1.0] + [0.0] * 99
    with pytest.raises(ValueError):
        offset_distribution(-1)


def test_offsets_are_drawn_per_example():
    o = sample_offsets(4, 200000, np.random.default_rng(0))
    assert abs(np.mean(o == 0) - 0.9817) < 0.002 and abs(np.mean(o == 1) - 0.0180) < 0.002
    assert sample_offsets(math.inf, 5, np.random.default_rng(0)).tolist() == [0] * 5


def test_reset_rule():
    assert should_reset(3, 2, all_removed_in_previous_batch=False)
    assert not should_reset(3, 2, all_removed_in_previous_batch=True)
    assert not should_reset(2, 2, False)
    assert not should_reset(3, 2, False, reset_enabled=False)
    assert should_reset(math.inf, 7, False) and not should_reset(math.inf, math.inf, False)


# Two rows: input (1 2), separator, CoT, separator, answer (7), separator; the second row is padded.
TOKENS = np.array([[1, 2, E, 10, 11, 12, 13, E, 7, E],
                   [1, 2, E, 10, 11, E, 7, E, E, E]])
LENGTHS = np.array([10, 8])
SEPS = np.array([[2, 7, 9], [2, 5, 7]])


def test_remove_left_with_clipping():
    tokens, targets, positions, lengths, seps, gone = remove_cot((TOKENS, LENGTHS, SEPS), np.array([2, 5]))
    assert tokens.tolist() == [[1, 2, E, 12, 13, E, 7, E], [1, 2, E, E, 7, E, E, E]]
    assert targets.tolist() == [[IGNORE, IGNORE, 12, 13, E, 7, E, IGNORE],   # targets[t]: the token after t
                                [IGNORE, IGNORE, E, 7, E, IGNORE, IGNORE, IGNORE]]
    assert positions is None and lengths.tolist() == [8, 6]
    assert seps.tolist() == [[2, 5, 7], [2, 3, 5]] and gone.tolist() == [False, True]


def test_remove_right():
    tokens, _, _, _, _, gone = remove_cot((TOKENS, LENGTHS, SEPS), np.array([1, 1]), side="right")
    assert tokens.tolist() == [[1, 2, E, 10, 11, 12, E, 7, E], [1, 2, E, 10, E, 7, E, E, E]]
    assert gone.tolist() == [True, True]                          # reference: the span always ends there


def test_remove_nothing_and_everything():
    tokens, targets, *_ , gone = remove_cot((TOKENS, LENGTHS, SEPS), np.zeros(2))
    assert tokens.tolist() == TOKENS.tolist() and not gone.any()
    assert targets[1, 7:].tolist() == [IGNORE] * 3               # padding is never a target
    tokens, *_, gone = remove_cot((TOKENS, LENGTHS, SEPS), np.full(2, math.inf))
    assert tokens.tolist() == [[1, 2, E, E, 7, E], [1, 2, E, E, 7, E]] and gone.all()


def test_keep_position_ids():
    # Reference: position_ids[start-1:] += n, so the answer keeps its original positions, and the token
    # right before the removed span moves with it (the first separator on the left side).
    _, _, positions, lengths, _, _ = remove_cot((TOKENS, LENGTHS, SEPS), np.array([2, 5]), keep_position=True)
    assert positions[0].tolist() == [0, 1, 4, 5, 6, 7, 8, 9]
    assert positions[1, :lengths[1]].tolist() == [0, 1, 4, 5, 6, 7]
    _, _, positions, _, _, _ = remove_cot((TOKENS, LENGTHS, SEPS), np.array([2, 0]), side="right",
                                          keep_position=True)
    assert positions[0].tolist() == [0, 1, 2, 3, 6, 7, 8, 9]      # 10 at 3, 11 moved to 6, then 7, 8, 9
    assert positions[1, :8].tolist() == list(range(8))


@pytest.mark.parametrize("lam", [0.4, 0.7, 1.0, 2.5])
def test_smoothing_distribution_is_a_valid_distribution(lam):
    p = offset_distribution(lam)
    assert (p >= 0).all() and p.sum() == pytest.approx(1.0)
    draws = sample_offsets(lam, 20000, np.random.default_rng(0))     # the draws follow it
    frequencies = np.bincount(draws, minlength=len(p))
    assert np.abs(frequencies[:5] / len(draws) - p[:5]).max() < 0.015


COPIED_ALONE = """
import numpy as np
from schedule import EOT, IGNORE, remove_cot, sample_offsets, scheduled_to_remove
assert [scheduled_to_remove(b, 100, 8) for b in (0, 11, 12, 24)] == [0, 0, 1, 2]   # s(t), T = 100, Delta = 8
offsets = sample_offsets(4.0, 1000, np.random.default_rng(0))
assert offsets.min() == 0 and 0.97 < np.mean(offsets == 0) < 0.995                  # P(0) = 1 - e^-4 = 0.982
tokens = np.array([[1, 2, EOT, 10, 11, 12, EOT, 7, EOT]])
batch = (tokens, np.array([9]), np.array([[2, 6, 8]]))
out, targets, _, lengths, seps, gone = remove_cot(batch, np.array([2]))
assert out.tolist() == [[1, 2, EOT, 12, EOT, 7, EOT]]
assert targets[0].tolist() == [IGNORE] * 2 + [12, EOT, 7, EOT, IGNORE]
print("ok")
"""


def test_schedule_py_works_copied_alone_into_another_repo(tmp_path):
    shutil.copy(schedule.__file__, tmp_path / "schedule.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", COPIED_ALONE], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_constants_agree_with_the_tokenizer_and_the_model():
    assert schedule.EOT == model.EOT == data.EOT == data.tokenizer().eot_token
    assert schedule.IGNORE == model.IGNORE == -100


DOCSTRING_LOOP = """
import json, sys
import numpy as np
import torch
import schedule
from schedule import sample_offsets, scheduled_to_remove, should_reset

PAD, SEP, max_steps, rng_data = 14, 15, 200, np.random.default_rng(1)      # a 16-token vocabulary


def get_batch(rows=16):
    '''input (3 tokens) SEP cot (4..8 tokens) SEP answer (2 tokens) SEP, right-padded with PAD'''
    draw = lambda n: rng_data.integers(1, 10, n)
    parts = [(draw(3), draw(rng_data.integers(4, 9)), draw(2)) for _ in range(rows)]
    seqs = [np.concatenate([a, [SEP], c, [SEP], b, [SEP]]) for a, c, b in parts]
    lengths = np.array([len(q) for q in seqs])
    tokens = np.full((rows, lengths.max()), PAD)
    for row, q in zip(tokens, seqs):
        row[:len(q)] = q
    seps = np.stack([np.flatnonzero(row == SEP)[:3] for row in tokens])
    return tokens, lengths, seps


class Model(torch.nn.Module):                     # nanoGPT's forward(x, targets) -> (logits, loss), ignore -1
    def __init__(self):
        super().__init__()
        self.emb, self.head = torch.nn.Embedding(16, 32), torch.nn.Linear(32, 16)

    def forward(self, x, targets):
        logits = self.head(self.emb(x))
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss


model, seen, resets = Model(), [], []
real_remove, real_reset = schedule.remove_cot, should_reset
def remove_cot(*args, **kwargs):
    out = real_remove(*args, **kwargs)
    seen.append(out[0])
    return out
def should_reset(*args):
    resets.append(real_reset(*args))
    return resets[-1]
loop = "\\n".join(line[4:] for line in schedule.__doc__.split("\\n") if line.startswith("    "))
exec(loop)
print(json.dumps({"s": s, "resets": sum(resets), "padded": sum(int((t == PAD).any()) for t in seen),
                  "gpt2_ids": sum(int((t >= 16).any()) for t in seen), "loss": loss.item(),
                  "lines": len(loop.splitlines())}))
"""


def test_the_docstrings_loop_runs_copied_alone_on_a_16_token_vocabulary(tmp_path):
    """schedule.py alone and its docstring's loop, as written, 200 steps on a 16-token vocabulary with a model
    taking nanoGPT's targets: s(t) advances, AdamW restarts with it, offsets pad the shorter rows with the pad
    id given, and no GPT-2 id (>= 16) appears in any batch."""
    shutil.copy(schedule.__file__, tmp_path / "schedule.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", DOCSTRING_LOOP], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["lines"] <= 16 and result["s"] == 199 // 12 and result["resets"] >= 5
    assert result["padded"] > 0 and result["gpt2_ids"] == 0 and result["loss"] == result["loss"]
