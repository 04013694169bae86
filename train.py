"""
Stepwise Internalization training (Deng, Choi & Shieber 2024). Training starts as explicit CoT; as it goes,
the first s(t) = Delta * t / T CoT tokens are removed from every example (T batches per epoch, Delta tokens
per epoch), each example removing s(t) + o tokens with a random offset o ~ P(o) proportional to
exp(-lambda o) (removal smoothing), and AdamW starts fresh every time s(t) grows. Once all CoT is gone the
model answers directly: implicit CoT. `train()` below is that loop, in the paper's order.

Beyond the paper, each a marked line in the loop that calls a helper further down: --schedule adaptive
(s(t) advances once the model has recovered, or a deadline needs it, and an advance the model collapsed
after is rolled back); --carry-weight (a linear probe that must read, before each digit, the value behind it,
carry included: after Bai et al. 2025); --decay-after-recovery (the lr decay waits for recovery at zero CoT);
the Fig. 3 point (teacher-forced validation exact match at every removed token); step checkpoints.

    python train.py --task mult3x3 --model tiny           # the CPU preset: 3 layers x 128, adaptive + carry probe
    python train.py --task mult3x3 --model tiny --schedule linear      # the same model with the paper's s(t) alone
    python train.py --task mult7x7 --delta 8              # the paper's recipe: GPT-2 small, lr 5e-5, batch 32
    python train.py --task mult7x7 --delta 8 --plan       # what that run costs, before starting it
    python train.py --task mult4x4 --mode nocot           # the no-CoT baseline (or --mode explicit)
    torchrun --nproc_per_node 8 train.py --task mult7x7   # data parallel: the same run, batch 32 split 8 ways
    python train.py --recipe results/mult3x3/seeds/preset/seed03/args.json --out runs/again  # its saved settings
"""
import argparse
import copy
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import data
import twohop
from eval import evaluate, labels_right, load_checkpoint, measure_speed, read_checkpoint, teacher_forced_accuracy
from model import ACTIVATIONS, GPT, GPTConfig, PRESETS, CheckpointError, WithProbe
from schedule import (GateConfig, IGNORE, gate_step, new_gate_state, offset_distribution, remove_cot, retry_gently,
                      sample_offsets, scheduled_to_remove, should_reset)

# Settings a preset fills in where the command line is silent (see `fill_in_preset`).
PAPER = dict(init="gpt2", schedule="linear", delta=8, remove_by_epoch=math.inf, lr=5e-5, weight_decay=0.01,
             batch_size=32, epochs=200, train_size=None, smoothing_lambda=4.0, reset_warmup=0, decay_epochs=0,
             keep_position=False, pretrain_epochs=0, dropout=0.1, activation="gelu_tanh", n_layer=None, n_head=None,
             n_embd=None, carry_weight=0.0, decay_after_recovery=False)
TINY = dict(init="scratch", schedule="linear", delta=12, remove_by_epoch=6, lr=1e-3, weight_decay=0.01,
            batch_size=128, epochs=10, train_size=102400, smoothing_lambda=4.0, reset_warmup=20, decay_epochs=4,
            keep_position=True, pretrain_epochs=2, dropout=0.0, activation="gelu", n_layer=3, n_head=4, n_embd=128,
            carry_weight=0.0, decay_after_recovery=False)
TINY_TASKS = {"mult3x3": dict(schedule="adaptive", carry_weight=1.0, decay_after_recovery=True),   # per-task changes
              "mult4x4": dict(batch_size=64, epochs=30, remove_by_epoch=22)}
RANK, WORLD_SIZE = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))   # set by torchrun


@dataclass
class RunState:
    """What the loop carries from batch to batch; saved whole in ckpt.pt, so --resume continues exactly."""
    epoch: int = 0
    batch_in_epoch: int = 0          # position in this epoch's order (T once the epoch is done)
    step: int = 0                    # batches trained so far: the clock of every log record
    schedule_batch: int = 0          # t of s(t): batches since removal began (explicit epochs do not count)
    to_remove: float = 0             # s(t): CoT tokens scheduled for removal (inf: all)
    all_removed_previous: bool = False   # reference: every example of the previous batch had lost all its CoT
    best_val: float = -math.inf      # best validation exact match so far (reference: restarts, see below)
    since_reset: int = 0             # optimizer steps since the last fresh AdamW (its lr warm-up)
    accumulated: int = 0             # batches whose gradients wait for the next optimizer step
    gate: dict = None                # beyond the paper: the adaptive gate's state (schedule.new_gate_state)
    last_exact_match: float = None   # beyond: the previous batch's exact match, which the gate judges
    recovered_at: int = None         # beyond: the batch at which the gate saw recovery at zero CoT (lr decay)
    epoch_rng: dict = None           # beyond: the epoch's RNG at the last step checkpoint
    saved_at: int = 0                # beyond: the step of the last step checkpoint


def train(args):
    seed_this_process(args)
    device = set_up_device(args)                                         # TF32 on CUDA, as the reference
    task = load_task(args)
    model, optimizer, state, rollback_point = start_or_resume(args, task, device)
    forward = training_forward(model, args, device)                      # probes, torch.compile, DDP
    T, run = task.batches_per_epoch, Path(args.out)
    gate_config = make_gate_config(args, T)
    meter = Meter(state.step, args.epochs * T, device)
    print_start(args, task, model, device)
    for epoch in range(state.epoch, args.epochs):
        state.epoch = epoch
        rng = np.random.default_rng([args.seed, epoch])                  # data order and offsets, shared by all processes
        order = rng.permutation(task.n_train)
        first = resume_position(state, rng, T)                           # beyond: mid-epoch step checkpoint
        model.train()
        for i in range(first, T):
            state.batch_in_epoch = i
            ids = order[i * args.batch_size:(i + 1) * args.batch_size]
            previous = state.to_remove
            # 1. s(t) = Delta * t / T, CoT tokens scheduled for removal (Sec. 3), discretized as the reference does
            if args.mode == "stepwise" and epoch >= args.pretrain_epochs:
                if args.schedule == "linear":
                    state.to_remove = scheduled_to_remove(state.schedule_batch, T, args.delta,
                                                          args.remove_start_from, args.remove_all_beyond)
                elif state.last_exact_match is not None:                 # beyond: the adaptive gate sets s(t)
                    optimizer, rollback_point = follow_gate(state, gate_config, model, optimizer, rollback_point,
                                                            args, run, task)
                state.schedule_batch += 1
            log_fig3_point(model, task, previous, args, run, state, device)   # beyond: Fig. 3, a point per token
            # 2. a fresh AdamW whenever s(t) grows
            if should_reset(state.to_remove, previous, state.all_removed_previous, not args.no_reset_optimizer):
                optimizer = reset_optimizer(model, args, state, run)
            # 3. each example loses s(t) + o CoT tokens, o ~ P(o) = (1 - e^-lambda) e^(-lambda o)
            tokens, lengths, seps = task.train.batch(ids)
            bridges = bridge_targets(tokens, seps, args, task)           # beyond: what the bridge probe must name
            n_remove = removal_counts(args, state, epoch, len(ids), rng)
            tokens, labels, positions, _, _, reaches_end = remove_cot(tokens, lengths, seps, n_remove,
                                                                      args.removal_side, args.keep_position)
            note_all_removed(args, state, reaches_end, n_remove >= seps[:, 1] - seps[:, 0] - 1)   # reset rule, "best"
            if 0 < args.max_len_train < tokens.shape[1]:                 # reference: skip batches longer than this
                continue
            # 4. forward and backward (loss on everything after the first separator); a step every --accumulate
            batch = this_process_batch(model, tokens, labels, positions, bridges, args, state, device)   # probes: beyond
            logits, loss, probe_loss = forward_backward(forward, batch, args, state)
            if state.accumulated == args.accumulate:
                optimizer_step(model, optimizer, args, state, T)
            meter.count(tokens.size, loss, state.step)                   # a non-finite loss, noticed on the device
            state.step += 1
            if args.schedule == "adaptive":                              # beyond: the gate's one host read a batch
                state.last_exact_match = batch_exact_match(model, logits, batch, len(ids))
            if state.step % args.log_every == 0:
                log_batch(model, logits, loss, probe_loss, batch, args, state, meter, run)
            save_step_checkpoint(run, model, optimizer, state, rng, args, task.meta, rollback_point, meter,
                                 i, T)                                   # beyond: every --save-every steps
        state.batch_in_epoch = T
        meter.check_finite(state, run)                                   # nothing is saved after a non-finite loss
        if RANK == 0:                                                    # the others wait for its validation
            end_of_epoch(model, optimizer, state, args, task, run, meter, device, rollback_point)
        if WORLD_SIZE > 1:
            dist.barrier()
    report_unfinished_removal(args, state, task)


# ----------------------------------------------------------------------------- the paper's pieces

def removal_counts(args, state, epoch, batch_size, rng):
    """How many CoT tokens each example of this batch loses: s(t) + o, by mode."""
    if args.mode == "explicit":
        return np.zeros(batch_size)
    if args.mode == "nocot":
        return np.full(batch_size, math.inf)
    if epoch < args.pretrain_epochs:                                      # reference: fill_(remove_start_from)
        return np.full(batch_size, args.remove_start_from)
    return state.to_remove + sample_offsets(args.smoothing_lambda, batch_size, rng)


def new_optimizer(model, args):
    """The reference's AdamW: lr, torch's other defaults (weight decay 0.01); fused into one kernel on CUDA."""
    return torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                             fused=torch.device(args.device).type == "cuda")


def forward_backward(forward, batch, args, state):
    """One batch's forward and backward (bf16 autocast with --dtype bfloat16), the loss weighted by this process's
    share of the labels (DDP averages gradients), all-reduced only on the last batch of an --accumulate window."""
    autocast = torch.autocast(batch.tokens.device.type, torch.bfloat16, enabled=args.dtype == "bfloat16")
    last = state.accumulated + 1 == args.accumulate
    with autocast, forward.no_sync() if WORLD_SIZE > 1 and not last else nullcontext():
        logits, loss, probe_loss = forward(batch.tokens, batch.targets, batch.label_rows, batch.positions,
                                           batch.probe_rows, batch.probe_targets, batch.steer)
        total = loss * batch.share * WORLD_SIZE + weighted_probe_loss(probe_loss, batch, args)   # probe: beyond
        (total / args.accumulate).backward()
    state.accumulated += 1
    return logits, loss, probe_loss


def reset_optimizer(model, args, state, run):
    """A fresh AdamW; the reference drops the gradients of a partial accumulation window."""
    model.zero_grad(set_to_none=True)
    state.since_reset, state.accumulated = 0, 0
    log(run, {"event": "optimizer_reset", "step": state.step, "scheduled_to_remove": scheduled(state.to_remove)})
    return new_optimizer(model, args)


def note_all_removed(args, state, reaches_end, all_gone):
    """Reference: its removal code runs only when s(t) > 0 or smoothing is on; then "all CoT removed in this
    batch" means every removed span reaches the second separator (the reset rule reads it), and the best
    validation accuracy restarts while some example still has CoT. The reference tests that too by the span
    reaching the separator, which on the right side is always true, so its best checkpoint stays an
    explicit-CoT one; here the restart reads whether every example's CoT is gone (the same on the left side)."""
    removal_ran = args.mode == "nocot" or (args.mode == "stepwise" and (
        state.to_remove > 0 or math.isfinite(args.smoothing_lambda)))
    state.all_removed_previous = removal_ran and bool(reaches_end.all())
    if removal_ran and not all_gone.all():
        state.best_val = -math.inf


def optimizer_step(model, optimizer, args, state, batches_per_epoch):
    """Clip, step at this batch's lr, and clear the gradients."""
    state.accumulated = 0
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(args, state, batches_per_epoch)
    torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    state.since_reset += 1


def learning_rate(args, state, batches_per_epoch):
    """The paper's constant lr, times (beyond the paper) a linear warm-up after each optimizer reset and a linear
    decay to 0 over the last --decay-epochs epochs (all, in a shorter run), counted in batches seen (skipped ones
    too). With --decay-after-recovery the decay waits, at the full lr, for the gate's "recovered" at zero CoT,
    but leaves itself at least --min-decay-epochs."""
    warmup = min(1.0, (state.since_reset + 1) / args.reset_warmup) if args.reset_warmup else 1.0
    if not args.decay_epochs:
        return args.lr * warmup
    seen = state.epoch * batches_per_epoch + state.batch_in_epoch
    total = args.epochs * batches_per_epoch
    decay_from = total - min(args.decay_epochs, args.epochs) * batches_per_epoch
    if args.decay_after_recovery:
        latest = total - round(args.min_decay_epochs * batches_per_epoch)
        decay_from = latest if state.recovered_at is None else min(latest, max(decay_from, state.recovered_at))
    return args.lr * warmup * min(1.0, (total - seen) / max(1, total - decay_from))


# ----------------------------------------------------------------------------- batch plumbing

def this_process_batch(model, tokens, labels, positions, bridges, args, state, device):
    """Every process built the whole global batch (same order, same offsets); each trains on its rows, its
    share of the batch's labels weighting its loss. With a probe: the rows' carry or bridge targets, and
    this process's share of them. The inputs are checked here, on the host, where it costs no GPU stall."""
    model.check_inputs(tokens, positions)
    mine = np.array_split(np.arange(len(tokens)), WORLD_SIZE)[RANK]
    share = float((labels[mine, 1:] != IGNORE).sum() / (labels[:, 1:] != IGNORE).sum())
    label_rows = np.flatnonzero(labels[mine, 1:] != IGNORE)             # where the head runs: indices, not a mask
    targets = data.carry_targets(tokens, data.parse_task(args.task)) if args.carry_weight else \
        None if bridges is None else bridges[:, :tokens.shape[1]]      # the separator is before what was removed
    probe_rows, probe_share = None, 0.0
    if targets is not None:
        has_target = ~np.isnan(targets) if args.carry_weight else targets != IGNORE
        rows, probe_share = np.flatnonzero(has_target[mine]), float(has_target[mine].sum() / max(1, has_target.sum()))
        probe_rows, targets = to_device(rows, device), to_device(targets[mine].reshape(-1)[rows], device)
    return SimpleNamespace(tokens=to_device(tokens[mine], device), labels=to_device(labels[mine], device),
                           targets=to_device(labels[mine, 1:].reshape(-1)[label_rows], device),
                           label_rows=to_device(label_rows, device),
                           positions=None if positions is None else to_device(positions[mine], device),
                           share=share, probe_rows=probe_rows, probe_targets=targets, probe_share=probe_share,
                           steer=args.mode == "nocot" or state.to_remove > 0)   # a probe watches until CoT goes


def to_device(array, device):
    """numpy -> device; on a GPU through pinned memory, so the copy overlaps with the work queued before it."""
    tensor = torch.from_numpy(array)
    return tensor.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else tensor.to(device)


class TrainingError(RuntimeError):
    """The run cannot go on (a non-finite loss); the message says where."""


# ----------------------------------------------------------------------------- beyond the paper

def make_gate_config(args, batches_per_epoch):
    deadline = (args.remove_by_epoch - args.pretrain_epochs) * batches_per_epoch   # counted from removal's start
    return GateConfig(threshold=args.gate_threshold, min_steps=args.gate_min_steps, max_steps=args.gate_max_steps,
                      deadline=deadline, collapse=args.gate_collapse, patience=args.gate_patience,
                      max_retries=args.gate_max_retries, max_chunk=args.max_chunk, slower_from=args.slower_from,
                      slower_by=args.slower_by)


def follow_gate(state, gate_config, model, optimizer, rollback_point, args, run, task):
    """The adaptive schedule at the top of a batch: schedule.gate_step decides from the previous batch's
    exact match, this acts on it (advance: keep a rollback point; rollback: restore it and retry gently)
    and logs it. Sets s(t); returns the optimizer and the rollback point, either of which may be new."""
    action, new, measure = gate_step(state.gate, state.last_exact_match, gate_config, task.longest_train_cot,
                                     args.remove_all_beyond, state.schedule_batch)
    event = {"event": action, "step": state.step, "schedule_batch": state.schedule_batch,
             "scheduled_to_remove": scheduled(state.gate["to_remove"]), "measure": round(measure, 4),
             "steps_held": state.gate["steps"] + 1}
    if action == "advance":
        rollback_point = snapshot(model, optimizer, state)
        state.gate = new
        event["to"] = scheduled(new["to_remove"])
    elif action == "recovered":                                          # learning_rate may start its decay
        state.gate = new
        state.recovered_at = state.epoch * task.batches_per_epoch + state.batch_in_epoch   # learning_rate's clock
    elif action == "rollback":
        optimizer = restore(rollback_point, model, args)
        state.gate = retry_gently(rollback_point["gate"], new, gate_config)
        state.since_reset, state.accumulated = rollback_point["since_reset"], 0   # a partial window is dropped
        event.update(back_to=scheduled(state.gate["to_remove"]), retry=state.gate["retries"])
    else:
        state.gate = new
    if action != "hold" or state.schedule_batch % args.log_every == 0:
        log(run, event)
    state.to_remove, state.last_exact_match = state.gate["to_remove"], None
    return optimizer, rollback_point


def snapshot(model, optimizer, state):
    """The state an adaptive advance can be rolled back to, in host memory (and in ckpt.pt, for --resume)."""
    host = lambda tree: {k: host(v) if isinstance(v, dict) else v.detach().to("cpu", copy=True)
                         if torch.is_tensor(v) else copy.deepcopy(v) for k, v in tree.items()}
    return {"model": host(model.state_dict()), "optimizer": host(optimizer.state_dict()), "gate": dict(state.gate),
            "since_reset": state.since_reset}


def restore(point, model, args):
    """Model and AdamW exactly as they were before the advance, no gradients pending; returns the optimizer."""
    model.load_state_dict(point["model"])
    model.zero_grad(set_to_none=True)
    optimizer = new_optimizer(model, args)
    optimizer.load_state_dict(copy.deepcopy(point["optimizer"]))
    return optimizer


def log_fig3_point(model, task, previous, args, run, state, device):
    """Fig. 3: when s(t) has just grown, the validation exact match (teacher-forced, no generation) at the
    s(t) left behind."""
    if state.to_remove <= previous or previous >= task.longest_val_cot or not args.fig3_examples or RANK:
        return
    accuracy = teacher_forced_accuracy(model, task.val, previous, args.removal_side, args.keep_position,
                                       args.fig3_examples, device=device)
    log(run, {"event": "fig3_point", "step": state.step, "cot_removed": int(previous),
              "teacher_forced_acc": accuracy})


def bridge_targets(tokens, seps, args, task):
    """--bridge-weight: the bridge each two-hop row's CoT names, read before its CoT is removed."""
    return twohop.bridge_targets(tokens, seps, np.array(task.meta["entity_ids"])) if args.bridge_weight else None


def weighted_probe_loss(probe_loss, batch, args):
    """--carry-weight or --bridge-weight W times the probe's loss, weighted like the language loss by this
    process's share."""
    weight = args.carry_weight or args.bridge_weight
    return 0.0 if probe_loss is None else weight * probe_loss * batch.probe_share * WORLD_SIZE


def batch_exact_match(model, logits, batch, batch_size):
    """The adaptive gate's input: the batch's share of rows right at every label (its one host read a batch)."""
    right = labels_right(model, logits.detach(), batch.labels, batch.label_rows)
    return global_sum(right.all(dim=1).sum()).item() / batch_size


def log_batch(model, logits, loss, probe_loss, batch, args, state, meter, run):
    """Every --log-every steps: loss, token accuracy, probe loss, speed; read from the device here, only here."""
    meter.check_finite(state, run)
    has_label = batch.labels[:, 1:] != IGNORE
    right = labels_right(model, logits.detach(), batch.labels, batch.label_rows) & has_label
    counts = global_sum(torch.stack([loss.detach().float() * batch.share, right.sum().float(),
                                     has_label.sum().float()])).tolist()
    record = {"step": state.step, "epoch": state.epoch, "scheduled_to_remove": scheduled(n_remove_at_eval(args, state)),
              "loss": round(counts[0], 4), "token_acc": round(counts[1] / counts[2], 4),
              "tokens_per_s": meter.tokens_per_s(), "minutes": meter.minutes()}
    probe = "carry_mse" if args.carry_weight else "bridge_ce"              # this process's rows
    if probe_loss is not None:
        record[probe] = round(probe_loss.item(), 4)
    log(run, record, f"step {record['step']} epoch {state.epoch} removed {record['scheduled_to_remove']} "
                     f"loss {record['loss']:.4f} token_acc {record['token_acc']:.3f} "
                     + (f"{probe} {record[probe]:.3f} " if probe_loss is not None else "") +
                     f"{record['tokens_per_s']} tok/s ETA {meter.eta_minutes(state.step):.1f} min")


class Meter:
    """What the run watches between log lines: tokens/s, minutes, time left, and a non-finite loss without a host
    read a batch (its first step stays on the device, read at log lines and before saves: the run stops)."""

    def __init__(self, first_step, total_steps, device):
        self.started = self.window_start = time.time()
        self.first_step, self.total_steps, self.window_tokens = first_step, total_steps, 0
        self.first_bad = torch.tensor(-1, device=device)

    def count(self, tokens, loss, step):
        self.window_tokens += tokens
        self.first_bad = torch.where((self.first_bad < 0) & ~torch.isfinite(loss.detach()), step, self.first_bad)

    def check_finite(self, state, run):
        if global_sum((self.first_bad >= 0).long()).item():                 # one host read
            where = f"step {self.first_bad.item()}" if self.first_bad >= 0 else "another process's step"
            raise TrainingError(f"{where} (epoch {state.epoch}): the loss is not finite (nan or inf); stopped, "
                                f"{run / 'ckpt.pt'} holds the last good checkpoint")

    def tokens_per_s(self):
        rate = self.window_tokens / (time.time() - self.window_start)
        self.window_start, self.window_tokens = time.time(), 0
        return round(rate)

    def minutes(self):
        return round((time.time() - self.started) / 60, 2)

    def eta_minutes(self, step):
        return (time.time() - self.started) / max(1, step - self.first_step) * (self.total_steps - step) / 60


def report_unfinished_removal(args, state, task):
    """A stepwise run that ends with CoT still in place has not internalized: say so in one line."""
    if cot_left(args, state, task) and RANK == 0:
        print(f"train.py: the run ended with {cot_left(args, state, task)} of {task.longest_val_cot} CoT tokens still "
              f"in place (s(t) = {scheduled(state.to_remove)}): more epochs, a larger --delta or an earlier "
              f"--remove-by-epoch", flush=True)


def cot_left(args, state, task):
    return int(max(0, task.longest_val_cot - state.to_remove)) if args.mode == "stepwise" else 0


# ----------------------------------------------------------------------------- run files

def load_task(args):
    """The task's splits (generated first if it is multKxK and missing), and the numbers the loop needs."""
    data.tokenizer()                                                      # fail now, not at the first evaluation
    folder = rank_zero_first(data.prepare, args.task, args.data) if args.task.startswith("mult") else \
        Path(args.data) / args.task
    meta = data.load_meta(folder)
    train_split, val_split = data.load_split(folder, "train"), data.load_split(folder, "val")
    n_train = len(train_split) if args.train_size is None else min(args.train_size, len(train_split))
    if 0 < n_train % args.batch_size < WORLD_SIZE:
        raise data.DataError(f"the last batch of an epoch has {n_train % args.batch_size} examples, fewer than the "
                             f"{WORLD_SIZE} processes: change --batch-size or --train-size")
    return SimpleNamespace(
        meta=meta, train=train_split, val=val_split, n_train=n_train,
        batches_per_epoch=math.ceil(n_train / args.batch_size),                                 # T
        reported={name: data.load_split(folder, name) for name in meta.get("report_splits", [])},   # two-hop: ID, OOD
        longest_example=max(s["longest_example"] for s in meta["splits"].values()),
        longest_val_cot=int((val_split.seps[:, 1] - val_split.seps[:, 0] - 1).max()),
        longest_train_cot=int((train_split.seps[:n_train, 1] - train_split.seps[:n_train, 0] - 1).max()))


def start_or_resume(args, task, device):
    """A new model and AdamW, or (--resume) everything ckpt.pt holds: model, optimizer, RunState, RNG."""
    run = Path(args.out)
    if not args.resume:
        model = rank_zero_first(build_model, args, task.meta, task.longest_example).to(device)
        add_probes(model, args, task.meta)
        if RANK == 0:
            run.mkdir(parents=True, exist_ok=True)
            (run / "metrics.jsonl").write_text("")
            (run / "args.json").write_text(json.dumps(vars(args), indent=1))
        state = RunState(to_remove=args.remove_start_from, gate=new_gate_state(args.remove_start_from))
        return model, new_optimizer(model, args), state, None
    model, ckpt = read_checkpoint(run / "ckpt.pt")
    if ckpt["task"] != args.task:
        raise data.DataError(f"{run / 'ckpt.pt'} was trained on {ckpt['task']}, not {args.task}")
    for probe, flag in (("carry", "carry_weight"), ("bridge", "bridge_weight")):   # its AdamW state has no probe
        if getattr(args, flag) and not hasattr(model, f"{probe}_probe"):
            raise data.DataError(f"{run / 'ckpt.pt'} was trained without the {probe} probe: resume with "
                                 f"--{flag.replace('_', '-')} 0")
    add_probes(model.to(device), args, task.meta)
    optimizer = new_optimizer(model, args)
    optimizer.load_state_dict(ckpt["optimizer"])
    for group in optimizer.param_groups:                                  # weight decay from this command line, like lr
        group["weight_decay"] = args.weight_decay
    state = run_state_from(ckpt["schedule"], run / "ckpt.pt")
    if RANK == 0:
        cut_torn_line(run / "metrics.jsonl")
    if state.batch_in_epoch >= task.batches_per_epoch:                     # saved at an epoch's end
        state.epoch += 1
    set_rng_state(ckpt, device, args, state)
    return model, optimizer, state, ckpt.get("rollback_point")


def build_model(args, meta, longest):
    """GPT-2 weights (full vocabulary), a train.py checkpoint, or a scratch model over the dataset's compact
    vocabulary; in every case with positions for the longest example."""
    if args.init == "scratch":
        config = GPTConfig(block_size=longest, n_layer=args.n_layer or 3, n_head=args.n_head or 4,
                           n_embd=args.n_embd or 128, dropout=args.dropout, activation=args.activation,
                           vocab_ids=meta["vocab_ids"])
        return GPT(config)
    if args.init.endswith(".pt"):
        model = load_checkpoint(args.init)[0]
        unknown = sorted(set(meta["vocab_ids"]) - set(model.config.vocab_ids or range(model.config.vocab_size)))
        if unknown:
            raise data.DataError(f"--init {args.init}: its vocabulary lacks {len(unknown)} token ids of {args.task} "
                                 f"(e.g. {unknown[0]} = {data.tokenizer().decode([unknown[0]])!r})")
    else:
        model = GPT.from_pretrained(args.init, dropout=args.dropout)      # HF GPT-2 trains with dropout 0.1
    model.extend_positions(longest)
    return model


def add_probes(model, args, meta):
    """Beyond the paper: the probe the command line asks for, unless the model has it; a probe with weight 0 is
    frozen (DDP stops on a trainable parameter without a gradient)."""
    if args.carry_weight and not hasattr(model, "carry_probe"):
        model.add_carry_probe()
    if args.bridge_weight and not hasattr(model, "bridge_probe"):
        model.add_bridge_probe(len(meta["entity_ids"]))
    for probe, weight in (("carry_probe", args.carry_weight), ("bridge_probe", args.bridge_weight)):
        if hasattr(model, probe):
            getattr(model, probe).requires_grad_(bool(weight))


def training_forward(model, args, device):
    """The training pass, with the probe if any (eval uses the model itself): compiled with the sequence length
    dynamic, since every removed token shortens it (one graph, not one per length); under DDP, its gradients
    are averaged over the processes."""
    forward = WithProbe(model, model.carry_probe if args.carry_weight else model.bridge_probe if args.bridge_weight
                        else None)
    if args.compile:
        forward = torch.compile(forward, dynamic=True)
    if WORLD_SIZE > 1:
        forward = DistributedDataParallel(forward, device_ids=[device.index] if device.type == "cuda" else None)
    return forward


def resume_position(state, rng, batches_per_epoch):
    """The batch this epoch starts at: 0, or after a step checkpoint's batch, with the epoch's RNG as it was."""
    if not 0 < state.batch_in_epoch < batches_per_epoch:
        return 0
    rng.bit_generator.state = state.epoch_rng
    return state.batch_in_epoch


def save_step_checkpoint(run, model, optimizer, state, rng, args, meta, rollback_point, meter, i, batches_per_epoch):
    """ckpt.pt every --save-every steps, at an optimizer-step boundary, not at an epoch's end."""
    if not (args.save_every and state.step - state.saved_at >= args.save_every and not state.accumulated
            and i < batches_per_epoch - 1):
        return
    meter.check_finite(state, run)                                        # nothing is saved after a non-finite loss
    state.batch_in_epoch, state.epoch_rng, state.saved_at = state.batch_in_epoch + 1, rng.bit_generator.state, state.step
    save(run / "ckpt.pt", model, optimizer, state, args, meta, n_remove_at_eval(args, state), rollback_point)


def n_remove_at_eval(args, state):
    """CoT tokens removed at evaluation (offsets off): s(t) in stepwise mode, none or all in the baselines."""
    return state.to_remove if args.mode == "stepwise" else 0 if args.mode == "explicit" else math.inf


def scheduled(to_remove):
    return "all" if math.isinf(to_remove) else int(to_remove)


def end_of_epoch(model, optimizer, state, args, task, run, meter, device, rollback_point):
    """Validation exact match at the current removal level (offsets off), and of the task's reported splits
    (two-hop: test_id, test_ood; answer only and the whole target); checkpoint, best checkpoint."""
    level = (n_remove_at_eval(args, state), args.removal_side, args.keep_position)
    result = evaluate(model, task.val, *level, batch_size=250, limit=args.val_limit, device=device)
    speed = measure_speed(model, task.val, *level, device)
    record = {"epoch": state.epoch, "step": state.step, "scheduled_to_remove": scheduled(level[0]),
              "cot_removed": int(min(level[0], task.longest_val_cot)), "val_acc": result["accuracy"],
              "val_examples_per_s": round(speed, 2), "tokens_per_example": result["tokens_per_example"],
              "minutes": meter.minutes()}
    for name, split in task.reported.items():
        other = evaluate(model, split, *level, batch_size=250, limit=args.val_limit, device=device)
        record.update({f"{name}_acc": other["accuracy"], f"{name}_target_acc": other["target_accuracy"]})
    if state.epoch == args.epochs - 1 and cot_left(args, state, task):
        record["cot_left"] = cot_left(args, state, task)                 # the run ends before all CoT is gone
    others = "".join(f", {name} {record[f'{name}_acc']:.3f}" for name in task.reported)
    log(run, record, f"epoch {state.epoch}: val exact match {result['accuracy']:.3f}{others} with "
                     f"{record['cot_removed']}/{task.longest_val_cot} CoT tokens removed, {speed:.1f} examples/s")
    if result["accuracy"] > state.best_val:
        state.best_val = result["accuracy"]
        save(run / "best.pt", model, optimizer, state, args, task.meta, level[0])
    save(run / "ckpt.pt", model, optimizer, state, args, task.meta, level[0], rollback_point)


def log(run, record, echo=None):
    if RANK:                                                              # rank 0 logs for all
        return
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    if echo:
        print(echo, flush=True)


def cut_torn_line(path):
    """A run killed in the middle of a log write leaves an unterminated last line: cut it before appending."""
    text = path.read_bytes() if path.exists() else b""
    if text and not text.endswith(b"\n"):
        os.truncate(path, text.rfind(b"\n") + 1)


def save(path, model, optimizer, state, args, meta, n_remove, rollback_point=None):
    """Everything eval.py and --resume need; plain tensors and containers, loadable with weights_only=True.
    Written by rank 0 (every process holds the same weights), atomically: a crash leaves the previous file."""
    if RANK:
        return
    ckpt = {"model_config": asdict(model.config), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "schedule": asdict(state), **rng_state(next(model.parameters()).device), "task": args.task,
            "n_remove": float(n_remove), "removal_side": args.removal_side, "keep_position": args.keep_position,
            "vocab_ids": meta["vocab_ids"], "args": dict(vars(args))}
    if rollback_point is not None:                                        # the adaptive schedule's only
        ckpt["rollback_point"] = rollback_point
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)


def run_state_from(saved, path):
    names = {f.name for f in fields(RunState)}
    if set(saved) != names:
        raise CheckpointError(f"{path}: its run state has keys {sorted(set(saved) ^ names)} that this train.py "
                              f"does not match (written by another version): start a new run")
    return RunState(**saved)


def rng_state(device):
    """The RNGs dropout draws from: the CPU's, and the GPU's when training on one."""
    return {"rng": torch.get_rng_state(), **({"cuda_rng": torch.cuda.get_rng_state(device)}
                                             if device.type == "cuda" else {})}


def set_rng_state(ckpt, device, args, state):
    """Rank 0 continues the saved RNG streams exactly; the other processes draw their own dropout masks."""
    if RANK:
        torch.manual_seed(args.seed + RANK + 1000003 * state.step)
        return
    torch.set_rng_state(ckpt["rng"])
    if device.type == "cuda" and "cuda_rng" in ckpt:
        torch.cuda.set_rng_state(ckpt["cuda_rng"], device)


# ----------------------------------------------------------------------------- processes

def seed_this_process(args):
    """Model init and dropout draw from torch's generator: seeded by rank, so that processes with equal shards
    draw their own dropout masks (as nanoGPT does); data order and offsets come from the shared numpy RNG."""
    torch.manual_seed(args.seed + RANK)


def set_up_device(args):
    """This process's device; under torchrun it joins the group (NCCL on GPUs, gloo on CPUs). On CUDA, as the
    reference and nanoGPT do, fp32 matrix products and convolutions run as TF32 (a 10-bit mantissa)."""
    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if WORLD_SIZE == 1:
        return torch.device(args.device)
    device = torch.device(f"cuda:{os.environ['LOCAL_RANK']}" if cuda else args.device)
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(hours=1))   # rank 0 validates alone
    return device


def rank_zero_first(make, *args):
    """Rank 0 makes what may be written to disk (generated data, downloaded weights); then the others read it."""
    if RANK == 0:
        result = make(*args)
    if WORLD_SIZE > 1:
        dist.barrier()
    return result if RANK == 0 else make(*args)


def global_sum(value):
    """A tensor summed over all processes (the tensor itself in one process)."""
    if WORLD_SIZE > 1:
        dist.all_reduce(value := value.clone())
    return value


def print_start(args, task, model, device):
    if RANK == 0:
        print(f"{args.task}: {task.n_train} examples, T={task.batches_per_epoch} batches/epoch, CoT "
              f"{task.longest_val_cot} tokens, model {model.num_params() / 1e6:.2f}M parameters on {device} x "
              f"{WORLD_SIZE} ({args.dtype}), {args.schedule} schedule", flush=True)


# ----------------------------------------------------------------------------- the plan of a run

def plan(args):
    """--plan: what the run will cost, without training it."""
    task = load_task(args)
    T = task.batches_per_epoch
    model = GPT(plan_model_config(args, task))
    config, n_params = model.config, model.num_params()
    mean_length = float(np.mean(task.train.seps[:task.n_train, 2] - task.train.starts[:task.n_train] + 1))
    tokens_per_step = args.batch_size * args.accumulate * mean_length     # explicit CoT: the most a step sees
    flops_per_token = 6 * n_params + 12 * config.n_layer * config.n_embd * mean_length   # PaLM's estimate
    steps = args.epochs * T // args.accumulate
    print(f"task {args.task}: {task.n_train:,} training examples, longest CoT {task.longest_train_cot} tokens, "
          f"{mean_length:.1f} tokens an example (explicit CoT)")
    print(f"T = {T} batches/epoch of {args.batch_size}; {args.epochs} epochs = {args.epochs * T:,} batches, "
          f"{steps:,} optimizer steps, {args.epochs * task.n_train:,} examples")
    if args.mode == "stepwise" and args.schedule == "linear":
        every = max(1, int(round(T / args.delta)))
        done = args.pretrain_epochs + (task.longest_train_cot - args.remove_start_from) / args.delta
        print(f"linear s(t): a token more every {every} batches (Delta = {args.delta:g}); all CoT gone at epoch "
              f"{done:.1f} of {args.epochs}" + ("" if done <= args.epochs else " -- after the run ends"))
    elif args.mode == "stepwise":
        print(f"adaptive s(t): the gate holds each token {args.gate_min_steps}-{args.gate_max_steps} steps, "
              f"all CoT gone by epoch {args.remove_by_epoch:g}")
    print(f"model: {config.n_layer} layers x {config.n_embd} ({n_params / 1e6:.2f}M parameters), "
          f"{flops_per_token * tokens_per_step / 1e12:.3f} TFLOPs a step, "
          f"{flops_per_token * tokens_per_step * steps / 1e15:.2f} PFLOPs in all")
    seconds, tokens = time_training_step(model, task, args) if not args.plan_tokens_per_s else ([1.0], 0)
    rate = args.plan_tokens_per_s or tokens / min(seconds)              # a busy machine slows steps, never speeds one
    hours = tokens_per_step * steps / rate / 3600
    print(f"at {rate:,.0f} training tokens/s: {hours:.2f} hours ({hours * 60:.0f} minutes) with the whole CoT in "
          f"every step, an upper bound (removal shortens the examples); evaluation not counted")


def plan_model_config(args, task):
    """The model's shape: GPT-2 sizes from model.PRESETS without their weights, else the model itself."""
    if args.init not in PRESETS:
        return build_model(args, task.meta, task.longest_example).config   # scratch, a .pt or a GPT-2 folder
    n_layer, n_head, n_embd = PRESETS[args.init]
    return GPTConfig(block_size=max(1024, task.longest_example), n_layer=n_layer, n_head=n_head, n_embd=n_embd)


def time_training_step(model, task, args, steps=5):
    """Seconds of the loop's own step (device setup, --dtype, --compile, the probe, forward, backward, AdamW) on
    an explicit-CoT batch, after warm-up; and the batch's tokens. What --plan and benchmarks/bench_gpu.py time."""
    device = set_up_device(args)
    add_probes(model.to(device).train(), args, task.meta)
    optimizer, forward, state = new_optimizer(model, args), training_forward(model, args, device), RunState()
    tokens, lengths, seps = task.train.batch(np.arange(min(args.batch_size, task.n_train)))
    tokens, labels, positions, *_ = remove_cot(tokens, lengths, seps, np.zeros(len(tokens)), args.removal_side,
                                               args.keep_position)
    batch = this_process_batch(model, tokens, labels, positions, bridge_targets(tokens, seps, args, task), args,
                               state, device)
    seconds = []
    for _ in range(steps + (3 if args.compile else 1)):                   # the first ones warm up (and compile)
        started = time.perf_counter()
        forward_backward(forward, batch, args, state)
        if state.accumulated == args.accumulate:
            optimizer_step(model, optimizer, args, state, task.batches_per_epoch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    return seconds[-steps:], tokens.size


# ----------------------------------------------------------------------------- command line

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", help="multKxK (generated if missing) or an imported task folder name")
    p.add_argument("--recipe", metavar="ARGS_JSON", help="start from a run's saved args.json: its settings, with "
                   "this command line's flags changing them (not its --device, --resume, --plan)")
    p.add_argument("--model", choices=["paper", "tiny"], default="paper",
                   help="settings preset: the paper's GPT-2 fine-tuning, or a small scratch model for a CPU")
    p.add_argument("--mode", choices=["stepwise", "explicit", "nocot"], default="stepwise")
    p.add_argument("--init", help="gpt2, gpt2-medium, gpt2-large, gpt2-xl, scratch, or a checkpoint path")
    for name, kind in (("--n-layer", int), ("--n-head", int), ("--n-embd", int), ("--dropout", float)):
        p.add_argument(name, type=kind)
    p.add_argument("--activation", choices=list(ACTIVATIONS), help="MLP activation of a scratch model")
    p.add_argument("--data", default="data", help="data root; the task's folder is DATA/TASK")
    p.add_argument("--out", help="run folder (default runs/TASK-MODEL-MODE)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its ckpt.pt, with this command line's settings")
    p.add_argument("--plan", action="store_true", help="print what the run costs (steps, FLOPs, time), then stop")
    p.add_argument("--plan-tokens-per-s", type=float, help="--plan: the speed to assume (default: timed steps)")
    p.add_argument("--schedule", choices=["linear", "adaptive"],
                   help="linear: the paper's s(t) = Delta t / T; adaptive: advance once the model has recovered")
    p.add_argument("--delta", type=float, help="CoT tokens removed per epoch (reference: --remove_per_epoch; paper: 8)")
    gate = GateConfig()
    p.add_argument("--gate-threshold", type=float, default=gate.threshold,
                   help="adaptive: advance once the running train exact match is at least this")
    p.add_argument("--gate-min-steps", type=int, default=gate.min_steps, help="adaptive: steps at one s(t), at least")
    p.add_argument("--gate-max-steps", type=int, default=gate.max_steps, help="adaptive: advance anyway after this")
    p.add_argument("--remove-by-epoch", type=float,
                   help="adaptive: advance at least fast enough to have all CoT removed by the end of this epoch")
    p.add_argument("--slower-from", type=float, default=gate.slower_from,
                   help="adaptive: the counts from this one on get --slower-by times the deadline's steps of the others")
    p.add_argument("--slower-by", type=float, default=gate.slower_by)
    p.add_argument("--gate-collapse", type=float, default=gate.collapse,
                   help="adaptive: a running exact match below this for --gate-patience steps rolls back")
    p.add_argument("--gate-patience", type=int, default=gate.patience)
    p.add_argument("--gate-max-retries", type=int, default=gate.max_retries, help="adaptive: rollbacks per advance")
    p.add_argument("--max-chunk", type=int, default=gate.max_chunk,
                   help="adaptive: tokens per advance may double up to this while the model recovers at once")
    p.add_argument("--carry-weight", type=float, help="beyond the paper, multKxK: weight of the carry probe's loss "
                   "(model.CarryProbe, after Bai et al. 2025; 0: off; the 3x3 tiny preset: 1)")
    p.add_argument("--bridge-weight", type=float, default=0.0, help="beyond the paper, two-hop tasks: weight of the "
                   "bridge probe's loss (model.BridgeProbe: it must name the bridge entity at the separator)")
    p.add_argument("--fig3-examples", type=int, default=256, help="validation examples of Fig. 3's points, the "
                   "teacher-forced exact match logged at every removed token (0: off)")
    p.add_argument("--smoothing-lambda", type=float, help="removal smoothing lambda; inf turns it off")
    p.add_argument("--no-reset-optimizer", action="store_true")
    p.add_argument("--removal-side", choices=["left", "right"], default="left")
    p.add_argument("--keep-position", action=argparse.BooleanOptionalAction,
                   help="tokens after the removed span keep their position ids (the tiny preset: on)")
    p.add_argument("--pretrain-epochs", type=int, help="epochs of explicit CoT before removal starts")
    p.add_argument("--remove-start-from", type=int, default=0)
    p.add_argument("--remove-all-beyond", type=float, default=math.inf, help="remove all CoT once s(t) reaches this")
    p.add_argument("--max-len-train", type=int, default=-1, help="skip batches longer than this (GSM8K)")
    for name, kind in (("--epochs", int), ("--lr", float), ("--weight-decay", float), ("--batch-size", int)):
        p.add_argument(name, type=kind)
    p.add_argument("--accumulate", type=int, default=1)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--reset-warmup", type=int, help="linear lr warm-up steps after each optimizer reset (0 = paper)")
    p.add_argument("--decay-epochs", type=int, help="lr decays linearly to 0 over the last N epochs (0 = paper: constant)")
    p.add_argument("--decay-after-recovery", action=argparse.BooleanOptionalAction,
                   help="adaptive: the decay starts no sooner than the running train exact match at zero CoT reaches "
                        "--gate-threshold, and no later than --min-decay-epochs before the end (on in the 3x3 tiny preset)")
    p.add_argument("--min-decay-epochs", type=float, default=1.0,
                   help="with --decay-after-recovery: epochs the decay keeps, at least (at most --decay-epochs)")
    p.add_argument("--train-size", type=int, help="use only the first N training examples")
    p.add_argument("--val-limit", type=int, help="validate on the first N examples only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="bfloat16: autocast over fp32 weights (on a GPU; on a CPU where torch supports it)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward and backward")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--save-every", type=int, default=0, help="also write ckpt.pt every N steps (at an optimizer "
                   "step's boundary), for an exact --resume from the middle of an epoch")
    args = p.parse_args(argv)
    if args.recipe:                                                      # the saved settings become the defaults
        p.set_defaults(**read_recipe(args.recipe, set(vars(args)), p.error))
        args = p.parse_args(argv)
    if args.task is None:
        p.error("the following arguments are required: --task (or --recipe)")
    fill_in_preset(args)
    check_filled(args, p.error)
    return args


def read_recipe(path, settings, error):
    """A saved args.json (train.py writes every setting, resolved) as settings, minus where and how it ran."""
    try:
        recipe = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        error(f"--recipe {path}: not a readable args.json ({e})")
    if not isinstance(recipe, dict):
        error(f"--recipe {path}: not a JSON object of settings")
    unknown = sorted(set(recipe) - settings)
    if unknown:
        error(f"--recipe {path}: not settings of this train.py: {', '.join(map(str, unknown))}")
    return {k: v for k, v in recipe.items() if k not in ("device", "resume", "plan", "recipe")}


def fill_in_preset(args):
    """Every setting left None is decided here, by the preset and the other flags: the preset's value, except
    where that value goes only with other settings (the gate learns the explicit CoT at its own pace; the
    carry probe goes with adaptive removal from the left; the decay waits for recovery only where it can)."""
    preset = PAPER if args.model == "paper" else {**TINY, **TINY_TASKS.get(args.task, {})}
    fill = lambda key, value: getattr(args, key) is None and setattr(args, key, value)
    for key in ("schedule", "init", "decay_epochs"):
        fill(key, preset[key])
    adaptive, stepwise = args.schedule == "adaptive", args.mode == "stepwise"
    fill("pretrain_epochs", 0 if adaptive else preset["pretrain_epochs"])
    fill("carry_weight", preset["carry_weight"] if adaptive and stepwise and args.removal_side == "left" else 0.0)
    fill("decay_after_recovery", preset["decay_after_recovery"] and adaptive and stepwise and args.decay_epochs > 0)
    fill("activation", preset["activation"] if args.init == "scratch" else "gelu_tanh")   # weights bring theirs
    fill("out", f"runs/{args.task}-{args.model}-{args.mode}")
    for key, value in preset.items():
        fill(key, value)


def check_filled(args, error):
    """Checks of the settings the run will use, once the preset has filled them in."""
    if args.init not in ("scratch", *PRESETS) and not Path(args.init).exists():
        error(f"--init {args.init}: not a GPT-2 name, 'scratch', or an existing checkpoint path")
    if args.init != "scratch" and args.activation != "gelu_tanh":      # the preset gives those gelu_tanh
        error(f"--activation {args.activation}: only a scratch model can change GPT-2's gelu_tanh")
    try:
        offset_distribution(args.smoothing_lambda)
    except ValueError as e:
        error(f"--smoothing-lambda: {e}")
    for keys, least in ((("batch_size", "epochs", "accumulate", "gate_min_steps", "gate_patience", "max_chunk"), 1),
                        (("reset_warmup", "decay_epochs", "pretrain_epochs", "gate_max_retries", "fig3_examples",
                          "save_every", "carry_weight", "bridge_weight"), 0)):
        for key in keys:
            if not getattr(args, key) >= least:                          # NaN too
                error(f"--{key.replace('_', '-')} must be >= {least}, got {getattr(args, key)}")
    for key in ("delta", "slower_by", "plan_tokens_per_s"):
        if getattr(args, key) is not None and not getattr(args, key) > 0:
            error(f"--{key.replace('_', '-')} must be > 0, got {getattr(args, key)}")
    if not args.slower_from >= 0:
        error(f"--slower-from must be >= 0, got {args.slower_from}")
    if not 0 < args.gate_threshold <= 1 or not 0 <= args.gate_collapse < args.gate_threshold:
        error(f"--gate-threshold must be in (0, 1] and --gate-collapse in [0, threshold), got "
              f"{args.gate_threshold} and {args.gate_collapse}")
    if args.batch_size < WORLD_SIZE:
        error(f"--batch-size {args.batch_size} is the global batch: it needs a row for each of {WORLD_SIZE} processes")
    if args.decay_after_recovery and (args.schedule != "adaptive" or not args.decay_epochs
                                      or not 0 < args.min_decay_epochs <= args.decay_epochs):
        error("--decay-after-recovery needs --schedule adaptive, --decay-epochs > 0 and "
              "0 < --min-decay-epochs <= --decay-epochs")
    if args.gate_max_steps < args.gate_min_steps:
        error(f"--gate-max-steps ({args.gate_max_steps}) must be >= --gate-min-steps ({args.gate_min_steps})")
    if args.carry_weight and (not args.task.startswith("mult") or args.removal_side != "left"):
        error(f"--carry-weight is for multKxK tasks with CoT removed from the left, not {args.task} "
              f"from the {args.removal_side}")
    if args.bridge_weight and not args.task.startswith("twohop"):
        error(f"--bridge-weight is for two-hop tasks (twohop...), not {args.task}")


def main(argv=None):
    args = parse_args(argv)
    try:
        plan(args) if args.plan else train(args)
    except (data.DataError, CheckpointError, TrainingError, OSError) as e:
        sys.exit(f"train.py: error: {e}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
