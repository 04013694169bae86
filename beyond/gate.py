"""
Beyond the paper, which suggests it: s(t) "could be based on a loss threshold" (Sec. 3), "adaptive Delta
schedules based on loss values" (Sec. 6.2). The adaptive schedule (`--schedule adaptive`) advances s(t) only
once the model has recovered at the current s(t); a model that collapses after an advance is rolled back and
retries more gently; with --decay-after-recovery the lr decay waits for recovery at zero CoT.

The decisions are pure functions of plain numbers (`gate_step`); `Gate` carries them out for train.py, which
calls it in three marked lines: `gate.to_remove` at the top of a batch (s(t), and a rollback's optimizer),
`gate.after_batch` (the batch's exact match, the gate's one host read a batch) and `gate.decay_start`
(learning_rate). Its state, rollback point included, is its own, saved through `state_dict`.
"""
import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from eval import targets_right


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
    to_remove = gate_state["to_remove"]
    counts = np.arange(to_remove, max(longest_cot, to_remove + 1), gate_state["chunk"])
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
              has been retried fewer than max_retries times; the state from before the advance comes back
              and the gate continues from `retry_gently(...)`.
    recovered: all CoT is gone and the measure has reached the threshold (after min_steps) for the first
              time; nothing is left to advance or roll back, but the lr decay may start then.
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
    collapsed = gate_state["advanced"] and gate_state["low_steps"] >= config.patience
    if collapsed and gate_state["attempt"] < config.max_retries:
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


def gate_config(args, batches_per_epoch):
    """The command line's --gate-* settings; the deadline is counted in batches from removal's start."""
    deadline = (args.remove_by_epoch - args.pretrain_epochs) * batches_per_epoch
    return GateConfig(threshold=args.gate_threshold, min_steps=args.gate_min_steps,
                      max_steps=args.gate_max_steps, deadline=deadline, collapse=args.gate_collapse,
                      patience=args.gate_patience, max_retries=args.gate_max_retries,
                      max_chunk=args.max_chunk, slower_from=args.slower_from, slower_by=args.slower_by)


class Gate:
    """The adaptive schedule in a run: it sets s(t), keeps the rollback point of the last advance (the model's
    and the optimizer's state, in host memory) and restores it on a collapse, and tells the lr when to
    decay."""

    def __init__(self, args, task, net, new_optimizer, log):
        self.args, self.config = args, gate_config(args, task.batches_per_epoch)
        self.longest_cot, self.batches_per_epoch = task.longest_train_cot, task.batches_per_epoch
        self.net, self.new_optimizer, self.log = net, new_optimizer, log
        self.state = new_gate_state(args.remove_start_from)
        self.last_exact_match = None   # the previous batch's exact match, which the next decision judges
        self.recovered_at = None       # the batch (learning_rate's clock) of the recovery seen at zero CoT
        self.rollback_point = None

    def to_remove(self, run, optimizer):
        """At the top of a batch: decide from the previous batch's exact match, act on it (advance: keep a
        rollback point; rollback: restore it and retry gently) and log it. Returns s(t) and the optimizer,
        a new one after a rollback. `run` is train.py's RunState."""
        if self.last_exact_match is None:                         # the first batch of a run, or just resumed
            return self.state["to_remove"], optimizer
        action, new, measure = gate_step(self.state, self.last_exact_match, self.config, self.longest_cot,
                                         self.args.remove_all_beyond, run.schedule_batch)
        event = {"event": action, "step": run.step, "schedule_batch": run.schedule_batch,
                 "scheduled_to_remove": scheduled(self.state["to_remove"]), "measure": round(measure, 4),
                 "steps_held": self.state["steps"] + 1}
        if action == "advance":
            self.rollback_point = self.snapshot(optimizer, run.since_reset)
            event["to"] = scheduled(new["to_remove"])
        elif action == "recovered":
            self.recovered_at = run.epoch * self.batches_per_epoch + run.batch_in_epoch   # learning_rate's
        elif action == "rollback":
            optimizer = self.restore(self.rollback_point)
            new = retry_gently(self.rollback_point["gate"], new, self.config)
            run.since_reset, run.accumulated = self.rollback_point["since_reset"], 0   # drop a partial window
            event.update(back_to=scheduled(new["to_remove"]), retry=new["retries"])
        self.state, self.last_exact_match = new, None
        if action != "hold" or run.schedule_batch % self.args.log_every == 0:
            self.log(event)
        return self.state["to_remove"], optimizer

    def after_batch(self, logits, batch):
        """The next decision's input: the batch's share of rows right at every label (one host read a
        batch)."""
        right = targets_right(self.net.model, logits.detach(), batch.targets, batch.label_rows)
        right = right.all(dim=1).sum()
        if dist.is_initialized():
            dist.all_reduce(right := right.clone())
        self.last_exact_match = right.item() / batch.size

    def decay_start(self, decay_from, total):
        """--decay-after-recovery: the lr decay starts no sooner than the gate's "recovered" at zero CoT and
        no later than --min-decay-epochs before the end (batches seen, learning_rate's clock)."""
        if not self.args.decay_after_recovery:
            return decay_from
        latest = total - round(self.args.min_decay_epochs * self.batches_per_epoch)
        return latest if self.recovered_at is None else min(latest, max(decay_from, self.recovered_at))

    def snapshot(self, optimizer, since_reset):
        """The state an advance can be rolled back to, in host memory."""
        host = lambda tree: {k: host(v) if isinstance(v, dict) else v.detach().to("cpu", copy=True)
                             if torch.is_tensor(v) else copy.deepcopy(v) for k, v in tree.items()}
        return {"model": host(self.net.state_dict()), "optimizer": host(optimizer.state_dict()),
                "gate": dict(self.state), "since_reset": since_reset}

    def restore(self, point):
        """Model, probe and AdamW exactly as they were before the advance, no gradients pending; a new
        optimizer."""
        self.net.load_state_dict(point["model"])
        self.net.zero_grad(set_to_none=True)
        optimizer = self.new_optimizer(self.net.parameters(), self.args)
        optimizer.load_state_dict(copy.deepcopy(point["optimizer"]))
        return optimizer

    def state_dict(self):
        return {"state": self.state, "last_exact_match": self.last_exact_match,
                "recovered_at": self.recovered_at, "rollback_point": self.rollback_point}

    def load_state_dict(self, saved):
        self.state, self.last_exact_match = saved["state"], saved["last_exact_match"]
        self.recovered_at, self.rollback_point = saved["recovered_at"], saved["rollback_point"]


def scheduled(to_remove):
    return "all" if math.isinf(to_remove) else int(to_remove)
