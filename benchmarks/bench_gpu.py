"""
The paper's recipe on one GPU, in one command (its length on a GPU not yet measured), through train.py's
own code:

  1. training step: GPT-2 small (random weights), the paper's batch 32, the whole CoT, on 4x4, 7x7 and 9x9
     examples, timed by beyond.plan.time_training_step: train.py's own step (the device setup, --dtype,
     --compile, forward, backward, AdamW): ms/step, tokens/s, peak GPU memory, and MFU: PaLM's 6N + 12 L T d
     FLOPs a token, the head's 6 n_embd vocab counted only at the labelled positions where it runs, against
     the dense peak of the GPU by its exact name (model.peak_flops; TF32 at half the bf16 peak; none for a GPU
     not in the table), for bf16 + compile, fp32 (run as TF32) and bf16 autocast; each at full CoT and at zero
     CoT, and the first step's seconds (compile included);
  2. the hours the paper's schedule takes at those speeds (the step time following s(t) from full CoT to zero
     CoT): to the end of removal, and for the whole --epochs;
  2b. train.py's own loop (data, removal, forward, backward, AdamW, logs) for an epoch of the same examples in
     fp32: batches/s, and the GPU syncs torch reports in it (set_sync_debug_mode("warn"));
  3. batch-1 decoding of as many tokens as zero CoT and as the whole CoT need (Table 2's ratio);
  4. a small model (4 layers x 256) trained 50 steps by train.main on the GPU (fp32 with TF32 off, and bf16)
     and on this machine's CPU, same seed and batches: the largest relative gap between their losses;
  5. with --ref DIR (the reference's src/, which needs transformers 4.x): its own train.py on the same GPU
     and data (its tqdm rate, set against our loop's) and its decoding, as ratios.

Prints a table and writes results/gpu/<gpu name>.json.

    python benchmarks/bench_gpu.py [--ref ../shared/reference-code/src]
    python benchmarks/bench_gpu.py --smoke          # the same code on tiny sizes, on a CPU, in under a minute
"""
import argparse
import atexit
import contextlib
import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import data                                                     # noqa: E402
import train                                                    # noqa: E402
from beyond.plan import time_training_step                        # noqa: E402
from eval import sync                                           # noqa: E402
from model import GPT, GPTConfig, peak_flops                    # noqa: E402

# tasks, GPT-2 shape (layers, heads, width), batch, timed steps, decoded examples, parity shape and steps, and
# the examples of the loop's epoch, ours and the reference's (full: the whole training split, 1,600)
SIZES = {
    "full": dict(tasks=("mult7x7", "mult4x4", "mult9x9"), gpt2=(12, 12, 768), batch=32, steps=20, examples=10,
                 parity=(4, 4, 256), parity_steps=50, loop_examples=1600),
    "smoke": dict(tasks=("mult4x4", "mult5x5"), gpt2=(1, 2, 32), batch=2, steps=1, examples=1,
                  parity=(1, 2, 32),
                  parity_steps=3, loop_examples=16)}
MODES = {"bf16 + compile": ["--dtype", "bfloat16", "--compile"], "fp32 (TF32)": ["--dtype", "float32"],
         "bf16": ["--dtype", "bfloat16"]}                               # in the order of their value
# data.prepare's training split, the reference's size
FULL_TRAIN = 808000
TOKENIZER_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"


def random_gpt2(folder, n_layer, n_head, n_embd):
    """A GPT-2 folder with random weights, as Hugging Face lays it out (config.json, pytorch_model.bin, the
    tokenizer files if tiktoken has them cached): what --init and the reference's --model load, offline."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd))
    tensors = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    tensors["transformer.wte.weight"] = model.lm_head.weight.t().contiguous()
    folder.mkdir(parents=True)
    torch.save(tensors, folder / "pytorch_model.bin")
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 50257,
              "n_positions": 1024, "n_ctx": 1024, "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd,
              "bos_token_id": 50256, "eos_token_id": 50256}
    (folder / "config.json").write_text(json.dumps(config))
    cache = Path(os.environ.get("TIKTOKEN_CACHE_DIR", Path(tempfile.gettempdir()) / "data-gym-cache"))
    for name, file in (("vocab.bpe", "merges.txt"), ("encoder.json", "vocab.json")):
        cached = cache / hashlib.sha1((TOKENIZER_URL + name).encode()).hexdigest()
        if cached.exists():
            (folder / file).write_bytes(cached.read_bytes())
    return folder


def train_args(task, root, gpt2, device, extra=()):
    """train.py's command line for the paper's recipe on this task (--model paper: batch 32, Delta 8, ...)."""
    return train.parse_args(["--task", task, "--data", str(root / "data"), "--init", str(gpt2), "--device",
                             device, "--out", str(root / "unused"), *extra])


def time_modes(task, root, gpt2, device, size, modes=MODES):
    """The training step in each of these precision modes: ms, tokens/s, peak memory, MFU."""
    rows = {}
    for name in modes:
        flags = MODES[name]
        if device == "cpu" and "--compile" in flags:
            raise Skip("a CPU compile takes minutes: GPU only")
        args = train_args(task, root, gpt2, device, [*flags, "--batch-size", str(size["batch"])])
        loaded = data.load_task(args)
        model = train.build_model(args, loaded.meta, loaded.longest_example)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        timed, first = time_training_step(train, args, loaded, model, size["steps"], levels=(0, math.inf))
        (seconds, tokens), (zero_seconds, zero_tokens) = timed[0], timed[math.inf]
        step, zero_step = float(np.median(seconds)), float(np.median(zero_seconds))
        c, length, n = model.config, tokens / args.batch_size, min(args.batch_size, loaded.n_train)
        labelled = int((loaded.train.seps[:n, 2] - loaded.train.seps[:n, 0]).sum())   # where the head runs
        head = c.n_embd * c.vocab_size
        body = model.get_num_params(non_embedding=False) - head
        flops = (6 * body + 12 * c.n_layer * length * c.n_embd) * tokens + 6 * head * labelled
        flops /= step
        gpu = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
        peak = peak_flops(gpu)                                          # bf16 dense; TF32 runs at half that
        peak = peak and peak * (0.5 if args.dtype == "float32" else 1.0)
        rows[name] = {"ms_per_step": round(1000 * step, 2), "tokens_per_s": round(tokens / step),
                      "zero_cot_ms_per_step": round(1000 * zero_step, 2),
                      "zero_cot_tokens_per_s": round(zero_tokens / zero_step),
                      "first_step_s": round(first, 2),                  # compile included, with --compile
                      "tokens_per_step": tokens, "labelled_per_step": labelled,
                      "tflops": round(flops / 1e12, 1), "mfu": round(flops / peak, 3) if peak else None,
                      **({} if peak else {"mfu_note": f"{gpu}: not in model.py's table of GPU names"}),
                      "peak_gib": None if gpu == "cpu" else
                      round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)}
        rows[name].update(plan_hours(args, loaded, step, zero_step))
        del model
        torch._dynamo.reset()
    return rows


def plan_hours(args, loaded, step, zero_step):
    """--plan's steps on the full training split (808,000 examples) at the schedule's own lengths: the
    full-CoT step time through the explicit epochs, then a step time falling linearly with s(t) to the
    zero-CoT one at the end of removal, and that one after it."""
    batches = math.ceil(FULL_TRAIN / args.batch_size)                   # T
    done = args.pretrain_epochs + (loaded.longest_train_cot - args.remove_start_from) / args.delta
    step_time = lambda epoch: np.interp(epoch, [args.pretrain_epochs, done], [step, zero_step])
    hours = lambda epochs: float(np.mean(step_time(np.linspace(0, epochs, 10001)))) * epochs * batches / 3600
    return {"hours_to_end_of_removal": round(hours(done), 1), "removal_ends_at_epoch": round(done, 1),
            "hours_all_epochs": round(hours(args.epochs), 1)}


def loop(task, root, gpt2, device, size):
    """train.py's own loop (train.main: batches, removal, forward, backward, AdamW, logging) for one epoch of
    the bench's examples in fp32 (TF32), as the reference's loop is timed: batches/s between the log lines at
    the epoch's middle and end (warm-up and validation outside), and how many GPU syncs torch reports in
    between (set_sync_debug_mode("warn"): a sync in the loop is a step the GPU waits for the host)."""
    T = math.ceil(size["loop_examples"] / size["batch"])
    real_log, marks, cuda = train.log_batch, [], device.startswith("cuda")

    def timed_log(*a):                                             # a log line reads the device: outside
        if marks and cuda:
            torch.cuda.set_sync_debug_mode(0)
        real_log(*a)
        marks.append(time.perf_counter())
        if len(marks) == 1 and cuda:
            torch.cuda.set_sync_debug_mode("warn")
    train.log_batch = timed_log
    try:
        with warnings.catch_warnings(record=True) as caught, open(os.devnull, "w") as quiet, \
                contextlib.redirect_stdout(quiet):
            warnings.simplefilter("always")
            train.main(["--task", task, "--data", str(root / "data"), "--init", str(gpt2), "--device", device,
                        "--out", str(root / "loop" / task), "--batch-size", str(size["batch"]),
                        "--epochs", "1", "--train-size", str(size["loop_examples"]),
                        "--pretrain-epochs", "0",
                        "--log-every", str(T // 2), "--val-limit", "4", "--fig3-examples", "0"])
    finally:
        train.log_batch = real_log
        if cuda:
            torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    timed = T - T // 2
    return {"batches": T, "timed_batches": timed, "batches_per_s": round(timed / (marks[1] - marks[0]), 3),
            "sync_warnings": len(syncs) if cuda else None,
            **({"first_sync": str(syncs[0].message)[:200]} if syncs else {})}


@torch.no_grad()
def decode(model, split, device, examples):
    """Batch-1 greedy decoding, examples/s, generating as many tokens as an answer at zero CoT needs (second
    separator, answer, end) and as the whole CoT and answer need: random weights emit no separators, so the
    lengths are fixed; a trained model stops there (Table 2)."""
    model.to(device).eval()
    rates = {}
    for level, first in (("zero CoT", 1), ("full CoT", 0)):
        new = int(split.seps[0, 2] - split.seps[0, first])
        prompt_length = split.seps[0, 0] - split.starts[0] + 1
        prompt = torch.from_numpy(split.batch(np.array([0]))[0][:, :prompt_length]).to(device)
        model.generate(prompt, new, temperature=0)      # warm-up
        sync(torch.device(device))
        started = time.perf_counter()
        for _ in range(examples):
            model.generate(prompt, new, temperature=0)
        sync(torch.device(device))
        rates[level] = {"new_tokens": new,
                        "examples_per_s": round(examples / (time.perf_counter() - started), 2)}
    return rates


def parity(root, device, size):
    """train.main on the CPU and on the device with the same seed and batches: the losses of every step."""
    n_layer, n_head, n_embd = size["parity"]
    common = ["--task", "mult4x4", "--data", str(root / "data"), "--model", "tiny", "--n-layer", str(n_layer),
              "--n-head", str(n_head), "--n-embd", str(n_embd), "--batch-size", "32", "--train-size",
              str(32 * size["parity_steps"]), "--epochs", "1", "--log-every", "1", "--val-limit", "4",
              "--fig3-examples", "0"]
    real_setup, losses = train.set_up_device, {}

    def tf32_off(args):                                                # the check of fp32 itself: TF32 off
        chosen = real_setup(args)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        return chosen
    for name, dev, dtype in (("cpu fp32", "cpu", "float32"), ("device fp32", device, "float32"),
                             ("device bf16", device, "bfloat16")):
        out = root / "parity" / name.replace(" ", "-")
        train.set_up_device = tf32_off
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            train.main([*common, "--device", dev, "--dtype", dtype, "--out", str(out)])
        train.set_up_device = real_setup
        losses[name] = [m["loss"] for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                        if "loss" in m]
    gap = lambda a, b: max(abs(x - y) / abs(y) for x, y in zip(losses[a], losses[b]))
    return {"steps": len(losses["cpu fp32"]),
            "max_relative_gap_fp32": round(gap("device fp32", "cpu fp32"), 5),
            "max_relative_gap_bf16": round(gap("device bf16", "cpu fp32"), 5),
            "last_loss": {name: values[-1] for name, values in losses.items()}}


def reference(ref, root, gpt2, task, device, size):
    """The reference's own train.py (one epoch of its loop on the examples our loop gets, fp32 with TF32 and
    --bf16): its tqdm rate of the last training batches; and its batch-1 decoding of the same token counts."""
    folder, ref = root / "data" / task, Path(ref).resolve()
    (root / "ref").mkdir(exist_ok=True)
    for split in ("train", "val"):
        lines = (folder / f"{split}.txt").read_text().splitlines()
        kept = lines[:4] if split == "val" else lines[:size["loop_examples"]]   # the examples our loop gets
        (root / "ref" / f"{split}.txt").write_text("\n".join(kept) + "\n")
    rows = {}
    for name, flags in (("fp32 (TF32)", []), ("bf16 (weights)", ["--bf16"])):
        command = [sys.executable, str(Path(ref) / "train.py"), "--model", str(gpt2), "--train_path",
                   str(root / "ref" / "train.txt"), "--val_path", str(root / "ref" / "val.txt"), "--epochs",
                   "1", "--batch_size", str(size["batch"]), "--remove_per_epoch", "8",
                   "--removal_smoothing_lambda", "4", "--reset_optimizer", "--max_new_tokens", "4",
                   "--save_model", str(root / "ref" / "model"), *flags]
        done = subprocess.run(command, cwd=ref, capture_output=True, text=True, timeout=900)
        if done.returncode:
            raise RuntimeError(f"the reference's train.py failed: {done.stderr.strip().splitlines()[-1:]}")
        batches = math.ceil(len((root / "ref" / "train.txt").read_text().splitlines()) / size["batch"])
        rates = re.findall(rf"{batches}/{batches} \[[^,]*,\s*([\d.]+)(it/s|s/it)\]", done.stderr)
        per_s = float(rates[0][0]) if rates[0][1] == "it/s" else 1 / float(rates[0][0])
        rows[name] = {"batches_per_s": round(per_s, 3)}
    # the reference's own modules; its model.py
    sys.path.insert(0, str(ref))
    spec = importlib.util.spec_from_file_location("reference_model", ref / "model.py")   # is not ours
    reference_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference_model)
    config = sys.modules["configuration_model"].ImplicitModelConfig(base_model=str(gpt2))
    model = reference_model.ImplicitModel(config).to(device).eval()
    split = data.load_split(folder, "val")
    tokens = torch.from_numpy(split.batch(np.array([0]))[0]).to(device)
    for level, first in (("zero CoT", 1), ("full CoT", 0)):
        new = int(split.seps[0, 2] - split.seps[0, first])
        model.generate(tokens, max_new_tokens=new)                      # warm-up
        sync(torch.device(device))
        started = time.perf_counter()
        for _ in range(size["examples"]):
            model.generate(tokens, max_new_tokens=new)
        sync(torch.device(device))
        elapsed = time.perf_counter() - started
        rows[f"decode {level}"] = {"examples_per_s": round(size["examples"] / elapsed, 2)}
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes on the CPU: checks the code, times nothing")
    parser.add_argument("--ref", help="the reference's src/ folder: time its step and decoding too")
    parser.add_argument("--out", help="JSON file (default results/gpu/<gpu name>.json)")
    parser.add_argument("--budget", type=data.POSITIVE, default=540,
                        help="seconds: a part that would start later than this is skipped, and says so "
                             "(default 540: one 600 s call with a margin)")
    args = parser.parse_args(argv)
    if args.out and (Path(args.out).is_dir() or not Path(args.out).parent.is_dir()):
        parser.error(f"--out {args.out}: a JSON file in an existing folder, not a folder")
    size = SIZES["smoke" if args.smoke else "full"]
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_gpu.py: error: no CUDA device (run --smoke on a CPU)")
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    out = Path(args.out or ROOT / "results" / "gpu" / f"{re.sub(r'[^A-Za-z0-9.-]+', '-', gpu)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp())                                     # weights and data: removed at exit
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    gpt2 = random_gpt2(root / "gpt2", *size["gpt2"])
    result = {"gpu": gpu, "torch": torch.__version__, "batch_size": size["batch"], "gpt2_shape": size["gpt2"],
              "budget_s": args.budget, "parts": {}, "tasks": {}}
    for task in dict.fromkeys([*size["tasks"], "mult4x4"]):             # 4x4 also feeds the parity check
        data.generate_multiplication(task, root / "data" / task,
                                     {"train": max(256, 32 * size["parity_steps"]),
                                                                  "val": 16, "test": 16}, seed=0)
    started = time.time()
    part = lambda name, measure: run_part(result, name, measure, started, args.budget, out)
    for task in size["tasks"]:                                          # by value: the paper's 7x7 first
        rows = result["tasks"].setdefault(task, {})
        for mode in MODES:                                              # bf16 + compile first
            part(f"{task} {mode}", lambda: rows.update(time_modes(task, root, gpt2, device, size, [mode])))
    for task in size["tasks"]:
        part(f"{task} loop", lambda: result["tasks"][task].update(loop=loop(task, root, gpt2, device, size)))
    for task in size["tasks"]:
        part(f"{task} decode", lambda: result["tasks"][task].update(decode=decode(
            train.build_model(train_args(task, root, gpt2, device), data.load_meta(root / "data" / task),
                              1024),
            data.load_split(root / "data" / task, "val"), device, size["examples"])))
    for task in size["tasks"] if args.ref else ():
        part(f"{task} reference", lambda: compare(result["tasks"][task], reference(args.ref, root, gpt2, task,
                                                                                    device, size)))
    part("parity", lambda: result.update(parity=parity(root, device, size)))
    print_table(result)
    print(f"wrote {out}")


class Skip(Exception):
    """A part that does not apply here; its reason goes into the JSON."""


def run_part(result, name, measure, started, budget, out):
    """One part of the check, guarded: done (its figures in `result`), skipped (the budget is spent) or failed
    (the error); `result` goes to `out` at once, so a call cut short still brings back what was measured."""
    elapsed = time.time() - started
    if elapsed > budget:
        entry = {"status": "skipped", "reason": f"{elapsed:.0f} s of the {budget} s budget spent"}
    else:
        try:
            measure()
            entry = {"status": "done", "seconds": round(time.time() - started - elapsed, 1)}
        except Skip as e:
            entry = {"status": "skipped", "reason": str(e)}
        except Exception as e:                                          # the next part still runs
            entry = {"status": "failed", "error": f"{type(e).__name__}: {str(e).strip()[:300]}"}
    result["parts"][name] = entry
    print(f"{name}: {entry}", flush=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)


def compare(rows, ref):
    """The reference's own figures beside ours, like for like: its loop's batches/s (one epoch of the same
    examples, fp32 as TF32, its tqdm rate) against our loop's, and its batch-1 decoding against ours."""
    rows["reference"] = ref
    if "loop" in rows:
        ours, theirs = rows["loop"]["batches_per_s"], ref["fp32 (TF32)"]["batches_per_s"]
        rows["loop"]["x_reference_fp32"] = round(ours / theirs, 2)
    for level in ("zero CoT", "full CoT"):
        if "decode" in rows:
            rows["decode"][level]["x_reference"] = round(rows["decode"][level]["examples_per_s"]
                                                         / ref[f"decode {level}"]["examples_per_s"], 2)


def print_table(result):
    """What was measured, part by part; what was skipped or failed is in result["parts"]."""
    print(f"\n{result['gpu']}, torch {result['torch']}, GPT-2 {result['gpt2_shape']}, "
          f"batch {result['batch_size']}, the whole CoT")
    print(f"{'task':8} {'mode':16} {'ms/step':>8} {'zero CoT':>9} {'tokens/s':>10} {'MFU':>6} {'GiB':>6} "
          f"{'1st step s':>10} {'h to end':>9} {'h all':>8}")
    for task, rows in result["tasks"].items():
        for mode in (mode for mode in MODES if mode in rows):
            r = rows[mode]
            mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
            print(f"{task:8} {mode:16} {r['ms_per_step']:8.1f} {r['zero_cot_ms_per_step']:9.1f} "
                  f"{r['tokens_per_s']:10,} {mfu:>6} {r['peak_gib'] or '-':>6} {r['first_step_s']:10.1f} "
                  f"{r['hours_to_end_of_removal']:9.1f} {r['hours_all_epochs']:8.1f}")
        if "loop" in rows:
            print(f"{task:8} train.py's loop, fp32: {rows['loop']['batches_per_s']} batches/s, "
                  f"{rows['loop']['sync_warnings']} GPU syncs in {rows['loop']['timed_batches']} batches")
        if "decode" in rows:
            decoded = rows["decode"]
            print(f"{task:8} decoding batch 1: {decoded['zero CoT']['examples_per_s']} ex/s at zero CoT, "
                  f"{decoded['full CoT']['examples_per_s']} at full CoT "
                  f"({decoded['zero CoT']['examples_per_s'] / decoded['full CoT']['examples_per_s']:.1f}x)")
        for name, r in rows.get("reference", {}).items():
            print(f"{task:8} reference {name}: {r}")
    if "parity" in result:
        p = result["parity"]
        print(f"parity, {p['steps']} steps, device vs CPU: largest relative loss gap "
              f"{p['max_relative_gap_fp32']} (fp32, TF32 off), {p['max_relative_gap_bf16']} (bf16)")
    left = {name: entry for name, entry in result["parts"].items() if entry["status"] != "done"}
    print(f"parts not done: {left}" if left else "every part done")


if __name__ == "__main__":
    main()
