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
    tokens, labels, positions, lengths, seps, gone = remove_cot(TOKENS, LENGTHS, SEPS, np.array([2, 5]))
    assert tokens.tolist() == [[1, 2, E, 12, 13, E, 7, E], [1, 2, E, E, 7, E, E, E]]
    assert labels.tolist() == [[IGNORE, IGNORE, IGNORE, 12, 13, E, 7, E],
                               [IGNORE, IGNORE, IGNORE, E, 7, E, IGNORE, IGNORE]]
    assert positions is None and lengths.tolist() == [8, 6]
    assert seps.tolist() == [[2, 5, 7], [2, 3, 5]] and gone.tolist() == [False, True]


def test_remove_right():
    tokens, _, _, _, _, gone = remove_cot(TOKENS, LENGTHS, SEPS, np.array([1, 1]), side="right")
    assert tokens.tolist() == [[1, 2, E, 10, 11, 12, E, 7, E], [1, 2, E, 10, E, 7, E, E, E]]
    assert gone.tolist() == [True, True]                          # reference: the span always ends there


def test_remove_nothing_and_everything():
    tokens, labels, *_ , gone = remove_cot(TOKENS, LENGTHS, SEPS, np.zeros(2))
    assert tokens.tolist() == TOKENS.tolist() and not gone.any()
    assert labels[1, 8:].tolist() == [IGNORE, IGNORE]           # padding never has a loss
    tokens, *_, gone = remove_cot(TOKENS, LENGTHS, SEPS, np.full(2, math.inf))
    assert tokens.tolist() == [[1, 2, E, E, 7, E], [1, 2, E, E, 7, E]] and gone.all()


def test_keep_position_ids():
    # Reference: position_ids[start-1:] += n, so the answer keeps its original positions, and the token
    # right before the removed span moves with it (the first separator on the left side).
    _, _, positions, lengths, _, _ = remove_cot(TOKENS, LENGTHS, SEPS, np.array([2, 5]), keep_position=True)
    assert positions[0].tolist() == [0, 1, 4, 5, 6, 7, 8, 9]
    assert positions[1, :lengths[1]].tolist() == [0, 1, 4, 5, 6, 7]
    _, _, positions, _, _, _ = remove_cot(TOKENS, LENGTHS, SEPS, np.array([2, 0]), side="right", keep_position=True)
    assert positions[0].tolist() == [0, 1, 2, 3, 6, 7, 8, 9]      # 10 at 3, 11 moved to 6, then 7, 8, 9
    assert positions[1, :8].tolist() == list(range(8))


# ----------------------------------------------------------------------------- the adaptive gate

from schedule import GateConfig, gate_measure, gate_step, new_gate_state, retry_gently  # noqa: E402

GATE = GateConfig(threshold=0.9, min_steps=5, max_steps=40, collapse=0.05, patience=10, max_retries=2,
                  max_chunk=1, beta=0.5)


def feed(gate, measures, config=GATE, longest_cot=25, first_batch=0, remove_all_beyond=math.inf):
    actions = []
    for batch, m in enumerate(measures, first_batch):
        action, gate, _ = gate_step(gate, m, config, longest_cot, remove_all_beyond, batch=batch)
        actions.append(action)
    return actions, gate


def test_gate_measure_is_a_bias_corrected_average():
    _, gate = feed(new_gate_state(), [0.8])
    assert gate_measure(gate, GATE) == pytest.approx(0.8)             # not 0.4: corrected like Adam's moments
    _, gate = feed(new_gate_state(), [0.8, 0.4])
    assert gate_measure(gate, GATE) == pytest.approx((0.5 * 0.8 * 0.5 + 0.5 * 0.4) / (1 - 0.25))


def test_gate_advances_only_above_the_threshold():
    actions, gate = feed(new_gate_state(), [0.85] * 39)                      # below 0.9: holds until max_steps
    assert set(actions) == {"hold"} and gate["to_remove"] == 0
    actions, gate = feed(new_gate_state(), [1.0] * 5)                        # above: after min_steps, not before
    assert actions == ["hold"] * 4 + ["advance"] and gate["to_remove"] == 1 and gate["steps"] == 0
    actions, gate = feed(new_gate_state(), [1.0] * 3 + [0.0] * 3 + [1.0] * 2)
    assert actions == ["hold"] * 8 and gate["to_remove"] == 0              # min_steps passed, measure dipped


def test_gate_advances_anyway_at_the_maximum():
    actions, gate = feed(new_gate_state(), [0.5] * 40)
    assert actions == ["hold"] * 39 + ["advance"] and gate["to_remove"] == 1 and gate["chunk"] == 1


def test_gate_removes_all_once_the_count_covers_the_cot():
    _, gate = feed(new_gate_state(24), [1.0] * 5)
    assert gate["to_remove"] == math.inf
    actions, still = feed(gate, [0.0] * 100)                           # nothing left to schedule or roll back
    assert set(actions) == {"hold"} and still["to_remove"] == math.inf
    _, gate, _ = gate_step({**new_gate_state(3), "steps": 39}, 0.0, GATE, longest_cot=25, remove_all_beyond=4)
    assert gate["to_remove"] == math.inf
    actions, gate = feed(new_gate_state(0), [1.0] * GATE.min_steps, remove_all_beyond=1)   # the ablation's
    assert actions[-1] == "advance" and gate["to_remove"] == math.inf    # "explicit CoT, then all at once"


def test_gate_reports_recovery_at_zero_cot_once():
    _, gate = feed(new_gate_state(24), [1.0] * 5)                            # the last advance: all CoT gone
    actions, gate = feed(gate, [0.5] * 20 + [1.0] * 60)
    first = actions.index("recovered")
    assert actions.count("recovered") == 1 and set(actions) == {"hold", "recovered"}
    assert first > 20 and gate_measure(feed(new_gate_state(math.inf), [0.5] * 20 + [1.0] * (first - 20))[1], GATE) < 0.9
    assert gate["recovered"] and gate["to_remove"] == math.inf
    actions, _ = feed(new_gate_state(math.inf), [1.0] * 4)                   # min_steps first
    assert actions == ["hold"] * 4


def test_gate_chunk_grows_while_the_model_recovers_at_once():
    config = GateConfig(**{**GATE.__dict__, "max_chunk": 4})
    gate, counts = new_gate_state(), []
    for _ in range(4):
        _, gate = feed(gate, [1.0] * 5, config)                        # recovered within 2 * min_steps
        counts.append(gate["to_remove"])
    assert counts == [1, 3, 7, 11]                                     # chunks 1, 2, 4, 4 (capped)
    _, gate = feed(gate, [0.5] * 40, config)                           # forced at max_steps: back to 1
    assert gate["to_remove"] == 15 and gate["chunk"] == 1


def test_gate_rolls_back_after_a_collapse_and_retries_gently():
    actions, before = feed(new_gate_state(3), [1.0] * 4)
    action, after, measure = gate_step(before, 1.0, GATE, 25)
    assert measure == pytest.approx(1.0)
    assert action == "advance" and after["to_remove"] == 4
    actions, failed = feed(after, [0.0] * 10)                          # never recovers at count 4
    assert actions == ["hold"] * 9 + ["rollback"]
    retry = retry_gently(before, failed, GATE)
    assert retry["to_remove"] == 3 and retry["retries"] == 1 and retry["chunk"] == 1
    assert retry["hold_at_least"] == before["steps"] + 5 * 2       # min_steps * 2^retries more
    actions, gate = feed(retry, [1.0] * 10)
    assert actions == ["hold"] * 9 + ["advance"] and gate["to_remove"] == 4 and gate["attempt"] == 1
    actions, failed = feed(gate, [0.0] * 10)
    assert actions[-1] == "rollback"
    retry = retry_gently(before, failed, GATE)
    assert retry["retries"] == 2 and retry["hold_at_least"] == before["steps"] + 5 * 4
    actions, gate = feed(retry, [1.0] * 20)
    actions, gate = feed(gate, [0.0] * 40)                             # retries used up: waits for max_steps
    assert "rollback" not in actions and actions[-1] == "advance" and gate["to_remove"] == 5
    assert gate["attempt"] == 0                                        # a fresh advance has its own retries


def test_no_rollback_before_the_first_advance():
    actions, gate = feed(new_gate_state(), [0.0] * 39)
    assert set(actions) == {"hold"} and gate["low_steps"] == 39


def test_a_retry_holds_longer_than_max_steps_would():
    config = GateConfig(**{**GATE.__dict__, "max_steps": 6})
    before = {**new_gate_state(2), "steps": 5, "average": 0.9, "advanced": True}
    retry = retry_gently(before, {**new_gate_state(3), "attempt": 0}, config)
    actions, gate = feed(retry, [0.5] * 10, config)                    # min_steps * 2 = 10 more steps
    assert actions == ["hold"] * 9 + ["advance"] and gate["to_remove"] == 3


@pytest.mark.parametrize("lam", [0.4, 0.7, 1.0, 2.5])
def test_smoothing_distribution_is_a_valid_distribution(lam):
    p = offset_distribution(lam)
    assert (p >= 0).all() and p.sum() == pytest.approx(1.0)
    draws = sample_offsets(lam, 20000, np.random.default_rng(0))     # the draws follow it
    frequencies = np.bincount(draws, minlength=len(p))
    assert np.abs(frequencies[:5] / len(draws) - p[:5]).max() < 0.015


def test_deadline_shares_the_batches_left_among_the_advances_to_come():
    from schedule import steps_allowed
    config = GateConfig(**{**GATE.__dict__, "max_steps": 1000, "deadline": 500})
    removing = {**new_gate_state(1), "advanced": True}
    assert steps_allowed(new_gate_state(0), config, 25, batch=0) == 1000        # the explicit CoT: its own pace
    assert steps_allowed(removing, config, 25, batch=20) == 20            # 480 batches / 24 tokens
    assert steps_allowed({**removing, "to_remove": 20, "steps": 30}, config, 25, batch=430) == 20   # began at 400:
    assert steps_allowed({**removing, "to_remove": 20, "chunk": 4}, config, 25, batch=400) == 50    # 100 / 5 or / 2
    assert steps_allowed({**removing, "to_remove": 24}, config, 25, batch=700) == 5      # past it: min_steps
    actions, gate = feed(removing, [0.5] * 20, config, first_batch=21)  # never recovers: the pace advances it
    assert actions == ["hold"] * 19 + ["advance"] and gate["to_remove"] == 2


def test_slower_counts_get_their_weight_of_the_batches_left():
    """--slower-from 14 --slower-by 2 on a 25-token CoT: at count 1, 13 counts of weight 1 and 11 of weight 2
    share the 3,400 batches left, 100 each for the light ones and 200 for the heavy; without weights the
    share is the even one (the preset's pace, unchanged)."""
    from schedule import steps_allowed
    even = GateConfig(**{**GATE.__dict__, "max_steps": 1000, "deadline": 3500})
    slower = GateConfig(**{**even.__dict__, "slower_from": 14, "slower_by": 2.0})
    at = lambda count, batch: {**new_gate_state(count), "advanced": True, "steps": 0}
    assert steps_allowed(at(1, 100), slower, 25, batch=100) == 3400 * 1 // 35
    assert steps_allowed(at(14, 1300), slower, 25, batch=1300) == 2200 * 2 // 22 == 200
    assert steps_allowed(at(1, 100), even, 25, batch=100) == 3400 // 24
    for count in range(1, 25):                                            # the even share is the old formula
        for batch in range(0, 4000, 37):
            old = int(max(even.min_steps, min(even.max_steps, (3500 - batch) // max(1, 25 - count))))
            assert steps_allowed(at(count, batch), even, 25, batch=batch) == old


COPIED_ALONE = """
import numpy as np
from schedule import EOT, IGNORE, remove_cot, sample_offsets, scheduled_to_remove
assert [scheduled_to_remove(b, 100, 8) for b in (0, 11, 12, 24)] == [0, 0, 1, 2]      # s(t), T = 100, Delta = 8
offsets = sample_offsets(4.0, 1000, np.random.default_rng(0))
assert offsets.min() == 0 and 0.97 < np.mean(offsets == 0) < 0.995                  # P(0) = 1 - e^-4 = 0.982
tokens = np.array([[1, 2, EOT, 10, 11, 12, EOT, 7, EOT]])
out, labels, _, lengths, seps, gone = remove_cot(tokens, np.array([9]), np.array([[2, 6, 8]]), np.array([2]))
assert out.tolist() == [[1, 2, EOT, 12, EOT, 7, EOT]] and labels[0, :3].tolist() == [IGNORE] * 3
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


def test_explicit_phase_past_the_deadline_removes_all_cot_at_the_first_advance():
    """The explicit CoT learned only after the deadline: nothing is left to pace, so the first advance removes
    everything (a run would otherwise end with most of its CoT in place)."""
    config = GateConfig(**{**GATE.__dict__, "deadline": 30})
    _, gate = feed(new_gate_state(), [1.0] * 5, config, first_batch=40)     # learned at batch 44 > 30
    assert gate["to_remove"] == math.inf
    _, gate = feed(new_gate_state(), [1.0] * 5, config, first_batch=10)     # learned in time: one token
    assert gate["to_remove"] == 1
