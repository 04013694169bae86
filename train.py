"""
Stepwise Internalization training (Deng, Choi & Shieber 2024): start from explicit CoT and remove CoT
tokens from the left as training goes, s(t) = Delta * t / T, each example removing s(t) + o tokens with
o ~ P(o) (removal smoothing), and a fresh AdamW every time s(t) grows. Beyond the paper, --schedule
adaptive lets schedule.gate_step advance the count only once the model has recovered (or a deadline
needs it), and roll back an advance the model collapsed after; --carry-weight adds a linear probe that
must read, before each digit, the value (carry included) behind it and that digit on a circle (after Bai
et al. 2025); --decay-after-recovery holds the lr at its peak until the model has recovered at zero CoT.

    python train.py --task mult7x7 --delta 8              # the paper's recipe: GPT-2 small, lr 5e-5, batch 32
    python train.py --task mult3x3 --model tiny           # a small model from scratch on a CPU: adaptive + carry
                                                          # probe + the lr decay after recovery
    python train.py --task mult3x3 --model tiny --schedule linear      # the same model with the paper's s(t) alone
    python train.py --task mult3x3 --model tiny --carry-weight 0       # the adaptive schedule without the probe
    python train.py --task mult3x3 --model tiny --no-decay-after-recovery   # the lr decays over the last 4 epochs
    python train.py --task mult4x4 --mode nocot           # the no-CoT baseline (or --mode explicit)
    torchrun --nproc_per_node 8 train.py --task mult7x7   # data parallel: the same run, batch 32 split 8 ways
"""
import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import data
from eval import (all_labels_right, evaluate, load_checkpoint, measure_speed, read_checkpoint,
                  teacher_forced_accuracy)
from model import ACTIVATIONS, GPT, GPTConfig, PRESETS, CheckpointError
from schedule import (GateConfig, IGNORE, gate_measure, gate_step, new_gate, offset_distribution, remove_cot,
                      retry_gently, sample_offsets, scheduled_count, should_reset)

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


def preset(model, task, schedule=None):
    """The settings a preset fills in where the command line is silent. With the adaptive schedule the gate
    decides when the explicit CoT is learned, so no fixed explicit epochs come first."""
    settings = PAPER if model == "paper" else {**TINY, **TINY_TASKS.get(task, {})}
    if (schedule or settings["schedule"]) == "adaptive":
        settings = {**settings, "pretrain_epochs": 0}
    return settings


class TrainingError(RuntimeError):
    """The run cannot go on (a non-finite loss); the message says where."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="multKxK (generated if missing) or an imported task folder name")
    p.add_argument("--model", choices=["paper", "tiny"], default="paper",
                   help="settings preset: the paper's GPT-2 fine-tuning, or a small scratch model for a CPU")
    p.add_argument("--mode", choices=["stepwise", "explicit", "nocot"], default="stepwise")
    p.add_argument("--init", help="gpt2, gpt2-medium, gpt2-large, gpt2-xl, scratch, or a checkpoint path")
    p.add_argument("--n-layer", type=int)
    p.add_argument("--n-head", type=int)
    p.add_argument("--n-embd", type=int)
    p.add_argument("--dropout", type=float)
    p.add_argument("--activation", choices=list(ACTIVATIONS), help="MLP activation of a scratch model")
    p.add_argument("--data", default="data", help="data root; the task's folder is DATA/TASK")
    p.add_argument("--out", help="run folder (default runs/TASK-MODEL-MODE)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its ckpt.pt, with this command line's settings")
    p.add_argument("--schedule", choices=["linear", "adaptive"],
                   help="linear: the paper's s(t) = Delta t / T; adaptive: advance once the model has recovered")
    p.add_argument("--delta", type=float, help="CoT tokens removed per epoch (reference: --remove_per_epoch; paper: 8)")
    gate = GateConfig()
    p.add_argument("--gate-threshold", type=float, default=gate.threshold,
                   help="adaptive: advance once the running train exact match is at least this")
    p.add_argument("--gate-min-steps", type=int, default=gate.min_steps, help="adaptive: steps at a count, at least")
    p.add_argument("--gate-max-steps", type=int, default=gate.max_steps, help="adaptive: advance anyway after this")
    p.add_argument("--remove-by-epoch", type=float,
                   help="adaptive: advance at least fast enough to have all CoT removed by the end of this epoch")
    p.add_argument("--gate-collapse", type=float, default=gate.collapse,
                   help="adaptive: a running exact match below this for --gate-patience steps rolls back")
    p.add_argument("--gate-patience", type=int, default=gate.patience)
    p.add_argument("--gate-max-retries", type=int, default=gate.max_retries, help="adaptive: rollbacks per advance")
    p.add_argument("--max-chunk", type=int, default=gate.max_chunk,
                   help="adaptive: tokens per advance may double up to this while the model recovers at once")
    p.add_argument("--carry-weight", type=float,
                   help="beyond the paper (after Bai et al. 2025), multKxK: weight of an auxiliary loss, a linear probe "
                        "that reads the value behind each CoT and output digit, carry included, and the digit on a "
                        "circle (0: off; the 3x3 tiny preset: 1)")
    p.add_argument("--probe-examples", type=int, default=256,
                   help="validation examples of the teacher-forced exact match logged at every advance (0: off)")
    p.add_argument("--smoothing-lambda", type=float, help="removal smoothing lambda; inf turns it off")
    p.add_argument("--no-reset-optimizer", action="store_true")
    p.add_argument("--removal-side", choices=["left", "right"], default="left")
    p.add_argument("--keep-position", action=argparse.BooleanOptionalAction,
                   help="tokens after the removed span keep their position ids (the tiny preset: on)")
    p.add_argument("--pretrain-epochs", type=int, help="epochs of explicit CoT before removal starts")
    p.add_argument("--remove-start-from", type=int, default=0)
    p.add_argument("--remove-all-beyond", type=float, default=math.inf, help="remove all CoT once s(t) reaches this")
    p.add_argument("--max-len-train", type=int, default=-1, help="skip batches longer than this (GSM8K)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--batch-size", type=int)
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
    p.add_argument("--save-every", type=int, default=0,
                   help="also write ckpt.pt every N steps (at the first optimizer-step boundary), for an exact "
                        "--resume from the middle of an epoch")
    args = p.parse_args(argv)
    given_activation, given_carry_weight = args.activation is not None, args.carry_weight is not None
    given_decay_after_recovery = args.decay_after_recovery is not None
    for key, value in preset(args.model, args.task, args.schedule).items():   # fill in what was not given
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = f"runs/{args.task}-{args.model}-{args.mode}"
    if args.delta <= 0:
        p.error(f"--delta must be > 0, got {args.delta}")
    try:
        offset_distribution(args.smoothing_lambda)
    except ValueError as e:
        p.error(f"--smoothing-lambda: {e}")
    for key in ("batch_size", "epochs", "accumulate"):
        if getattr(args, key) <= 0:
            p.error(f"--{key.replace('_', '-')} must be > 0")
    for key in ("reset_warmup", "decay_epochs", "pretrain_epochs", "gate_max_retries", "probe_examples",
                "save_every"):
        if getattr(args, key) < 0:
            p.error(f"--{key.replace('_', '-')} must be >= 0")
    for key in ("gate_min_steps", "gate_patience", "max_chunk"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    if not 0 < args.gate_threshold <= 1 or not 0 <= args.gate_collapse < args.gate_threshold:
        p.error(f"--gate-threshold must be in (0, 1] and --gate-collapse in [0, threshold), got "
                f"{args.gate_threshold} and {args.gate_collapse}")
    if args.batch_size < WORLD_SIZE:
        p.error(f"--batch-size {args.batch_size} is the global batch: it needs a row for each of {WORLD_SIZE} processes")
    if not given_decay_after_recovery and (args.schedule != "adaptive" or args.mode != "stepwise" or not args.decay_epochs):
        args.decay_after_recovery = False   # the preset's rule goes with an adaptive removal that has a decay to wait
    if args.decay_after_recovery and (args.schedule != "adaptive" or not args.decay_epochs
                                      or not 0 < args.min_decay_epochs <= args.decay_epochs):
        p.error("--decay-after-recovery needs --schedule adaptive, --decay-epochs > 0 and "
                "0 < --min-decay-epochs <= --decay-epochs")
    if args.gate_max_steps < args.gate_min_steps:
        p.error(f"--gate-max-steps ({args.gate_max_steps}) must be >= --gate-min-steps ({args.gate_min_steps})")
    if not given_carry_weight and (args.schedule, args.mode, args.removal_side) != ("adaptive", "stepwise", "left"):
        args.carry_weight = 0.0             # the preset's probe goes with the adaptive schedule, removing from the left
    if args.carry_weight < 0:
        p.error(f"--carry-weight must be >= 0, got {args.carry_weight}")
    if args.carry_weight and (not args.task.startswith("mult") or args.removal_side != "left"):
        p.error(f"--carry-weight is for multKxK tasks with CoT removed from the left, not {args.task} "
                f"from the {args.removal_side}")
    if args.init not in list(PRESETS) + ["scratch"] and not Path(args.init).exists():
        p.error(f"--init {args.init}: not a GPT-2 name, 'scratch', or an existing checkpoint path")
    if args.init != "scratch":                                             # weights bring their own activation
        if args.activation != "gelu_tanh" and given_activation:
            p.error(f"--activation {args.activation}: only a scratch model can change GPT-2's gelu_tanh")
        args.activation = "gelu_tanh"
    return args


def start_processes(args):
    """Under torchrun, one process per device joins the group (NCCL on GPUs, gloo on CPUs). Returns this
    process's device."""
    if WORLD_SIZE == 1:
        return torch.device(args.device)
    cuda = args.device.startswith("cuda")
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
        value = value.clone()
        dist.all_reduce(value)
    return value


def to_device(array, device):
    """numpy -> device; on a GPU through pinned memory, so the copy overlaps with the work queued before it."""
    tensor = torch.from_numpy(array)
    return tensor.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else tensor.to(device)


def build_model(args, meta, longest):
    """GPT-2 weights (full vocabulary), a checkpoint, or a scratch model over the dataset's compact vocabulary."""
    if args.init == "scratch":
        config = GPTConfig(block_size=longest, n_layer=args.n_layer or 3, n_head=args.n_head or 4,
                           n_embd=args.n_embd or 128, dropout=args.dropout, activation=args.activation,
                           vocab_ids=meta["vocab_ids"])
        return GPT(config)
    if args.init.endswith(".pt"):
        return load_checkpoint(args.init)[0]
    model = GPT.from_pretrained(args.init, dropout=args.dropout)          # HF GPT-2 trains with dropout 0.1
    model.extend_positions(longest)
    return model


def new_optimizer(model, args):
    """The reference's AdamW: lr, torch's other defaults (weight decay 0.01)."""
    return torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)


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
            "schedule": dict(state), "rng": torch.get_rng_state(), "task": args.task, "n_remove": float(n_remove),
            "removal_side": args.removal_side, "keep_position": args.keep_position, "vocab_ids": meta["vocab_ids"],
            "args": dict(vars(args)), "rollback_point": rollback_point}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)


def removal_counts(args, state, epoch, batch_size, rng):
    """How many CoT tokens each example of this batch loses: s(t) + o, by mode."""
    if args.mode == "explicit":
        return np.zeros(batch_size)
    if args.mode == "nocot":
        return np.full(batch_size, math.inf)
    if epoch < args.pretrain_epochs:                                      # reference: fill_(remove_start_from)
        return np.full(batch_size, args.remove_start_from)
    return state["count"] + sample_offsets(args.smoothing_lambda, batch_size, rng)


def learning_rate(args, state, batches_per_epoch):
    """The paper's constant lr, times (beyond the paper) a linear warm-up after each optimizer reset and a
    linear decay to 0 over the last --decay-epochs epochs (all of them, in a run that is shorter).
    With --decay-after-recovery the decay waits, at the full lr, for the step at which the model has recovered
    at zero CoT (the gate's "recovered"), but leaves itself at least --min-decay-epochs."""
    warmup = min(1.0, (state["since_reset"] + 1) / args.reset_warmup) if args.reset_warmup else 1.0
    if not args.decay_epochs:
        return args.lr * warmup
    total = args.epochs * batches_per_epoch
    decay_from = total - min(args.decay_epochs, args.epochs) * batches_per_epoch
    if args.decay_after_recovery:
        latest = total - round(args.min_decay_epochs * batches_per_epoch)
        recovered_at = state["recovered_at"]
        decay_from = latest if recovered_at is None else min(latest, max(decay_from, recovered_at))
    return args.lr * warmup * min(1.0, (total - state["step"]) / (total - decay_from))


def gate_config(args, batches_per_epoch):
    deadline = (args.remove_by_epoch - args.pretrain_epochs) * batches_per_epoch   # counted from removal's start
    return GateConfig(threshold=args.gate_threshold, min_steps=args.gate_min_steps, max_steps=args.gate_max_steps,
                      deadline=deadline, collapse=args.gate_collapse, patience=args.gate_patience,
                      max_retries=args.gate_max_retries, max_chunk=args.max_chunk)


def snapshot(model, optimizer, state):
    """The state an adaptive advance can be rolled back to, in memory (and in ckpt.pt, for --resume)."""
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(optimizer.state_dict()), "gate": dict(state["gate"]),
            "since_reset": state["since_reset"]}


def restore(point, model, args):
    """Model and AdamW exactly as they were before the advance; returns the optimizer."""
    model.load_state_dict(point["model"])
    optimizer = new_optimizer(model, args)
    optimizer.load_state_dict(copy.deepcopy(point["optimizer"]))
    return optimizer


def follow_gate(state, gate, model, optimizer, rollback_point, args, run, cot_length):
    """The adaptive schedule at the top of a batch: schedule.gate_step decides from the previous batch's
    exact match, this acts on it (advance: keep a rollback point; rollback: restore it and retry gently)
    and logs it. Returns the optimizer and the rollback point, either of which may be new."""
    action, new, measure = gate_step(state["gate"], state["batch_exact_match"], gate, cot_length,
                                     args.remove_all_beyond, state["batch"])
    event = {"event": action, "step": state["batch"], "count": scheduled(state["gate"]["count"]),
             "measure": round(measure, 4), "steps_at_count": state["gate"]["steps"] + 1}
    if action == "advance":
        rollback_point = snapshot(model, optimizer, state)
        state["gate"] = new
        event["to"] = scheduled(new["count"])
    elif action == "recovered":                                          # learning_rate may start its decay
        state["gate"], state["recovered_at"] = new, state["step"]
    elif action == "rollback":
        optimizer = restore(rollback_point, model, args)
        state["gate"] = retry_gently(rollback_point["gate"], new, gate)
        state["since_reset"] = rollback_point["since_reset"]
        event.update(back_to=scheduled(state["gate"]["count"]), retry=state["gate"]["retries"])
    else:
        state["gate"] = new
    if action != "hold" or state["batch"] % args.log_every == 0:
        log(run, event)
    state["count"], state["batch_exact_match"] = state["gate"]["count"], None
    return optimizer, rollback_point


def train(args):
    torch.manual_seed(args.seed)
    device = start_processes(args)
    if device.type == "cuda":                                         # TF32 matmuls where the GPU has them
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    data.tokenizer()                                                  # fail now, not at the first evaluation
    folder = rank_zero_first(data.prepare, args.task, args.data) if args.task.startswith("mult") else \
        Path(args.data) / args.task
    meta = data.load_meta(folder)
    train_split, val_split = data.load_split(folder, "train"), data.load_split(folder, "val")
    reported = {name: data.load_split(folder, name) for name in meta.get("report_splits", [])}   # two-hop: ID, OOD
    n_train = len(train_split) if args.train_size is None else min(args.train_size, len(train_split))
    if 0 < n_train % args.batch_size < WORLD_SIZE:
        raise data.DataError(f"the last batch of an epoch has {n_train % args.batch_size} examples, fewer than the "
                             f"{WORLD_SIZE} processes: change --batch-size or --train-size")
    longest = max(s["longest_example"] for s in meta["splits"].values())
    run = Path(args.out)
    state = {"epoch": 0, "batch": 0, "step": 0, "count": args.remove_start_from, "all_removed_previous": False,
             "best_val": -math.inf, "since_reset": 0, "accumulated": 0, "gate": new_gate(args.remove_start_from),
             "batch_exact_match": None, "next_batch": 0, "epoch_rng": None, "saved_at": 0, "recovered_at": None}
    rollback_point = None
    if args.resume:                                                       # model, optimizer, schedule, RNG
        model, ckpt = read_checkpoint(run / "ckpt.pt")
        if ckpt["task"] != args.task:
            raise data.DataError(f"{run / 'ckpt.pt'} was trained on {ckpt['task']}, not {args.task}")
        if args.carry_weight and not hasattr(model, "carry_probe"):       # its AdamW state has no probe
            raise data.DataError(f"{run / 'ckpt.pt'} was trained without the carry probe: resume with --carry-weight 0")
        model.to(device)
        optimizer = new_optimizer(model, args)
        optimizer.load_state_dict(ckpt["optimizer"])
        for group in optimizer.param_groups:                              # weight decay from this command line, like lr
            group["weight_decay"] = args.weight_decay
        state = {**state, **ckpt["schedule"]}                            # older checkpoints lack newer keys
        state["gate"] = {**new_gate(), **state["gate"]}
        rollback_point = ckpt.get("rollback_point")
        if RANK == 0:
            cut_torn_line(run / "metrics.jsonl")
        if not state["next_batch"]:                                       # saved at an epoch's end
            state["epoch"] += 1
        torch.set_rng_state(ckpt["rng"])
    else:
        model = rank_zero_first(build_model, args, meta, longest).to(device)
        if args.carry_weight and not hasattr(model, "carry_probe"):
            model.add_carry_probe()
        optimizer = new_optimizer(model, args)
        if RANK == 0:
            run.mkdir(parents=True, exist_ok=True)
            (run / "metrics.jsonl").write_text("")
            (run / "args.json").write_text(json.dumps(vars(args), indent=1))
    forward = torch.compile(model) if args.compile else model            # the training pass; eval uses model
    if WORLD_SIZE > 1:                                                    # gradients averaged over processes
        forward = DistributedDataParallel(forward, device_ids=[device.index] if device.type == "cuda" else None)
    batches_per_epoch = math.ceil(n_train / args.batch_size)              # T
    cot_length = int((val_split.seps[:, 1] - val_split.seps[:, 0] - 1).max())
    longest_train_cot = int((train_split.seps[:n_train, 1] - train_split.seps[:n_train, 0] - 1).max())
    gate = gate_config(args, batches_per_epoch)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=args.dtype == "bfloat16")
    if RANK == 0:
        print(f"{args.task}: {n_train} examples, T={batches_per_epoch} batches/epoch, CoT {cot_length} tokens, model "
              f"{model.num_params() / 1e6:.2f}M parameters on {device} x {WORLD_SIZE} ({args.dtype}), "
              f"{args.schedule} schedule", flush=True)
    started, first_step = time.time(), state["step"]
    window_start, window_tokens = started, 0
    for epoch in range(state["epoch"], args.epochs):
        state["epoch"] = epoch
        rng = np.random.default_rng([args.seed, epoch])                   # data order and offsets of this epoch
        order = rng.permutation(n_train)
        first_batch, state["next_batch"] = state["next_batch"], 0
        if first_batch:                                                   # resumed from a step checkpoint
            rng.bit_generator.state = state["epoch_rng"]
        model.train()
        for i in range(first_batch, batches_per_epoch):
            ids = order[i * args.batch_size:(i + 1) * args.batch_size]
            previous = state["count"]
            if args.mode == "stepwise" and epoch >= args.pretrain_epochs:
                if args.schedule == "linear":
                    state["count"] = scheduled_count(state["batch"], batches_per_epoch, args.delta,
                                                     args.remove_start_from, args.remove_all_beyond)
                elif state["batch_exact_match"] is not None:              # the gate judges the previous batch
                    optimizer, rollback_point = follow_gate(state, gate, model, optimizer, rollback_point, args,
                                                            run, longest_train_cot)
                state["batch"] += 1
            if state["count"] > previous and previous < cot_length and args.probe_examples and RANK == 0:  # Fig. 3
                accuracy = teacher_forced_accuracy(model, val_split, previous, args.removal_side,
                                                   args.keep_position, args.probe_examples, device=device)
                log(run, {"event": "probe", "step": state["batch"] - 1, "cot_removed": int(min(previous, cot_length)),
                          "probe_acc": accuracy})
            if should_reset(state["count"], previous, state["all_removed_previous"], not args.no_reset_optimizer):
                optimizer.zero_grad(set_to_none=True)                     # reference: a partial window is dropped
                optimizer = new_optimizer(model, args)
                state["since_reset"], state["accumulated"] = 0, 0
                log(run, {"event": "optimizer_reset", "step": state["batch"] - 1, "scheduled_to_remove": state["count"]})
            tokens, lengths, seps = train_split.batch(ids)
            tokens, labels, positions, _, _, reaches_end = remove_cot(
                tokens, lengths, seps, removal_counts(args, state, epoch, len(ids), rng),
                args.removal_side, args.keep_position)
            # Reference: its removal code runs only when s > 0 or smoothing is on; then "all CoT removed in this
            # batch" means every removed span reaches the second separator, and "best" restarts if not.
            removal_ran = args.mode == "nocot" or (args.mode == "stepwise" and (
                state["count"] > 0 or math.isfinite(args.smoothing_lambda)))
            state["all_removed_previous"] = removal_ran and bool(reaches_end.all())
            if removal_ran and not reaches_end.all():
                state["best_val"] = -math.inf
            if 0 < args.max_len_train < tokens.shape[1]:
                continue
            window_tokens += tokens.size
            # Every process built the whole global batch (same order, same offsets); each trains on its rows.
            mine = np.array_split(np.arange(len(ids)), WORLD_SIZE)[RANK]
            share = float((labels[mine, 1:] != IGNORE).sum() / (labels[:, 1:] != IGNORE).sum())
            carries, carry_share = None, 0.0                              # the carry probe's targets
            steer = args.mode == "nocot" or state["count"] > 0            # it watches until CoT is removed
            if args.carry_weight:
                values = data.carry_targets(tokens, data.parse_task(args.task))
                carry_share = float((~np.isnan(values[mine])).sum() / (~np.isnan(values)).sum())
                carries = to_device(values[mine], device)
            tokens, labels = to_device(tokens[mine], device), to_device(labels[mine], device)
            positions = None if positions is None else to_device(positions[mine], device)
            with autocast:
                logits, loss, *probe_loss = forward(tokens, labels, positions, carries=carries, steer=steer)
            batch_loss = global_sum(loss.detach() * share)               # the global batch's mean loss
            if not torch.isfinite(batch_loss):                            # nothing is saved from here on
                raise TrainingError(f"step {state['step']} (epoch {epoch}): the loss is {batch_loss.item()}; "
                                    f"stopped, {run / 'ckpt.pt'} holds the last good checkpoint")
            total = loss * share * WORLD_SIZE                             # DDP averages the processes' gradients
            if probe_loss:
                total = total + args.carry_weight * probe_loss[0] * carry_share * WORLD_SIZE
            (total / args.accumulate).backward()
            state["accumulated"] += 1                                     # batches trained on, skipped ones not
            if state["accumulated"] == args.accumulate:
                state["accumulated"] = 0
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(args, state, batches_per_epoch)
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                state["since_reset"] += 1
            if args.schedule == "adaptive":                               # the gate's measure of recovery
                right = global_sum(all_labels_right(model, logits.detach(), labels).sum())
                state["batch_exact_match"] = right.item() / len(ids)
            state["step"] += 1
            due = args.save_every and state["step"] - state["saved_at"] >= args.save_every
            if due and not state["accumulated"] and i < batches_per_epoch - 1:     # a step checkpoint
                state.update(next_batch=i + 1, epoch_rng=rng.bit_generator.state, saved_at=state["step"])
                save(run / "ckpt.pt", model, optimizer, state, args, meta, removal_level(args, state), rollback_point)
                state["next_batch"] = 0
            if state["step"] % args.log_every == 0:
                targets = labels[:, 1:][labels[:, 1:] != IGNORE]
                right = global_sum(torch.stack([(model.to_id(logits.argmax(-1)) == targets).sum(),
                                                torch.tensor(len(targets), device=device)]))
                token_acc = (right[0] / right[1]).item()
                elapsed = time.time() - started
                total_steps = args.epochs * batches_per_epoch
                eta = elapsed / (state["step"] - first_step) * (total_steps - state["step"])
                record = {"step": state["step"], "epoch": epoch,
                          "scheduled_to_remove": scheduled(removal_level(args, state)),
                          "loss": round(batch_loss.item(), 4), "token_acc": round(token_acc, 4),
                          "tokens_per_s": round(window_tokens / (time.time() - window_start)),
                          "minutes": round(elapsed / 60, 2)}
                if probe_loss:                                            # this process's rows: model.probe_targets
                    record["carry_mse"] = round(probe_loss[0].item(), 4)
                log(run, record, f"step {state['step']} epoch {epoch} removed {record['scheduled_to_remove']} "
                                 f"loss {record['loss']:.4f} token_acc {token_acc:.3f} "
                                 + (f"carry_mse {record['carry_mse']:.3f} " if probe_loss else "") +
                                 f"{record['tokens_per_s']} tok/s ETA {eta / 60:.1f} min")
                window_start, window_tokens = time.time(), 0
        if RANK == 0:                                                     # the others wait for its validation
            end_of_epoch(model, optimizer, state, args, meta, {"val": val_split, **reported}, cot_length, run,
                         started, device, rollback_point)
        if WORLD_SIZE > 1:
            dist.barrier()


def removal_level(args, state):
    """CoT tokens removed at evaluation (offsets off): s(t) in stepwise mode, none or all in the baselines."""
    return state["count"] if args.mode == "stepwise" else 0 if args.mode == "explicit" else math.inf


def scheduled(count):
    return "all" if math.isinf(count) else int(count)


def end_of_epoch(model, optimizer, state, args, meta, splits, cot_length, run, started, device, rollback_point):
    """Validation exact match at the current removal level (offsets off), and of the task's reported splits
    (two-hop: test_id, test_ood; answer only and the whole target); checkpoint, best checkpoint."""
    level = (removal_level(args, state), args.removal_side, args.keep_position)
    result = evaluate(model, splits["val"], *level, batch_size=250, limit=args.val_limit, device=device)
    speed = measure_speed(model, splits["val"], *level, device)
    record = {"epoch": state["epoch"], "step": state["step"], "scheduled_to_remove": scheduled(level[0]),
              "cot_removed": int(min(level[0], cot_length)), "val_acc": result["accuracy"],
              "val_examples_per_s": round(speed, 2), "tokens_per_example": result["tokens_per_example"],
              "minutes": round((time.time() - started) / 60, 2)}
    reported = [name for name in splits if name != "val"]
    for name in reported:
        other = evaluate(model, splits[name], *level, batch_size=250, limit=args.val_limit, device=device)
        record.update({f"{name}_acc": other["accuracy"], f"{name}_target_acc": other["target_accuracy"]})
    others = "".join(f", {name} {record[f'{name}_acc']:.3f}" for name in reported)
    log(run, record, f"epoch {state['epoch']}: val exact match {result['accuracy']:.3f}{others} with "
                     f"{record['cot_removed']}/{cot_length} CoT tokens removed, {speed:.1f} examples/s")
    if result["accuracy"] > state["best_val"]:
        state["best_val"] = result["accuracy"]
        save(run / "best.pt", model, optimizer, state, args, meta, level[0])
    save(run / "ckpt.pt", model, optimizer, state, args, meta, level[0], rollback_point)


def main(argv=None):
    args = parse_args(argv)
    try:
        train(args)
    except (data.DataError, CheckpointError, TrainingError, OSError) as e:
        sys.exit(f"train.py: error: {e}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
