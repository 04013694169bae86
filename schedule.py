"""
The Stepwise Internalization schedule (Deng, Choi & Shieber 2024, Sec. 3), as the paper's code discretizes it,
and an adaptive one beside it. It imports nothing from this project (numpy only): copy it alone.

Pure functions: how many CoT tokens are scheduled for removal at a batch (the paper's linear s(t)), the
random removal offset of every example (removal smoothing), when the optimizer is reset, the adaptive
schedule's gate (advance, hold or roll back, from a measure of recovery), and -- the one place where CoT
tokens are actually removed -- `remove_cot`, which train.py and eval.py both call.
"""
import math
from dataclasses import dataclass

import numpy as np

EOT = 50256              # GPT-2's <|endoftext|>: the separator, also the padding id (as the reference pads)
IGNORE = -100            # label of positions without a loss (F.cross_entropy's default ignore_index)


def steps_per_token(batches_per_epoch, delta):
    """Reference: steps_per_removed_token = int(round(T / Delta)) with T = ceil(examples / batch) batches
    per epoch. Python's round() rounds halves to even, like the reference (T=100, Delta=8 -> 12)."""
    return int(round(batches_per_epoch / delta))


def scheduled_to_remove(batch, batches_per_epoch, delta, start_from=0, remove_all_beyond=math.inf):
    """Paper: s(t) = Delta * t / T. Reference: s grows by one every round(T/Delta) batches, i.e.
    s(b) = start + b // round(T/Delta) for the 0-based batch counter b counted from the end of the
    pretraining epochs (one token per batch when round(T/Delta) is 0). Beyond `remove_all_beyond`: inf
    (remove all)."""
    every = steps_per_token(batches_per_epoch, delta)
    to_remove = start_from + (batch // every if every > 0 else batch + 1)
    return math.inf if to_remove >= remove_all_beyond else to_remove


# ----------------------------------------------------------------------------- the adaptive schedule
# Beyond the paper, which suggests it: s(t) "could be based on a loss threshold" (Sec. 3), "adaptive Delta
# schedules based on loss values" (Sec. 6.2). s(t) advances only once the model has recovered at the
# current s(t); a model that collapses after an advance is rolled back and retries more gently.

@dataclass
class GateConfig:
    threshold: float = 0.9     # advance once the measure (running train exact match) is at least this ...
    min_steps: int = 50        # ... and s(t) has been held this many steps
    max_steps: int = 1000      # advance anyway after this many steps at one s(t), or sooner when needed
    deadline: float = math.inf #   to have all CoT removed by this batch (with the steps left shared evenly,
    slower_from: float = math.inf  # except that the counts from this one on get
    slower_by: float = 1.0     #   this many times the share of the others)
    collapse: float = 0.05     # a measure below this for `patience` steps in a row is a collapse:
    patience: int = 300        #   roll back to the state before the last advance
    max_retries: int = 2       # rollbacks of one advance, at most; then it stays and waits for max_steps
    max_chunk: int = 1         # tokens per advance may double, up to this, while the model recovers at once
    beta: float = 0.95         # the measure is a bias-corrected moving average with this decay


def new_gate_state(to_remove=0):
    """The gate's state at a new s(t) = to_remove: plain numbers, so it goes into checkpoints as it is."""
    return {"to_remove": to_remove, "chunk": 1, "steps": 0, "average": 0.0, "low_steps": 0,
            "hold_at_least": 0, "retries": 0, "attempt": 0, "advanced": False, "recovered": False}


def gate_measure(gate_state, config):
    """Bias-corrected moving average of the batch exact match since s(t) last changed (as Adam corrects
    its moments), so that it starts from the first batch's value rather than from 0."""
    steps = gate_state["steps"]
    return gate_state["average"] / (1 - config.beta ** steps) if steps else 0.0


def steps_allowed(gate_state, config, longest_cot, batch):
    """How long the gate may hold this s(t): max_steps, or, once removal has begun, the batches left until
    the deadline shared among the counts still to hold, this one first (at least min_steps): evenly, or
    with the counts from slower_from on weighted slower_by. The explicit CoT before the first advance is
    learned at its own pace."""
    if not gate_state["advanced"]:
        return config.max_steps
    counts = np.arange(gate_state["to_remove"], max(longest_cot, gate_state["to_remove"] + 1), gate_state["chunk"])
    weights = np.where(counts >= config.slower_from, config.slower_by, 1.0)
    left = config.deadline - (batch - gate_state["steps"])             # from when this s(t) began
    return int(max(config.min_steps, min(config.max_steps, left * weights[0] / weights.sum())))


def gate_step(gate_state, batch_exact_match, config, longest_cot, remove_all_beyond=math.inf, batch=0):
    """
    One training batch's decision: ("hold" | "advance" | "rollback" | "recovered", the gate's new state,
    the measure). `batch` counts the batches of the schedule so far, for the deadline.

    advance:  measure >= threshold after at least min_steps at this s(t) (or the longer hold a retry
              asks for), or `steps_allowed` (or that longer hold) reached. s(t) grows by `chunk` tokens, and
              to inf (remove all) once it covers the longest CoT, reaches remove_all_beyond, or the explicit
              CoT was learned only after the deadline (then nothing is left to pace). The chunk doubles (up
              to max_chunk) when the model recovered within 2 * min_steps, else falls back to 1.
    rollback: the measure stayed below `collapse` for `patience` steps after an advance, and that advance
              has been retried fewer than max_retries times; train.py restores the state from before the
              advance and continues from `retry_gently(...)`.
    recovered: all CoT is gone and the measure has reached the threshold (after min_steps) for the first
              time; nothing is left to advance or roll back, but train.py may start its lr decay then.
    """
    gate_state = dict(gate_state)
    gate_state["steps"] += 1
    gate_state["average"] = config.beta * gate_state["average"] + (1 - config.beta) * batch_exact_match
    measure = gate_measure(gate_state, config)
    steps = gate_state["steps"]
    if math.isinf(gate_state["to_remove"]):
        if not gate_state["recovered"] and measure >= config.threshold and steps >= config.min_steps:
            return "recovered", {**gate_state, "recovered": True}, measure
        return "hold", gate_state, measure
    gate_state["low_steps"] = gate_state["low_steps"] + 1 if measure < config.collapse else 0
    if gate_state["advanced"] and gate_state["low_steps"] >= config.patience and gate_state["attempt"] < config.max_retries:
        return "rollback", gate_state, measure
    hold_at_least = gate_state["hold_at_least"]
    recovered = measure >= config.threshold and steps >= max(config.min_steps, hold_at_least)
    if not recovered and steps < max(steps_allowed(gate_state, config, longest_cot, batch), hold_at_least):
        return "hold", gate_state, measure
    quick = recovered and steps <= 2 * config.min_steps
    to_remove = gate_state["to_remove"] + gate_state["chunk"]
    explicit_phase_overran = not gate_state["advanced"] and batch >= config.deadline
    if to_remove >= longest_cot or to_remove >= remove_all_beyond or explicit_phase_overran:
        to_remove = math.inf
    chunk = min(2 * gate_state["chunk"], config.max_chunk) if quick else 1
    return "advance", {**new_gate_state(to_remove), "chunk": chunk, "attempt": gate_state["retries"],
                       "advanced": True}, measure


def retry_gently(gate_before_advance, failed_gate, config):
    """After a rollback: back at the previous s(t) with the gate as it was, now holding min_steps *
    2^retries more steps before it advances again, one token at a time."""
    retries = failed_gate["attempt"] + 1
    return {**gate_before_advance, "chunk": 1, "retries": retries, "low_steps": 0,
            "hold_at_least": gate_before_advance["steps"] + config.min_steps * 2 ** retries}


def offset_distribution(lam, truncate=100):
    """Removal smoothing: P(o) = (1 - e^-lambda) e^(-lambda o) for o = 0..99, the leftover mass on o = 99.
    lambda = inf: o = 0 always."""
    if lam < 0 or math.isnan(lam):
        raise ValueError(f"smoothing lambda must be >= 0 or inf, got {lam}")
    p = np.zeros(truncate)
    if math.isinf(lam):
        p[0] = 1.0
        return p
    p[:] = (1 - math.exp(-lam)) * np.exp(-lam * np.arange(truncate))
    p[-1] += 1 - p.sum()
    return np.maximum(p, 0)                    # lambda >~ 0.4: the leftover is ~1e-30 and rounding makes it < 0


def sample_offsets(lam, batch_size, rng):
    """Each example draws its own offset o ~ P(o)."""
    if math.isinf(lam):
        return np.zeros(batch_size, dtype=np.int64)
    p = offset_distribution(lam)
    return rng.choice(len(p), size=batch_size, p=p)


def should_reset(to_remove, previous, all_removed_in_previous_batch, reset_enabled=True):
    """Reference: a fresh AdamW whenever s(t) grows, unless every example of the previous batch already
    had all of its CoT removed (then nothing new is being removed)."""
    return reset_enabled and to_remove > previous and not all_removed_in_previous_batch


def remove_cot(tokens, lengths, seps, n_remove, side="left", keep_position=False):
    """
    Remove n_remove[i] CoT tokens from every example of a right-padded batch, vectorized.

    tokens: (B, L) ids; lengths: (B,); seps: (B, 3) positions of the three separators in each row;
    n_remove: (B,) counts (inf = all). Left side removes the n tokens right after the first separator,
    right side the n tokens right before the second; n is clipped to the CoT, separators always stay.
    Returns tokens, labels (IGNORE up to and including the first separator, and on padding),
    position_ids (None unless keep_position), the new lengths and separators, and per row whether the
    removed span reaches the second separator: the reference's test for "all CoT removed", true on the
    left side once all CoT is gone and, as in the reference, always true on the right side.

    Keep-position (reference: position_ids[start-1:] += n): the tokens after the removed span keep their
    original positions, and so does the one token right before the span (the first separator on the left
    side), which moves with them.
    """
    B, L = tokens.shape
    cot_length = seps[:, 1] - seps[:, 0] - 1
    n = np.minimum(np.asarray(n_remove, dtype=np.float64), cot_length).astype(np.int64)
    start = seps[:, 0] + 1 if side == "left" else seps[:, 1] - n
    column = np.arange(L)
    removed = (column >= start[:, None]) & (column < start[:, None] + n[:, None])
    kept = ~removed & (column < lengths[:, None])
    order = np.argsort(~kept, axis=1, kind="stable")                   # kept columns first, in order
    new_lengths = lengths - n
    width = int(new_lengths.max())
    is_padding = column[:width] >= new_lengths[:, None]
    new_tokens = np.take_along_axis(tokens, order[:, :width], axis=1)
    new_tokens[is_padding] = EOT
    new_seps = seps - np.stack([np.zeros_like(n), n, n], axis=1)
    labels = np.where((column[:width] > new_seps[:, :1]) & ~is_padding, new_tokens, IGNORE)
    position_ids = None
    if keep_position:
        position_ids = column[:width] + np.where(column[:width] >= start[:, None] - 1, n[:, None], 0)
        position_ids = np.where(is_padding, column[:width], position_ids)   # padding: any in-range position
    return new_tokens, labels, position_ids, new_lengths, new_seps, start + n == seps[:, 1]
