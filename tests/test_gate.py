"""The adaptive gate of beyond/gate.py: its decisions are pure functions of plain numbers."""
import math

import pytest

from beyond.gate import GateConfig, gate_measure, gate_step, new_gate_state, retry_gently, steps_allowed

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
    # below 0.9: holds until max_steps
    actions, gate = feed(new_gate_state(), [0.85] * 39)
    assert set(actions) == {"hold"} and gate["to_remove"] == 0
    # above: after min_steps, not before
    actions, gate = feed(new_gate_state(), [1.0] * 5)
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
    assert first > 20 and gate_measure(feed(new_gate_state(math.inf), [0.5] * 20 + [1.0] * (first - 20))[1],
                                       GATE) < 0.9
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


def test_deadline_shares_the_batches_left_among_the_advances_to_come():
    config = GateConfig(**{**GATE.__dict__, "max_steps": 1000, "deadline": 500})
    removing = {**new_gate_state(1), "advanced": True}
    # the explicit CoT: its own pace
    assert steps_allowed(new_gate_state(0), config, 25, batch=0) == 1000
    assert steps_allowed(removing, config, 25, batch=20) == 20            # 480 batches / 24 tokens
    # began at 400:
    assert steps_allowed({**removing, "to_remove": 20, "steps": 30}, config, 25, batch=430) == 20
    # 100 / 5 or / 2
    assert steps_allowed({**removing, "to_remove": 20, "chunk": 4}, config, 25, batch=400) == 50
    assert steps_allowed({**removing, "to_remove": 24}, config, 25, batch=700) == 5      # past it: min_steps
    actions, gate = feed(removing, [0.5] * 20, config, first_batch=21)  # never recovers: the pace advances it
    assert actions == ["hold"] * 19 + ["advance"] and gate["to_remove"] == 2


def test_slower_counts_get_their_weight_of_the_batches_left():
    """--slower-from 14 --slower-by 2 on a 25-token CoT: at count 1, 13 counts of weight 1 and 11 of weight 2
    share the 3,400 batches left, 100 each for the light ones and 200 for the heavy; without weights the
    share is the even one (the preset's pace, unchanged)."""
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


def test_explicit_phase_past_the_deadline_removes_all_cot_at_the_first_advance():
    """The explicit CoT learned only after the deadline: nothing is left to pace, so the first advance removes
    everything (a run would otherwise end with most of its CoT in place)."""
    config = GateConfig(**{**GATE.__dict__, "deadline": 30})
    _, gate = feed(new_gate_state(), [1.0] * 5, config, first_batch=40)     # learned at batch 44 > 30
    assert gate["to_remove"] == math.inf
    _, gate = feed(new_gate_state(), [1.0] * 5, config, first_batch=10)     # learned in time: one token
    assert gate["to_remove"] == 1
