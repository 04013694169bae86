"""Adaptive vs linear schedule on 2x2, and no-CoT training, same 2,068 steps; the README's 2x2 row.
    python results/mult2x2-schedules/run.py 0 1 2 3 4        # seeds; appends to runs/2x2-summary.jsonl
    python results/mult2x2-schedules/run.py nocot 0 1 2 3 4  # only the variants named"""
import sys, json, time
sys.path.insert(0, ".")
import data, train, eval as evaluation
from pathlib import Path
root = Path("runs/2x2data")
if not (root / "mult2x2" / "meta.json").exists():
    data.generate_multiplication("mult2x2", root / "mult2x2", {"train": 6000, "val": 100, "test": 200}, seed=0)
common = ["--task", "mult2x2", "--data", str(root), "--model", "tiny", "--n-layer", "2", "--n-head", "4",
          "--n-embd", "128", "--batch-size", "64", "--lr", "1e-3", "--epochs", "22", "--decay-epochs", "10",
          "--log-every", "500"]
variants = {"adaptive": ["--schedule", "adaptive", "--remove-by-epoch", "8"],
            "linear": ["--schedule", "linear", "--pretrain-epochs", "3", "--delta", "8"],
            "nocot": ["--mode", "nocot"]}
chosen = [a for a in sys.argv[1:] if a in variants] or list(variants)
for seed in [int(s) for s in sys.argv[1:] if s.isdigit()]:
    for name in chosen:
        flags = variants[name]
        out = Path(f"runs/2x2-{name}-seed{seed}")
        t = time.time()
        train.main([*common, *flags, "--seed", str(seed), "--out", str(out)])
        model, info = evaluation.load_checkpoint(out / "best.pt")
        r = evaluation.evaluate(model, data.load_split(root / "mult2x2", "test"), info["n_remove"],
                                info["removal_side"], info["keep_position"], batch_size=200)
        with open("runs/2x2-summary.jsonl", "a") as f:
            f.write(json.dumps({"seed": seed, "schedule": name, "test": r["accuracy"], "seconds": round(time.time() - t)}) + "\n")
