"""
Evaluate Stepwise Internalization checkpoints: exact-match accuracy and batch-1 speed (the paper's Table 2),
and draw the paper's figures from training runs.

    python eval.py --ckpt runs/mult4x4/best.pt                         # test split, batch size 1
    python eval.py --ckpt runs/explicit/best.pt runs/si/best.pt --limit 200   # Table 2 style
    python eval.py --ckpt state_dict_folder --task mult4x4 --text valid.txt   # the paper's released models
    python eval.py --ckpt folder_11x11 --task mult11x11 --text test_bigbench.txt --n-remove 320   # partly
    python eval.py --plot runs/si runs/no-smoothing --out fig3.png       # Fig. 3 and Fig. 2a
    python eval.py --ckpt runs/twohop-cot/best.pt --split test_ood        # any split of the task by name
    python eval.py --ckpt runs/twohop-cot/best.pt runs/twohop-nocot/best.pt --lens --out lens.png   # lens
    python eval.py --curves runs/twohop-cot runs/twohop-nocot --out curves.png   # two-hop accuracy vs steps
    python eval.py --ablation "preset=runs/preset-seed*" "no CoT=runs/nocot-seed*" --out ablation.png  # seeds
"""
import argparse
import glob
import json
import math
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

import data
from model import GPT, GPTConfig, CheckpointError, load_plain
from schedule import IGNORE, remove_cot


class Level(NamedTuple):
    """How much CoT a model is evaluated with: n_remove tokens removed (inf: all), from which side, and
    whether the tokens after them keep their positions (what the checkpoint was trained with)."""
    n_remove: float
    side: str = "left"
    keep_position: bool = False


def exact_match(predicted_texts, reference_texts):
    """Per example: does the predicted answer equal the reference answer?"""
    answer = data.extract_answer
    return np.array([answer(p) == answer(r) for p, r in zip(predicted_texts, reference_texts)])


def digit_accuracy(predicted_texts, reference_texts):
    """Per position of the reference answer's words (multiplication: its digits, least significant first):
    the share of examples whose predicted answer has the right word there. Shows which digit a model fails
    on (at the no-CoT plateau: the middle ones)."""
    def words(text):                                  # the answer after '####'; none without it
        answer = data.extract_answer(text)
        return answer.split()[1:] if answer.startswith("####") else []
    pairs = [(words(p), words(r)) for p, r in zip(predicted_texts, reference_texts)]
    width = max(1, max(len(r) for _, r in pairs))
    right, counted = np.zeros(width), np.zeros(width)
    for predicted, reference in pairs:
        counted[:len(reference)] += 1
        right[:len(reference)] += [i < len(predicted) and predicted[i] == word
                                   for i, word in enumerate(reference)]
    return (right / np.maximum(counted, 1)).round(4).tolist()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def missing_device(name):
    """Why torch cannot run on device `name` here (a CPU-only build, no such GPU), or None where it can."""
    kind, _, index = name.partition(":")
    if kind == "cuda" and not torch.cuda.is_available():
        return "this torch sees no CUDA GPU (torch.cuda.is_available() is False)"
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        return f"this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0"
    if kind == "mps" and not torch.backends.mps.is_available():
        return "this torch has no MPS device (torch.backends.mps.is_available() is False)"
    return None


def removed(split, example_ids, level):
    """The examples as the model sees them at this level: CoT removed by the one shared function."""
    return remove_cot(split.batch(example_ids), np.full(len(example_ids), level.n_remove), level.side,
                      level.keep_position)


def prompts_and_targets(split, example_ids, level):
    """Apply the checkpoint's removal level, then cut each row after its first separator: the prompt; the rest
    is the reference continuation."""
    tokens, _, positions, lengths, seps, _ = removed(split, example_ids, level)
    prompt_length = seps[0, 0] + 1
    targets = [row[prompt_length:length] for row, length in zip(tokens, lengths)]
    positions = None if positions is None else positions[:, :prompt_length]
    return tokens[:, :prompt_length], positions, targets


@torch.no_grad()
def evaluate(model, split, level, batch_size=1, limit=None, progress_every=0):
    """Greedy-decode every example from its input (plus whatever CoT the removal level leaves to generate), on
    the model's device, and score the answer. Returns accuracy (the answer after '####'), target_accuracy (the
    whole continuation: CoT left to generate and answer), generated tokens per example, and examples/s where
    only the generation is timed (device synchronized around it): the median over batches, so that a burst of
    load from elsewhere on a shared machine does not decide the figure."""
    device = next(model.parameters(), torch.empty(0)).device
    model.eval()
    enc = data.tokenizer()
    n = len(split) if limit is None else min(limit, len(split))
    prompt_lengths = split.seps[:n, 0] - split.starts[:n] + 1
    longest_target = int((split.seps[:n, 2] - split.seps[:n, 0]).max())
    batches = [ids[i:i + batch_size] for length in np.unique(prompt_lengths)      # equal-length prompts
               for ids in [np.flatnonzero(prompt_lengths == length)] for i in range(0, len(ids), batch_size)]
    correct, whole, generated, seconds, done, rates, texts = 0, 0, 0, 0.0, 0, [], ([], [])
    for number, ids in enumerate(batches):
        prompts, positions, targets = prompts_and_targets(split, ids, level)
        model.check_inputs(prompts, positions)
        prompts = torch.from_numpy(prompts).to(device)
        positions = None if positions is None else torch.from_numpy(positions).to(device)
        sync(device)
        started = time.perf_counter()
        out = model.generate(prompts, longest_target + 8, temperature=0, position_ids=positions,
                             stop_after_separators=2).cpu().numpy()[:, prompts.shape[1]:]
        sync(device)
        elapsed = time.perf_counter() - started
        seconds += elapsed
        rates.append(len(ids) / elapsed)
        second = np.cumsum(out == data.EOT, axis=1) >= 2
        stops = np.where(second.any(axis=1), second.argmax(axis=1) + 1, out.shape[1])   # to the 2nd separator
        generated += int(stops.sum())
        predicted = [enc.decode([t for t in row if t != data.EOT]) for row in out]
        reference = [enc.decode([t for t in row if t != data.EOT]) for row in targets]
        correct += int(exact_match(predicted, reference).sum())
        texts[0].extend(predicted)
        texts[1].extend(reference)
        width = max(out.shape[1], max(len(t) for t in targets))      # generation pads finished rows with EOT
        produced, gold = np.full((2, len(ids), width), data.EOT)
        produced[:, :out.shape[1]] = out
        for row, target in zip(gold, targets):
            row[:len(target)] = target
        whole += int((produced == gold).all(axis=1).sum())
        done += len(ids)
        if progress_every and (number + 1) % progress_every == 0:
            eta = seconds / done * (n - done)
            print(f"  {done}/{n} examples, accuracy so far {correct / done:.3f}, ETA {eta:.0f}s", flush=True)
    return {"accuracy": correct / n, "target_accuracy": whole / n, "digit_accuracy": digit_accuracy(*texts),
            "examples": n, "tokens_per_example": generated / n, "examples_per_s": float(np.median(rates))}


def targets_right(model, logits, targets, label_rows=None):
    """Per position of a teacher-forced batch: is the argmax at t its target, the gold token t+1? (B, L), True
    where there is none. logits: (B, L, vocab) as model(tokens) returns them, or (M, vocab) at label_rows, the
    flat indices of the labelled positions (train.py's forward). No mask by value: no GPU sync."""
    if label_rows is None:
        return (model.to_id(logits.argmax(-1)) == targets) | (targets == IGNORE)
    right = torch.ones(targets.numel(), dtype=torch.bool, device=targets.device)
    right[label_rows] = model.to_id(logits.argmax(-1)) == targets.flatten()[label_rows]
    return right.view_as(targets)


@torch.no_grad()
def teacher_forced_accuracy(model, split, level, limit=256, batch_size=256, rows_at_once=1024):
    """Cheap validation exact match at a removal level: one teacher-forced pass over the first `limit`
    examples, no generation (what the training run logs at every removed token, Fig. 3's points). A row whose
    argmax is right at every labelled position is exactly a row greedy decoding gets right, so no generation
    is needed (stricter than the answer-only rule while CoT tokens are left: those must be right too). The
    head runs only at the labelled positions, `rows_at_once` at a time: full-vocabulary logits at every
    position of a batch of 256 would take tens of GB on a GPU."""
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    n = min(limit, len(split))
    right = 0
    for first in range(0, n, batch_size):
        tokens, targets, positions, *_ = removed(split, np.arange(first, min(first + batch_size, n)), level)
        model.check_inputs(tokens, positions)
        x = model.embed(torch.from_numpy(tokens).to(device),
                        None if positions is None else torch.from_numpy(positions).to(device))
        for block in model.transformer.h:
            x = block(x)
        x = model.transformer.ln_f(x).flatten(0, 1)                 # position t predicts targets[t]
        rows = np.flatnonzero(targets != IGNORE)
        predicted = torch.cat([model.lm_head(x.index_select(0, chunk)).argmax(-1)
                               for chunk in torch.from_numpy(rows).to(device).split(rows_at_once)])
        is_right = np.ones(targets.shape, bool)
        is_right.reshape(-1)[rows] = model.to_id(predicted).cpu().numpy() == targets.reshape(-1)[rows]
        right += int(is_right.all(axis=1).sum())
    model.train(was_training)
    return right / n


@torch.no_grad()
def bridge_lens(model, split, entity_ids, limit=None, batch_size=512, device="cpu"):
    """Logit lens on two-hop facts (Yao et al. 2025): per layer (0 = the embedding), the share of
    examples whose bridge entity is the top-1 entity read from the residual stream at the last input token
    (r2) and at the separator after the input (the position that predicts the bridge when there is CoT)."""
    n = len(split) if limit is None else min(limit, len(split))
    prompt_lengths = split.seps[:n, 0] - split.starts[:n] + 1
    if len(np.unique(prompt_lengths)) != 1 or not (split.seps[:n, 1] - split.seps[:n, 0] == 3).all():
        raise data.DataError("--lens needs two-hop facts: equal-length inputs, the bridge entity as the CoT")
    length = int(prompt_lengths[0])
    positions = {"last_input": length - 3, "separator": length - 1}  # ' h r1 r2 ' <eos>: r2, ' ', <eos>
    entity_rows = model.to_index(torch.tensor(entity_ids, device=device))
    hits = {name: 0 for name in positions}
    for first in range(0, n, batch_size):
        tokens, _, _ = split.batch(np.arange(first, min(first + batch_size, n)))
        bridge = torch.from_numpy(tokens[:, length]).to(device)
        stream = model.residual_stream(torch.from_numpy(tokens[:, :length]).to(device))
        for name, position in positions.items():
            logits = model.lm_head(model.transformer.ln_f(stream[:, :, position]))[..., entity_rows]
            hits[name] += (model.to_id(entity_rows[logits.argmax(-1)]) == bridge).sum(dim=1)
    return {name: (count / n).tolist() for name, count in hits.items()}


def validate(model, task, level, limit=None):
    """What train.py logs at an epoch's end: validation exact match at this level, the CoT it removes, batch-1
    speed, and the exact match of the task's reported splits (two-hop: test_id, test_ood; answer and
    whole)."""
    result = evaluate(model, task.val, level, batch_size=250, limit=limit)
    record = {"cot_removed": int(min(level.n_remove, task.longest_val_cot)), "val_acc": result["accuracy"],
              "val_examples_per_s": round(measure_speed(model, task.val, level), 2),
              "tokens_per_example": result["tokens_per_example"]}
    for name, split in task.reported.items():
        other = evaluate(model, split, level, batch_size=250, limit=limit)
        record.update({f"{name}_acc": other["accuracy"], f"{name}_target_acc": other["target_accuracy"]})
    return record


def measure_speed(model, split, level, examples=20, warmup=3):
    """Batch-1 examples per second after a warm-up, as in the paper's speed column."""
    evaluate(model, split, level, 1, warmup)
    return evaluate(model, split, level, 1, examples)["examples_per_s"]


# ----------------------------------------------------------------------------- checkpoints

def read_checkpoint(path):
    """A train.py checkpoint (.pt): the model and the whole checkpoint dict (what --resume also needs). Its
    config is checked against its tensors before a model is built (no allocation a file can inflate). Settings
    and tensors of additions that older versions kept inside the model (its probes) are not the GPT's: left
    out."""
    ckpt = load_plain(path, "train.py checkpoint")
    needed = ("model_config", "model", "task", "n_remove", "removal_side", "keep_position", "args")
    missing = [key for key in needed if not isinstance(ckpt, dict) or key not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a train.py checkpoint (no {', '.join(missing)})")
    names, tensors = {f.name for f in fields(GPTConfig)}, ckpt["model"]
    try:                                                          # a config alone allocates nothing
        config = GPTConfig(**{k: v for k, v in ckpt["model_config"].items() if k in names})
        sizes = [getattr(config, k) for k in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd")]
        assert all(type(v) is int and v > 0 for v in sizes) and config.n_embd % config.n_head == 0
    except (TypeError, ValueError, AssertionError):
        raise CheckpointError(f"{path}: model_config needs whole numbers block_size, vocab_size, n_layer, "
                              f"n_head, n_embd > 0, n_embd a multiple of n_head; it has "
                              f"{ckpt['model_config']}") from None
    shapes = {"transformer.wpe.weight": (config.block_size, config.n_embd),
              "lm_head.weight": (config.n_embd, config.vocab_size)}
    for name, shape in shapes.items():
        if not isinstance(tensors.get(name), torch.Tensor) or tuple(tensors[name].shape) != shape:
            raise CheckpointError(f"{path}: tensor {name} is missing or not {shape}, as model_config says")
    blocks = {name.split(".")[2] for name in tensors if name.startswith("transformer.h.")}
    if len(blocks) != config.n_layer:
        raise CheckpointError(f"{path}: {len(blocks)} blocks of tensors, model_config says n_layer "
                              f"{config.n_layer}")
    model = GPT(config)
    own = model.state_dict()                                      # strict: a missing tensor is an error
    try:
        model.load_state_dict({k: v for k, v in tensors.items() if k in own})
    except RuntimeError as e:
        reason = " ".join(line.strip() for line in str(e).strip().splitlines()[:2])[:300]
        raise CheckpointError(f"{path}: not a train.py checkpoint ({reason})") from None
    return model, ckpt


def load_checkpoint(path, device="cpu"):
    """A train.py checkpoint (.pt) or a GPT-2 folder / the paper's released state_dict.bin folder.
    Returns the model and what evaluation needs to know about it (task, removal level)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.suffix == ".pt":
        model, ckpt = read_checkpoint(path)
        info = {k: ckpt[k] for k in ("task", "n_remove", "removal_side", "keep_position")}
        info["data"] = ckpt["args"].get("data", "data")                  # the data root it was trained on
    else:
        model = GPT.from_pretrained(path)
        info = {"task": None, "n_remove": math.inf, "removal_side": "left", "keep_position": False,
                "data": "data"}
    return model.to(device).eval(), info


def task_folder(args, info):
    """The data folder of the checkpoint's task, and its meta.json."""
    task = args.task or info["task"]
    if args.task and info["task"] and args.task != info["task"]:
        raise data.DataError(f"the checkpoint was trained on {info['task']}, not on {args.task}")
    if task is None:
        raise data.DataError("this checkpoint does not name its task: pass --task, or --text FILE")
    folder = Path(args.data or info["data"]) / task
    meta = data.load_meta(folder)
    if meta["task"] != task:
        raise data.DataError(f"{folder}: holds {meta['task']}, the checkpoint was trained on {task}")
    return folder, meta


def eval_split(args, info, name):
    """The split to evaluate: a reference-format text file, or the task's split of that name."""
    if args.text:
        return data.read_text_split(args.text)
    folder, meta = task_folder(args, info)
    if name not in meta["splits"]:
        raise data.DataError(f"{folder}: no split {name!r}; it has {', '.join(meta['splits'])}")
    return data.load_split(folder, name, meta)


def table(rows):
    """Paper's Table 2: accuracy, and batch-1 speed normalized to the fastest model."""
    fastest = max(r["examples_per_s"] for r in rows)
    print(f"{'checkpoint':40s} {'split':>10s} {'removed':>8s} {'accuracy':>9s} {'target':>7s} {'ex/s':>8s} "
          f"{'speed':>6s} {'tokens/ex':>10s}")
    for r in rows:
        print(f"{r['checkpoint'][-40:]:40s} {r['split'][-10:]:>10s} {str(r['n_remove']):>8s} "
              f"{r['accuracy']:9.3f} {r['target_accuracy']:7.3f} {r['examples_per_s']:8.2f} "
              f"{r['examples_per_s'] / fastest:5.2f}x {r['tokens_per_example']:10.1f}")
    for r in rows:
        words = " ".join(f"{a:.3f}" for a in r["digit_accuracy"])
        print(f"{r['checkpoint'][-40:]:40s} per answer word: {words}")


# ----------------------------------------------------------------------------- figures

def read_metrics(run):
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        raise data.DataError(f"{path}: missing (is {run} a train.py run folder?)")
    text, records = path.read_text(), []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines) and not text.endswith("\n"):   # a last record cut off by a kill
                break
            raise data.DataError(f"{path}:{number}: not a JSON record ({e})") from None
    return records


def pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("eval.py: error: plotting needs matplotlib: pip install matplotlib")
    return plt


def run_label(run):
    """A run folder's name in a legend: results/TASK/STUDY/ROW/seedNN -> "ROW seedNN"."""
    run = Path(run)
    return f"{run.parent.name} {run.name}" if run.name.startswith("seed") else run.name


def plot(runs, out):
    """Fig. 3 (validation accuracy against CoT tokens removed, one line per run) and Fig. 2a (accuracy
    against batch-1 speed over a run's epochs) from the runs' metrics.jsonl."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        metrics = read_metrics(run)
        evals = [m for m in metrics if "val_acc" in m]
        per_token = [m for m in metrics if m.get("event") == "fig3_point"]   # a point per token, if logged
        points = [(m["cot_removed"], m["val_acc"]) for m in evals]
        if per_token:                                                  # then the final epoch's point
            points = [(m["cot_removed"], m["teacher_forced_acc"]) for m in per_token] + points[-1:]
        left.plot(*zip(*points), marker="o", markersize=3, label=run_label(run))
        right.plot([m["val_examples_per_s"] for m in evals], [m["val_acc"] for m in evals], marker="o",
                   label=run_label(run))
    left.set(xlabel="CoT tokens removed (scheduled, capped at the CoT length)", ylabel="validation accuracy",
             title="Fig. 3: accuracy during removal")   # per token: teacher-forced; last: the last epoch
    right.set(xlabel="examples/s at batch size 1", ylabel="validation accuracy", xscale="log",
              title="Fig. 2a: speed vs accuracy over epochs")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    return fig


def curves(runs, out):
    """Two-hop runs: test_id and test_ood exact match against batches trained (one line per run), and a
    table of each run's last epoch."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    print(f"{'run':28s} {'batches':>7s} {'test_id':>8s} {'test_ood':>9s} {'atomic_ood':>11s} "
          f"{'first batch test_ood >= 0.5':>28s}")
    for run in runs:
        evals = [m for m in read_metrics(run) if "test_ood_acc" in m]
        if not evals:
            raise data.DataError(f"{run}: no test_ood_acc in metrics.jsonl (not a two-hop run)")
        steps = [m["step"] for m in evals]
        for ax, key in zip(axes, ("test_id_acc", "test_ood_acc", "atomic_ood_acc")):
            ax.plot(steps, [m[key] for m in evals], label=run_label(run))
        last = evals[-1]
        half = next((m["step"] for m in evals if m["test_ood_acc"] >= 0.5), None)
        print(f"{run_label(run):28s} {last['step']:7d} {last['test_id_acc']:8.3f} "
              f"{last['test_ood_acc']:9.3f} {last['atomic_ood_acc']:11.3f} {str(half or '-'):>28s}")
    titles = ("test_id (both hops ID)", "test_ood (both hops OOD)", "atomic_ood (OOD facts alone)")
    for ax, title in zip(axes, titles):
        ax.set(xlabel="batches trained (optimizer steps x --accumulate)", title=title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("exact match (answer)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    return fig


def ablation_rows(rows):
    """--ablation's LABEL=GLOB[,GLOB] rows as (label, run folders), every one checked before any is drawn."""
    parsed = []
    for row in rows:
        label, _, pattern = row.partition("=")
        runs = [Path(run) for part in pattern.split(",") if part for run in sorted(glob.glob(part))]
        if not label or not runs:
            raise data.DataError(f"--ablation {row!r}: expected LABEL=GLOB[,GLOB] matching run folders")
        parsed.append((label, runs))
    return parsed


def ablation(rows, out):
    """An ablation over seeds, one row per recipe ("LABEL=GLOB": the run folders of its seeds, each with
    metrics.jsonl, args.json and test.json; GLOB may be several, comma-separated): Fig. 3 with a line per row
    (the mean over seeds of the validation accuracy at each removed token, a band from min to max) and each
    row's test exact match per seed (dots; a bar at the mean), and the same as a markdown table."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    rows = ablation_rows(rows)
    print("| row | runs | test exact match: mean (min–max) | per seed (seed: test) | ≥ 0.99 |\n"
          "|---|---|---|---|---|")
    for number, (label, runs) in enumerate(rows):
        tests, seeds = [], []
        for run in runs:
            if not (run / "test.json").exists():
                raise data.DataError(f"{run / 'test.json'}: missing (python eval.py --ckpt RUN/best.pt "
                                     f"--json ...)")
            tests.append(json.loads((run / "test.json").read_text())[0]["accuracy"])
            seeds.append(json.loads((run / "args.json").read_text()).get("seed", "?"))
        order = np.argsort(seeds, kind="stable") if "?" not in seeds else np.arange(len(runs))
        runs, tests, seeds = [runs[i] for i in order], [tests[i] for i in order], [seeds[i] for i in order]
        by_token = {}
        for run in runs:
            metrics = read_metrics(run)
            per_epoch = [(m["cot_removed"], m["val_acc"]) for m in metrics if "val_acc" in m]
            per_token = [(m["cot_removed"], m["teacher_forced_acc"]) for m in metrics
                         if m.get("event") == "fig3_point"]
            points = per_token + per_epoch[-1:] if per_token else per_epoch   # as plot(): then the last epoch
            for removed, accuracy in dict(points).items():            # the last point at each count
                by_token.setdefault(removed, []).append(accuracy)
        x = sorted(by_token)
        mean = [float(np.mean(by_token[t])) for t in x]
        color = f"C{number}" if len(rows) <= 10 else plt.get_cmap("tab20")(2 * number % 20 + 2 * number // 20)
        left.plot(x, mean, marker="o", markersize=3, color=color, label=f"{label} ({len(runs)})")
        left.fill_between(x, [min(by_token[t]) for t in x], [max(by_token[t]) for t in x], color=color,
                          alpha=0.12)
        right.scatter([number] * len(tests), tests, s=14, color=color, zorder=3)
        right.bar(number, np.mean(tests), color=color, alpha=0.3)
        per_seed = ", ".join(f"{seed}: {t:.3f}" for seed, t in zip(seeds, tests))
        print(f"| {label} | {len(runs)} | {np.mean(tests):.3f} ({min(tests):.3f}–{max(tests):.3f}) | "
              f"{per_seed} | {sum(t >= 0.99 for t in tests)} of {len(tests)} |")
    left.set(xlabel="CoT tokens removed", ylabel="validation exact match",
             title="Fig. 3 per row: mean over seeds, band min–max")
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    right.set(ylabel="test exact match", title="final test exact match (dots: seeds)", ylim=(-0.02, 1.02))
    right.set_xticks(range(len(rows)), [label for label, _ in rows], rotation=30, ha="right",
                     fontsize=7)
    right.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    return fig


def lens_table(rows):
    """Per checkpoint and split: the bridge's top-1 rate by layer, at the last input token / the separator."""
    for r in rows:
        print(f"{r['checkpoint']} on {r['split']} ({r['examples']} facts): "
              "bridge top-1 among entities by layer")
        print("  layer " + " ".join(f"{layer:>5d}" for layer in range(len(r["last_input"]))))
        for position in ("last_input", "separator"):
            print(f"  {position:10s}" + " ".join(f"{v:5.2f}" for v in r[position]))


def plot_lens(rows, out):
    """A panel per split; a colour per checkpoint, dashed at the last input token, solid at the separator."""
    plt = pyplot()
    splits = list(dict.fromkeys(r["split"] for r in rows))
    checkpoints = list(dict.fromkeys(r["checkpoint"] for r in rows))
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4), sharey=True, squeeze=False)
    for ax, split in zip(axes[0], splits):
        for r in (r for r in rows if r["split"] == split):
            color = f"C{checkpoints.index(r['checkpoint']) % 10}"
            for position, style in (("last_input", "--"), ("separator", "-")):
                ax.plot(r[position], style, color=color, marker="o", markersize=3,
                        label=f"{Path(r['checkpoint']).parent.name} {position}")
        ax.set(xlabel="layer (0 = embedding)", title=f"logit lens on {split}: the bridge entity",
               xticks=range(len(rows[0]["separator"])))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("bridge top-1 among entities")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    return fig


def parse_n_remove(text):
    """--n-remove: a count of CoT tokens >= 0, or 'all'."""
    if text == "all":
        return math.inf
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 or 'all', got {text!r}")
    return float(text)


def lens(args):
    rows = []
    for path in args.ckpt:
        model, info = load_checkpoint(path, args.device)
        folder, meta = task_folder(args, info)
        if "entity_ids" not in meta:
            raise data.DataError(f"{folder}: --lens needs a two-hop task (python data.py --task twohop)")
        for name in ("test_id", "test_ood"):
            split = data.load_split(folder, name)
            result = bridge_lens(model, split, meta["entity_ids"], args.limit, device=args.device)
            rows.append({"checkpoint": str(path), "split": name,
                         "examples": min(len(split), args.limit or len(split)), **result})
    lens_table(rows)
    if args.json:
        data.write_atomic(Path(args.json), lambda f: f.write(json.dumps(rows, indent=1).encode()))
    if args.out:
        plot_lens(rows, args.out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", nargs="+", help="train.py .pt files, or GPT-2 / state_dict.bin folders")
    parser.add_argument("--split", default="test",
                        help="a split of the task by name (two-hop: test_id, test_ood, ...)")
    parser.add_argument("--text", help="evaluate on a reference-format text file instead")
    parser.add_argument("--task", help="the task (needed for checkpoints that do not name one)")
    parser.add_argument("--data", help="data root (default: the checkpoint's own, else data/)")
    parser.add_argument("--n-remove", type=parse_n_remove,
                        help="CoT tokens removed from the prompt side: a number or 'all' (default: the level "
                             "a train.py checkpoint was saved at; 'all' for GPT-2 / state_dict.bin folders; "
                             "e.g. 320 for the paper's partly internalized 11x11 model)")
    parser.add_argument("--limit", type=data.POSITIVE, help="only the first N examples")
    parser.add_argument("--batch-size", type=data.POSITIVE, default=1)
    parser.add_argument("--warmup", type=data.COUNT, default=3, help="untimed examples first")
    parser.add_argument("--device", type=data.DEVICE, default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--plot", nargs="+", help="draw Fig. 3 and Fig. 2a from these run folders")
    parser.add_argument("--curves", nargs="+", help="two-hop runs: test_id / test_ood accuracy against steps")
    parser.add_argument("--ablation", nargs="+", metavar="LABEL=GLOB",
                        help="rows of run folders over seeds: Fig. 3 per row (mean, min-max band) and test "
                             "exact match")
    parser.add_argument("--lens", action="store_true",
                        help="two-hop tasks: the logit lens on test_id and test_ood (a table; a figure with "
                             "--out)")
    parser.add_argument("--out", help="PNG file for --plot (figures.png), --curves, --ablation, --lens")
    args = parser.parse_args(argv)
    if why := missing_device(args.device):
        parser.error(f"--device {args.device}: {why}")
    for flag, path, suffix in (("--out", args.out, ".png"), ("--json", args.json, ".json")):
        if path and (Path(path).suffix.lower() != suffix or Path(path).is_dir() or
                     not Path(path).parent.is_dir()):
            parser.error(f"{flag} {path}: a file to write (NAME{suffix}) in an existing folder")
    try:
        if args.plot:
            return plot(args.plot, args.out or "figures.png")
        if args.curves:
            return curves(args.curves, args.out or "curves.png")
        if args.ablation:
            return ablation(args.ablation, args.out or "ablation.png")
        if not args.ckpt:
            parser.error("give --ckpt, --plot, --curves or --ablation")
        if args.lens:
            return lens(args)
        rows = []
        for path in args.ckpt:
            model, info = load_checkpoint(path, args.device)
            split = eval_split(args, info, args.split)
            n_remove = info["n_remove"] if args.n_remove is None else args.n_remove
            level = Level(n_remove, info["removal_side"], info["keep_position"])
            if args.warmup:
                evaluate(model, split, level, 1, args.warmup)                            # warm-up, untimed
            result = evaluate(model, split, level, args.batch_size, args.limit,
                              progress_every=max(1, 100 // args.batch_size))
            rows.append({"checkpoint": str(path), "split": "text" if args.text else args.split,
                         "n_remove": int(n_remove) if math.isfinite(n_remove) else "all",
                         "device": args.device,
                         "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
                         "batch_size": args.batch_size, **result})
        table(rows)
        if args.json:
            data.write_atomic(Path(args.json), lambda f: f.write(json.dumps(rows, indent=1).encode()))
    except (CheckpointError, data.DataError, ValueError, OSError) as e:
        sys.exit(f"eval.py: error: {e}")


if __name__ == "__main__":
    main()
