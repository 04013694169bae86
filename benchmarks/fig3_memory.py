"""
Peak host memory of one Fig. 3 point (train.py's teacher-forced validation at a removed token,
eval.teacher_forced_accuracy, 256 examples) against one training step of the same model (beyond.plan's
time_training_step, batch 32, the whole CoT), each in a fresh process, on the CPU. A full-vocabulary GPT-2 of
the given shape with random weights, on generated KxK data.

    python benchmarks/fig3_memory.py                          # GPT-2 small's shape on 4x4
    python benchmarks/fig3_memory.py --n-layer 2 --n-embd 128 --task mult3x3   # small, as the test runs it
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_gpu import random_gpt2, train_args
import data
import train
from beyond.plan import time_training_step
from eval import Level, teacher_forced_accuracy


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024           # Linux: kilobytes


def measure(part, task, n_layer, n_embd, folder):
    """In this process: the model and data ready, then one `part`; the growth of the peak resident memory."""
    root = Path(folder)
    gpt2 = random_gpt2(root / "gpt2", n_layer, max(1, n_embd // 64), n_embd)
    data.generate_multiplication(task, root / "data" / task, {"train": 256, "val": 256, "test": 8}, seed=0)
    args = train_args(task, root, gpt2, "cpu")
    loaded = data.load_task(args)
    model = train.build_model(args, loaded.meta, loaded.longest_example)
    before = peak_mb()
    if part == "fig3":
        teacher_forced_accuracy(model, loaded.val, Level(0), limit=256, batch_size=256)
    else:
        time_training_step(train, args, loaded, model, steps=1)
    return peak_mb() - before


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="mult4x4")
    p.add_argument("--n-layer", type=data.POSITIVE, default=12)
    p.add_argument("--n-embd", type=data.POSITIVE, default=768)
    # the child process's one part
    p.add_argument("--part", choices=["fig3", "step"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.part:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps({"mb": round(measure(args.part, args.task, args.n_layer, args.n_embd, folder))}))
        return
    result = {"task": args.task, "n_layer": args.n_layer, "n_embd": args.n_embd}
    for part in ("fig3", "step"):
        done = subprocess.run([sys.executable, __file__, "--part", part, "--task", args.task, "--n-layer",
                               str(args.n_layer), "--n-embd", str(args.n_embd)], capture_output=True,
                              text=True)
        if done.returncode:
            last = done.stderr.strip().splitlines()[-1]
            sys.exit(f"fig3_memory.py: error: the {part} process failed: {last}")
        result[f"{part}_peak_mb"] = json.loads(done.stdout.strip().splitlines()[-1])["mb"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
