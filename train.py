"""
Stepwise Internalization training (Deng, Choi & Shieber 2024). Training starts as explicit CoT; as it goes,
the first s(t) = Delta t / T CoT tokens are removed from every example (T batches per epoch, Delta tokens per
epoch), each example removing s(t) + o tokens with a random offset o ~ P(o) proportional to exp(-lambda o)
(removal smoothing), and AdamW starts fresh every time s(t) grows. Once all CoT is gone the model answers
directly: implicit CoT. `train()` is that loop, in the paper's order. What goes beyond the paper lives in
beyond/, called in lines marked "beyond"; without that folder this file runs the paper alone.

    python train.py --task mult3x3 --model tiny --schedule linear   # the paper's method, 0.6M model, CPU
    python train.py --task mult3x3 --model tiny      # the CPU preset: that, plus beyond/'s gate and probe
    python train.py --task mult7x7 --delta 8         # the paper's recipe: GPT-2 small, lr 5e-5, batch 32
    python train.py --task mult4x4 --mode nocot      # the no-CoT baseline (or --mode explicit)
    torchrun --nproc_per_node 8 train.py --task mult7x7   # data parallel: batch 32 split 8 ways
"""
import argparse
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
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

import data
from data import COUNT, PATH, POSITIVE, RATE, RATE_OR_INF, WEIGHT, ranged
from eval import Level, missing_device, read_checkpoint, targets_right, teacher_forced_accuracy, validate
from model import ACTIVATIONS, GPT, GPTConfig, PRESETS, CheckpointError
from schedule import IGNORE, remove_cot, sample_offsets, scheduled_to_remove, should_reset

try:
    import beyond            # the additions beyond the paper (the folder beyond/); the paper runs without it
except ModuleNotFoundError as e:
    if e.name != "beyond":
        raise
    beyond = None

PAPER = dict(init="gpt2", schedule="linear", delta=8, lr=5e-5, weight_decay=0.01, batch_size=32, epochs=200,
             train_size=None, smoothing_lambda=4.0, reset_warmup=0, decay_epochs=0, keep_position=False,
             pretrain_epochs=0, dropout=0.1, activation="gelu_tanh", n_layer=None, n_head=None, n_embd=None)
TINY = dict(init="scratch", schedule="linear", delta=12, lr=1e-3, weight_decay=0.01, batch_size=128,
            epochs=10, train_size=102400, smoothing_lambda=4.0, reset_warmup=20, decay_epochs=4,
            keep_position=True, pretrain_epochs=2, dropout=0.0, activation="gelu", n_layer=3, n_head=4,
            n_embd=128, mult4x4=dict(batch_size=64, epochs=30))          # per task: what changes
RANK, WORLD_SIZE = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))   # set by torchrun
# What --resume may change; every other setting is the run's own.
ON_RESUME = {"resume", "overwrite", "out", "data", "epochs", "lr", "weight_decay", "max_grad_norm",
             "log_every", "val_limit", "fig3_examples", "device", "dtype", "compile", "save_every",
             "max_steps", "recipe", "plan", "plan_tokens_per_s"}


@dataclass
class RunState:
    """What the loop carries from batch to batch; saved whole in ckpt.pt, so --resume continues exactly."""
    epoch: int = 0
    batch_in_epoch: int = 0          # position in this epoch's order (T once the epoch is done)
    step: int = 0                    # batches trained so far: the clock of every log record
    schedule_batch: int = 0          # t of s(t): batches since removal began (explicit epochs do not count)
    to_remove: float = 0             # s(t): CoT tokens scheduled for removal (inf: all)
    all_removed_previous: bool = False   # every example of the previous batch had lost all its CoT
    best_val: float = -math.inf      # best validation exact match since "best" last restarted
    best_level: int = None           # the CoT tokens removed at that validation
    since_reset: int = 0             # optimizer steps since the last fresh AdamW (its lr warm-up)
    accumulated: int = 0             # batches whose gradients wait for the next optimizer step
    logged: int = 0                  # records in metrics.jsonl: a resume cuts the log back to these


def train(args):
    seed_this_process(args)
    run = start_or_resume(args, set_up_device(args))
    task, state, adds, T = run.task, run.state, run.additions, run.task.batches_per_epoch
    forward = run.net                                             # DDP inside compile: all-reduce overlaps
    if WORLD_SIZE > 1:
        on_gpu = run.device.type == "cuda"
        forward = DistributedDataParallel(forward, device_ids=[run.device.index] if on_gpu else None)
    if args.compile:                                              # one graph for every length (dynamic)
        forward = torch.compile(forward, dynamic=True)
    for epoch in range(state.epoch, last_epoch(run)):
        state.epoch = epoch
        rng = np.random.default_rng([args.seed, epoch])         # data order and offsets, shared by processes
        order = rng.permutation(task.n_train)
        first = adds.steps.first_batch(state, rng, T) if adds.steps else 0   # beyond: mid-epoch checkpoint
        run.net.train()
        for i in range(first, T):
            state.batch_in_epoch, previous = i, state.to_remove
            ids = order[i * args.batch_size:(i + 1) * args.batch_size]
            # 1. s(t) = Delta * t / T CoT tokens scheduled for removal (Sec. 3), discretized as the reference
            if args.mode == "stepwise" and epoch >= args.pretrain_epochs:
                state.to_remove = scheduled_to_remove(state.schedule_batch, T, args.delta,
                                                      args.remove_start_from, args.remove_all_beyond)
                if adds.gate:                                     # beyond: the adaptive gate's s(t) instead
                    state.to_remove, run.optimizer = adds.gate.to_remove(state, run.optimizer)
                state.schedule_batch += 1
            log_fig3_point(run, previous)                         # Fig. 3: a point per removed token
            # 2. a fresh AdamW whenever s(t) grows (reference: the gradients of a partial window are dropped)
            reset_enabled = not args.no_reset_optimizer
            if should_reset(state.to_remove, previous, state.all_removed_previous, reset_enabled):
                run.net.zero_grad(set_to_none=True)
                state.since_reset, state.accumulated = 0, 0
                run.optimizer = new_optimizer(run.net.parameters(), args)
                run.log({"event": "optimizer_reset", "step": state.step,
                         "scheduled_to_remove": count(state.to_remove)})
            # 3. each example loses s(t) + o CoT tokens, o ~ P(o) = (1 - e^-lambda) e^(-lambda o)
            raw = task.train.batch(ids)
            n_remove = removal_counts(args, state, epoch, len(ids), rng)
            tokens, targets, positions, _, _, reaches_end = remove_cot(raw, n_remove, args.removal_side,
                                                                      args.keep_position)
            note_all_removed(args, state, reaches_end, n_remove >= raw[2][:, 1] - raw[2][:, 0] - 1)
            if 0 < args.max_len_train < tokens.shape[1]:          # reference: skip batches longer than this
                continue
            # 4. forward, backward (loss on all after the first separator); a step every --accumulate batches
            batch = this_process_batch(run, raw, tokens, targets, positions)
            logits, loss, probe_loss = forward_backward(forward, run, batch)
            if state.accumulated == args.accumulate:
                optimizer_step(run)
            run.meter.count(tokens.size, loss, state.step)       # a non-finite loss, noticed on the device
            state.step += 1
            if adds.gate:                                         # beyond: the gate's one host read a batch
                adds.gate.after_batch(logits, batch)
            if state.step % args.log_every == 0:
                log_batch(run, logits, loss, probe_loss, batch)
            if adds.steps:                                        # beyond: ckpt.pt every --save-every steps
                adds.steps.after_batch(run, rng, i)
        state.batch_in_epoch = T
        run.meter.check_finite(state, run.folder)                 # nothing is saved after a non-finite loss
        if RANK == 0:                                             # the others wait for its validation
            end_of_epoch(run)
        if WORLD_SIZE > 1:
            dist.barrier()
        if adds.budget and adds.budget.after_epoch(state):       # beyond: stop once validation is >= 0.99
            break
    if cot_left(run) and RANK == 0:
        print(f"train.py: the run ended with {cot_left(run)} of {task.longest_val_cot} CoT tokens still in "
              f"place (s(t) = {count(state.to_remove)}): more epochs or a larger --delta", flush=True)


def last_epoch(run):
    """The loop runs --epochs epochs, or (beyond/budget.py) on to its cap, unless the run already stopped."""
    return run.additions.budget.last_epoch(run.state) if run.additions.budget else run.args.epochs


def removal_counts(args, state, epoch, batch_size, rng):
    """How many CoT tokens each example of this batch loses: s(t) + o, by mode."""
    if args.mode != "stepwise":
        return np.full(batch_size, 0 if args.mode == "explicit" else math.inf)
    if epoch < args.pretrain_epochs:                              # reference: fill_(remove_start_from)
        return np.full(batch_size, args.remove_start_from)
    return state.to_remove + sample_offsets(args.smoothing_lambda, batch_size, rng)


def note_all_removed(args, state, reaches_end, all_gone):
    """Reference: where removal runs (s(t) > 0 or smoothing on), "all CoT removed" is every removed span
    reaching the second separator (the reset rule reads it), and "best" restarts while an example has CoT."""
    removal_ran = args.mode == "nocot" or (args.mode == "stepwise" and (
        state.to_remove > 0 or math.isfinite(args.smoothing_lambda)))
    state.all_removed_previous = removal_ran and bool(reaches_end.all())
    if removal_ran and not all_gone.all():
        state.best_val = -math.inf


def new_optimizer(parameters, args):
    """The reference's AdamW: lr, torch's other defaults (weight decay 0.01); fused into one CUDA kernel."""
    return torch.optim.AdamW(parameters, lr=args.lr, weight_decay=args.weight_decay,
                             fused=torch.device(args.device).type == "cuda")


class TrainingForward(torch.nn.Module):
    """The training pass, one graph for torch.compile and one unit for DDP: the GPT's blocks, the head only at
    the labelled positions `label_rows` (flat indices into B x T; position t predicts token t+1, ids
    `targets`), their mean cross-entropy; and a probe's loss on the same hidden states, where there is one."""

    def __init__(self, model, probe=None):
        super().__init__()
        self.model, self.probe = model, probe

    def forward(self, idx, targets, label_rows, position_ids=None, probe_inputs=None):
        states = self.model.hidden_states(idx, position_ids)
        x = self.model.transformer.ln_f(states[-1]).flatten(0, 1).index_select(0, label_rows)
        logits = self.model.lm_head(x)
        loss = F.cross_entropy(logits.float(), self.model.to_index(targets))
        probe_loss = None if self.probe is None else self.probe.loss(states, *probe_inputs)   # beyond
        return logits, loss, probe_loss


def this_process_batch(run, raw, tokens, targets, positions):
    """Every process built the whole global batch (same order, same offsets); each trains on its rows, its
    share of the batch's labels weighting its loss. Inputs are checked here, on the host: no GPU stall."""
    run.net.model.check_inputs(tokens, positions)
    mine, pinned = np.array_split(np.arange(len(tokens)), WORLD_SIZE)[RANK], run.device.type == "cuda"
    to_device = lambda a: (torch.from_numpy(a).pin_memory() if pinned else torch.from_numpy(a)).to(
        run.device, non_blocking=pinned)                          # pinned: the copy overlaps the GPU's work
    label_rows = np.flatnonzero(targets[mine] != IGNORE)          # where the head runs: indices, not a mask
    batch = SimpleNamespace(size=len(tokens), tokens=to_device(tokens[mine]),
                            targets=to_device(targets[mine]),
                            label_targets=to_device(targets[mine].reshape(-1)[label_rows]),
                            label_rows=to_device(label_rows), probe_inputs=None, probe_share=0.0,
                            positions=None if positions is None else to_device(positions[mine]),
                            share=float((targets[mine] != IGNORE).sum() / (targets != IGNORE).sum()))
    if run.net.probe is not None:                                 # beyond: the probe's positions and targets
        batch.probe_inputs, batch.probe_share = run.net.probe.inputs(raw, tokens, mine, run.state.to_remove,
                                                                     to_device)
    return batch


def forward_backward(forward, run, batch):
    """Forward and backward (bf16 autocast with --dtype bfloat16), the loss weighted by this process's share
    of the labels (DDP averages gradients), all-reduced only on the last batch of an --accumulate window."""
    args, state = run.args, run.state
    autocast = torch.autocast(batch.tokens.device.type, torch.bfloat16, enabled=args.dtype == "bfloat16")
    last = state.accumulated + 1 == args.accumulate
    with autocast, forward.no_sync() if WORLD_SIZE > 1 and not last else nullcontext():
        logits, loss, probe_loss = forward(batch.tokens, batch.label_targets, batch.label_rows,
                                           batch.positions, batch.probe_inputs)
        total = loss * batch.share * WORLD_SIZE
        if probe_loss is not None:                                # beyond: the probe's weighted loss
            total = total + run.net.probe.loss_weight * probe_loss * batch.probe_share * WORLD_SIZE
        (total / args.accumulate).backward()
    state.accumulated += 1
    return logits, loss, probe_loss


def optimizer_step(run):
    """Clip, step at this batch's lr, and clear the gradients."""
    run.state.accumulated = 0
    for group in run.optimizer.param_groups:
        group["lr"] = learning_rate(run.args, run.state, run.task.batches_per_epoch, run.additions)
    torch.nn.utils.clip_grad_norm_(run.net.parameters(), run.args.max_grad_norm)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.state.since_reset += 1


def learning_rate(args, state, batches_per_epoch, additions=None):
    """The paper's constant lr, times a linear warm-up after each optimizer reset and a linear decay to 0 over
    the last --decay-epochs epochs (all, in a shorter run), counted in batches seen (skipped ones too)."""
    warmup = min(1.0, (state.since_reset + 1) / args.reset_warmup) if args.reset_warmup else 1.0
    if not args.decay_epochs:
        return args.lr * warmup
    seen = state.epoch * batches_per_epoch + state.batch_in_epoch
    total = args.epochs * batches_per_epoch
    if additions and additions.budget and seen >= total:         # beyond: the budget's rounds past --epochs
        return args.lr * warmup * additions.budget.lr_factor(seen)
    decay_from = total - min(args.decay_epochs, args.epochs) * batches_per_epoch
    if additions and additions.gate:                             # beyond: the decay may wait for recovery
        decay_from = additions.gate.decay_start(decay_from, total)
    return args.lr * warmup * min(1.0, (total - seen) / max(1, total - decay_from))


def log_batch(run, logits, loss, probe_loss, batch):
    """Every --log-every steps: loss, token accuracy, probe loss, speed: read from the device here, only."""
    state, probe, meter = run.state, run.net.probe, run.meter
    meter.check_finite(state, run.folder)
    has_label = batch.targets != IGNORE
    right = targets_right(run.net.model, logits.detach(), batch.targets, batch.label_rows) & has_label
    sums = global_sum(torch.stack([loss.detach().float() * batch.share, right.sum().float(),
                                   has_label.sum().float()])).tolist()
    now, rate = time.time(), meter.tokens / (time.time() - meter.since)
    meter.since, meter.tokens = now, 0
    record = {"step": state.step, "epoch": state.epoch,
              "scheduled_to_remove": count(eval_level(run).n_remove), "loss": round(sums[0], 4),
              "token_acc": round(sums[1] / sums[2], 4), "tokens_per_s": round(rate),
              "minutes": round((now - meter.started) / 60, 2)}
    if probe_loss is not None:                                    # beyond: this process's rows
        record[probe.name] = round(probe_loss.item(), 4)
    eta = (now - meter.started) / max(1, state.step - meter.first_step) * (meter.total - state.step) / 60
    run.log(record, f"step {state.step} epoch {state.epoch} removed {record['scheduled_to_remove']} loss "
                    f"{record['loss']:.4f} token_acc {record['token_acc']:.3f} " +
                    (f"{probe.name} {record[probe.name]:.3f} " if probe_loss is not None else "") +
                    f"{record['tokens_per_s']} tok/s ETA {eta:.1f} min")


def log_fig3_point(run, previous):
    """Fig. 3: when s(t) has just grown, validation exact match (teacher-forced) at the s(t) left behind."""
    args, grew = run.args, run.state.to_remove > previous
    if grew and previous < run.task.longest_val_cot and args.fig3_examples and RANK == 0:
        level = Level(previous, args.removal_side, args.keep_position)
        run.log({"event": "fig3_point", "step": run.state.step, "cot_removed": int(previous),
                 "teacher_forced_acc": teacher_forced_accuracy(run.net.model, run.task.val, level,
                                                               args.fig3_examples)})


def end_of_epoch(run):
    """Validation at the current removal level (offsets off); the checkpoint and the best one. "Best" restarts
    when the CoT removed at validation changes (docs/reference.md, "Best checkpoint")."""
    state, task, level = run.state, run.task, eval_level(run)
    record = {"epoch": state.epoch, "step": state.step, "scheduled_to_remove": count(level.n_remove),
              **validate(run.net.model, task, level, run.args.val_limit),
              "minutes": round((time.time() - run.meter.started) / 60, 2)}
    if state.epoch == run.args.epochs - 1 and cot_left(run):
        record["cot_left"] = cot_left(run)                        # the run ends before all CoT is gone
    others = "".join(f", {name} {record[f'{name}_acc']:.3f}" for name in task.reported)
    run.log(record, f"epoch {state.epoch}: val exact match {record['val_acc']:.3f}{others} with "
                    f"{record['cot_removed']}/{task.longest_val_cot} CoT tokens removed, "
                    f"{record['val_examples_per_s']:.1f} examples/s")
    if state.best_level not in (None, record["cot_removed"]):    # the CoT level changed: a new "best"
        state.best_val = -math.inf
    state.best_level = record["cot_removed"]
    if record["val_acc"] > state.best_val:
        state.best_val = record["val_acc"]
        save_checkpoint(run, "best.pt")
    save_checkpoint(run, "ckpt.pt")


def eval_level(run):
    """The CoT removed at evaluation (offsets off): s(t) in stepwise mode, none or all in the baselines."""
    n_remove = {"stepwise": run.state.to_remove, "explicit": 0, "nocot": math.inf}[run.args.mode]
    return Level(n_remove, run.args.removal_side, run.args.keep_position)


def cot_left(run):
    return int(max(0, run.task.longest_val_cot - run.state.to_remove)) if run.args.mode == "stepwise" else 0


def count(to_remove):
    return "all" if math.isinf(to_remove) else int(to_remove)


class Meter:
    """Tokens and time between log lines, and a non-finite loss without a host read a batch: its first step
    stays on the device, read at log lines and before saves (then the run stops)."""

    def __init__(self, first_step, total_steps, device):
        self.started = self.since = time.time()
        self.first_step, self.total, self.tokens = first_step, total_steps, 0
        self.first_bad = torch.tensor(-1, device=device)

    def count(self, tokens, loss, step):
        self.tokens += tokens
        bad = (self.first_bad < 0) & ~torch.isfinite(loss.detach())
        self.first_bad = torch.where(bad, step, self.first_bad)

    def check_finite(self, state, folder):
        if global_sum((self.first_bad >= 0).long()).item():       # one host read
            where = f"step {self.first_bad.item()}" if self.first_bad >= 0 else "another process's step"
            kept = "holds the last good checkpoint" if (folder / "ckpt.pt").exists() else "was never written"
            raise TrainingError(f"{where} (epoch {state.epoch}): the loss is not finite (nan or inf); "
                                f"stopped, {folder / 'ckpt.pt'} {kept}")


class TrainingError(RuntimeError):
    """The run cannot go on (a non-finite loss); the message says where."""


def new_run(args, task, model, device):
    """What the loop works on: the task, model (+ a probe), AdamW, RunState and the additions, on `device`."""
    net = TrainingForward(model, beyond.make_probe(args, task, model.config) if beyond else None).to(device)
    run = SimpleNamespace(args=args, task=task, folder=Path(args.out), device=device, net=net,
                          state=RunState(to_remove=args.remove_start_from))
    run.log = lambda record, echo=None: log(run, record, echo)
    run.optimizer = new_optimizer(net.parameters(), args)
    run.additions = beyond.make_additions(run, new_optimizer, save_checkpoint) if beyond else \
        SimpleNamespace(gate=None, steps=None, budget=None)
    return run


def start_or_resume(args, device):
    """A new run (its folder, args.json, an empty log), or (--resume) the run ckpt.pt holds, RNG included: its
    optimizer, RunState and additions, the log cut back to a whole last line."""
    task, path = data.load_task(args, WORLD_SIZE, rank_zero_first), Path(args.out) / "ckpt.pt"
    split = task.train
    shortest = int((split.seps[:, 2] - split.starts + 1 - (split.seps[:, 1] - split.seps[:, 0] - 1)).min())
    if 0 < args.max_len_train < shortest:                         # no batch could ever be trained on
        raise data.DataError(f"--max-len-train {args.max_len_train}: every example is longer, {shortest} "
                             f"tokens or more even with all its CoT removed")
    model, ckpt = read_checkpoint(path) if args.resume else (None, None)
    if ckpt and beyond:                                           # beyond: checkpoints written before beyond/
        ckpt = beyond.upgrade_checkpoint(ckpt)
    model = model or rank_zero_first(build_model, args, task.meta, task.longest_example)
    run = new_run(args, task, model, device)
    if ckpt:
        lacking = [key for key in ("optimizer", "schedule", "rng") if key not in ckpt]
        if lacking:
            raise CheckpointError(f"{path}: cannot resume: no {', '.join(lacking)} in it (a best.pt?)")
        if ckpt["task"] != args.task:
            raise data.DataError(f"{path} was trained on {ckpt['task']}, not {args.task}")
        if set(ckpt["schedule"]) != {f.name for f in fields(RunState)}:
            raise CheckpointError(f"{path}: written by another version of train.py; start a new run")
        if beyond:                                                # beyond: the run's own probe and schedule
            beyond.check_resume(ckpt, run.additions, path)
        changed = {k: v for k, v in vars(args).items() if k != "resume" and ckpt["args"].get(k, v) != v}
        refused = [k for k in changed if k not in ON_RESUME]
        if refused:
            raise CheckpointError(f"{path} was trained with other settings: " + ", ".join(
                f"--{k.replace('_', '-')} {ckpt['args'][k]} (now {changed[k]})" for k in refused))
        if ckpt.get("additions") and not beyond:
            raise CheckpointError(f"{path}: its {', '.join(ckpt['additions'])} need beyond/ beside train.py")
        for name, saved in ckpt.get("additions", {}).items():     # beyond: the probe's, the gate's state
            getattr(run.additions, name).load_state_dict(saved)
        run.optimizer.load_state_dict(ckpt["optimizer"])
        for group in run.optimizer.param_groups:                  # this command line's weight decay, like lr
            group["weight_decay"] = args.weight_decay
        run.state = RunState(**ckpt["schedule"])
        run.state.epoch += run.state.batch_in_epoch >= task.batches_per_epoch   # saved at an epoch's end
        set_rng_state(ckpt, device, args.seed + RANK + 1000003 * run.state.step)
        if RANK == 0:                                             # drop what was logged after the save
            lines = (run.folder / "metrics.jsonl").read_bytes().split(b"\n")[:-1]
            keep = lines if run.state.logged is None else lines[:run.state.logged]   # (old checkpoints: None)
            (run.folder / "metrics.jsonl").write_bytes(b"".join(line + b"\n" for line in keep))
            run.state.logged = len(keep)
            if changed:                                           # what this command line changed, in the log
                run.log({"event": "resume", "step": run.state.step, "changed": changed})
    elif RANK == 0:
        for name in ("ckpt.pt", "best.pt"):                       # --overwrite: the old run goes
            (run.folder / name).unlink(missing_ok=True)
        run.folder.mkdir(parents=True, exist_ok=True)
        (run.folder / "metrics.jsonl").write_text("")
        (run.folder / "args.json").write_text(json.dumps(vars(args), indent=1))
    run.meter = Meter(run.state.step, last_epoch(run) * task.batches_per_epoch, device)
    if RANK == 0:
        n_params = run.net.model.get_num_params(non_embedding=False)
        print(f"{args.task}: {task.n_train} examples, T={task.batches_per_epoch} batches/epoch, CoT "
              f"{task.longest_val_cot} tokens, model {n_params / 1e6:.2f}M parameters on {device} x "
              f"{WORLD_SIZE} ({args.dtype}), {args.schedule} schedule", flush=True)
    return run


def save_checkpoint(run, name):
    """What eval.py and --init need (best.pt), and what --resume needs too (ckpt.pt: the optimizer, RNG and
    additions); loadable with weights_only=True; by rank 0, atomically."""
    if RANK == 0:
        model, args = run.net.model, run.args
        ckpt = {"model_config": asdict(model.config), "model": model.state_dict(), "task": args.task,
                "schedule": asdict(run.state), "args": vars(args), "removal_side": args.removal_side,
                "n_remove": float(eval_level(run).n_remove), "keep_position": args.keep_position,
                "vocab_ids": run.task.meta["vocab_ids"]}
        if name == "ckpt.pt":
            ckpt.update(optimizer=run.optimizer.state_dict(), **rng_state(run.device), additions={
                key: addition.state_dict() for key, addition in vars(run.additions).items() if addition})
        data.write_atomic(run.folder / name, lambda f: torch.save(ckpt, f))


def rng_state(device):
    """The RNGs dropout draws from: the CPU's, and the GPU's when training on one."""
    return {"rng": torch.get_rng_state(), **({"cuda_rng": torch.cuda.get_rng_state(device)}
                                             if device.type == "cuda" else {})}


def set_rng_state(ckpt, device, other_seed):
    """Rank 0 continues the saved RNG streams exactly; the other processes draw their own dropout masks."""
    if RANK:
        return torch.manual_seed(other_seed)
    torch.set_rng_state(ckpt["rng"])
    if device.type == "cuda" and "cuda_rng" in ckpt:
        torch.cuda.set_rng_state(ckpt["cuda_rng"], device)


def log(run, record, echo=None):
    run.state.logged += 1
    if RANK == 0:                                                 # rank 0 logs for all
        with open(run.folder / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if echo:
            print(echo, flush=True)


def build_model(args, meta, longest):
    """GPT-2 weights (full vocabulary), a train.py checkpoint, or a scratch model over the dataset's compact
    vocabulary; in every case with positions for the longest example."""
    if args.init == "scratch":
        return GPT(GPTConfig(block_size=longest, n_layer=args.n_layer or 3, n_head=args.n_head or 4,
                             n_embd=args.n_embd or 128, dropout=args.dropout, activation=args.activation,
                             vocab_ids=meta["vocab_ids"]))
    model = read_checkpoint(args.init)[0] if args.init.endswith(".pt") else \
        GPT.from_pretrained(args.init, {"dropout": args.dropout})   # HF GPT-2 trains with dropout 0.1
    unknown = sorted(set(meta["vocab_ids"]) - set(model.config.vocab_ids or range(model.config.vocab_size)))
    if unknown:
        raise data.DataError(f"--init {args.init}: its vocabulary lacks {len(unknown)} token ids of "
                             f"{args.task} (e.g. {unknown[0]} = {data.tokenizer().decode([unknown[0]])!r})")
    model.extend_positions(longest)
    return model


def seed_this_process(args):
    """Init and dropout draw from torch's generator, seeded by rank (as nanoGPT): each process its own dropout
    masks; data order and offsets come from the shared numpy RNG."""
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
    """Rank 0 makes what may be written to disk (generated data, downloaded weights), then the others."""
    result = make(*args) if RANK == 0 else None
    if WORLD_SIZE > 1:
        dist.barrier()
    return result if RANK == 0 else make(*args)


def global_sum(value):
    """A tensor summed over all processes (the tensor itself in one process)."""
    if WORLD_SIZE > 1:
        dist.all_reduce(value := value.clone())
    return value


FLAGS = [  # name, type (a list: choices; "bool": a switch; "both": --x/--no-x), default (None: preset), help
    ("--task", str, None, "multKxK (generated if missing) or an imported task folder name"),
    ("--model", ["paper", "tiny"], "paper", "preset: the paper's GPT-2 fine-tuning, or a small CPU model"),
    ("--mode", ["stepwise", "explicit", "nocot"], "stepwise", "stepwise removal, or a baseline"),
    ("--init", str, None, "gpt2, gpt2-medium, gpt2-large, gpt2-xl, scratch, or a checkpoint path"),
    ("--n-layer", POSITIVE, None, "blocks of a scratch model"), ("--n-head", POSITIVE, None, "its heads"),
    ("--n-embd", POSITIVE, None, "its width"), ("--activation", list(ACTIVATIONS), None, "its MLP's"),
    ("--dropout", ranged(float, lambda v: 0 <= v < 1, "a number in [0, 1)"), None, "dropout"),
    ("--data", PATH, "data", "data root; the task's folder is DATA/TASK"),
    ("--out", PATH, None, "run folder (default runs/TASK-MODEL-MODE)"),
    ("--resume", "bool", False, "continue the run in --out from its ckpt.pt"),
    ("--overwrite", "bool", False, "start a new run in --out even where one is (its files go)"),
    ("--schedule", ["linear", "adaptive"], None, "linear: the paper's s(t) = Delta t / T; adaptive: beyond/"),
    ("--delta", RATE, None, "CoT tokens removed per epoch (reference: --remove_per_epoch; paper: 8)"),
    ("--fig3-examples", COUNT, 256, "validation examples of Fig. 3's point at each removed token (0: off)"),
    ("--smoothing-lambda", ranged(float, lambda v: v >= 0, "a number >= 0 or inf"), None, "inf: none"),
    ("--no-reset-optimizer", "bool", False, "keep AdamW's state when s(t) grows"),
    ("--removal-side", ["left", "right"], "left", "remove CoT tokens from its start or its end"),
    ("--keep-position", "both", None, "tokens after the removed span keep their position ids (tiny: on)"),
    ("--pretrain-epochs", COUNT, None, "epochs of explicit CoT before removal starts"),
    ("--remove-start-from", COUNT, 0, "s(t) starts at this count"),
    ("--remove-all-beyond", RATE_OR_INF, math.inf, "remove all CoT once s(t) reaches this"),
    ("--max-len-train", int, -1, "skip batches longer than this (GSM8K; <= 0: none)"),
    ("--epochs", POSITIVE, None, "epochs"), ("--batch-size", POSITIVE, None, "global batch size"),
    ("--lr", RATE, None, "learning rate"), ("--max-grad-norm", RATE, 1.0, "gradient clip"),
    ("--weight-decay", WEIGHT, None, "AdamW's"), ("--accumulate", POSITIVE, 1, "batches per optimizer step"),
    ("--reset-warmup", COUNT, None, "linear lr warm-up steps after each optimizer reset (paper: 0)"),
    ("--decay-epochs", COUNT, None, "lr decays linearly to 0 over the last N epochs (paper: 0, constant)"),
    ("--train-size", POSITIVE, None, "use only the first N training examples"),
    ("--val-limit", POSITIVE, None, "validate on the first N examples only"),
    ("--seed", COUNT, 0, "seed of init, data order and offsets"),
    ("--device", data.DEVICE, "cuda" if torch.cuda.is_available() else "cpu", "where to train"),
    ("--dtype", ["float32", "bfloat16"], "float32", "bfloat16: autocast over fp32 weights"),
    ("--compile", "bool", False, "torch.compile the training forward and backward"),
    ("--log-every", POSITIVE, 50, "steps between log lines")]


def parse_args(argv=None):
    """The flags (beyond/'s too, where it is), a saved recipe's, the preset's: every setting, checked."""
    p = argparse.ArgumentParser(prog="train.py", usage="train.py --task TASK [options]   (--help lists them)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    switches = {"bool": {"action": "store_true"}, "both": {"action": argparse.BooleanOptionalAction}}
    for name, kind, default, help in FLAGS + (beyond.FLAGS if beyond else []):   # beyond: additions' flags
        how = switches[kind] if kind in ("bool", "both") else {"choices": kind} if isinstance(kind, list) \
            else {"type": kind}
        p.add_argument(name, help=help, **how, **({} if "action" in how else {"default": default}))
    args, unknown = p.parse_known_args(argv)
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}" + ("" if beyond else " (flags beyond the "
                "paper need the folder beyond/ beside train.py)"))
    if beyond:                                                    # beyond: a saved run's settings as defaults
        args = beyond.apply_recipe(p, args, argv)
    if args.task is None:
        p.error("the following arguments are required: --task")
    preset = PAPER if args.model == "paper" else {**TINY, **TINY.get(args.task, {})}
    if beyond:                                                    # beyond: the 3x3 preset's additions
        preset = beyond.preset(args, preset)
    fill = lambda key, value: getattr(args, key) is None and setattr(args, key, value)
    for key in ("schedule", "init", "decay_epochs"):
        fill(key, preset[key])
    fill("pretrain_epochs", 0 if args.schedule == "adaptive" else preset["pretrain_epochs"])  # gate: own pace
    if beyond:                                                    # beyond: the probe and decay going with it
        beyond.fill_in(args, preset)
    fill("activation", preset["activation"] if args.init == "scratch" else "gelu_tanh")  # GPT-2's own
    fill("out", f"runs/{args.task}-{args.model}-{args.mode}")
    for key, value in preset.items():
        if hasattr(args, key):
            fill(key, value)
    if args.init not in ("scratch", *PRESETS) and not Path(args.init).exists():
        p.error(f"--init {args.init}: not a GPT-2 name, 'scratch', or an existing checkpoint path")
    if args.init != "scratch" and args.activation != "gelu_tanh":
        p.error(f"--activation {args.activation}: only a scratch model can change GPT-2's gelu_tanh")
    if args.init == "scratch" and (args.n_embd or 128) % (args.n_head or 4):
        p.error(f"--n-embd {args.n_embd} must be a multiple of --n-head {args.n_head}")
    if args.schedule == "adaptive" and not beyond:
        p.error("--schedule adaptive needs the folder beyond/ beside train.py (the paper's: linear)")
    if why := missing_device(args.device):
        p.error(f"--device {args.device}: {why}")
    for flag, folder in (("--out", args.out), ("--data", args.data)):
        if Path(folder).exists() and not Path(folder).is_dir():
            p.error(f"{flag} {folder}: a file, not a folder")
    held = [name for name in ("ckpt.pt", "metrics.jsonl") if (Path(args.out) / name).exists()]
    if held and not (args.resume or args.overwrite or getattr(args, "plan", False)):
        p.error(f"--out {args.out} holds a run ({', '.join(held)}): continue it with --resume, or start over "
                f"with --overwrite")
    if args.resume and not (Path(args.out) / "ckpt.pt").exists():
        p.error(f"--resume: {Path(args.out) / 'ckpt.pt'} does not exist")
    if args.batch_size < WORLD_SIZE:
        p.error(f"--batch-size {args.batch_size} is the global batch: it needs a row for each of the "
                f"{WORLD_SIZE} processes")
    if beyond:                                                    # beyond: the additions' settings
        beyond.check(args, p.error)
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if beyond and args.plan:                                  # beyond: what the run costs, untrained
            beyond.plan(args, sys.modules[__name__])
        else:
            train(args)
    except (data.DataError, CheckpointError, TrainingError, OSError) as e:
        sys.exit(f"train.py: error: {e}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
