"""results/index.csv: one row per run folder (results/TASK/STUDY/ROW/seedNN/), generated from the folders'
files, so that the index cannot say what the folders do not. tests/test_results.py fails when the committed
index differs from a fresh one.
    python results/index.py            # rewrite results/index.csv
"""
import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).parent
COLUMNS = ["path", "task", "study", "row", "seed", "mode", "schedule", "probe", "steps", "examples", "device",
           "machine", "commit", "test_exact_match", "test_ood_exact_match", "minutes"]


def run_folders():
    return sorted(folder.parent for folder in HERE.glob("*/*/*/seed[0-9][0-9]/args.json"))


def log_records(folder):
    log = folder / "metrics.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def probe(args):
    """The probe beside the model, in short: carry=W, bridge=W or none."""
    weights = [f"{name}={args[f'{name}_weight']:g}" for name in ("carry", "bridge") if args[f"{name}_weight"]]
    return " ".join(weights) or "none"


def test_figures(folder, records):
    """Test exact match: eval.py's test.json, or (two-hop) the last epoch's ID and OOD test splits."""
    if (folder / "test.json").exists():
        return f"{json.loads((folder / 'test.json').read_text())[0]['accuracy']:.3f}", ""
    last = [r for r in records if "test_id_acc" in r]
    return (f"{last[-1]['test_id_acc']:.3f}", f"{last[-1]['test_ood_acc']:.3f}") if last else ("", "")


def row(folder):
    """One run folder's line; a folder whose files are missing or broken gets a line saying so."""
    try:
        return run_row(folder)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        print(f"results/index.py: {folder}: skipped, {type(e).__name__}: {e}", file=sys.stderr)
        return {"path": folder.relative_to(HERE).as_posix(), "task": f"unreadable: {type(e).__name__}"}


def training_minutes(records):
    """The run's minutes: the clock restarts at a --resume, so the last reading of each stretch adds up."""
    readings = [r["minutes"] for r in records if "minutes" in r]
    if not readings:
        return None
    return sum(before for before, after in zip(readings, readings[1:]) if after < before) + readings[-1]


def run_row(folder):
    args = json.loads((folder / "args.json").read_text())
    machine = json.loads((folder / "machine.json").read_text())
    records = log_records(folder)
    steps = max((r["step"] for r in records), default=None)
    minutes = training_minutes(records)
    task, study, row_name, seed = folder.relative_to(HERE).parts
    return {"path": folder.relative_to(HERE).as_posix(), "task": task, "study": study, "row": row_name,
            "seed": int(seed[4:]), "mode": args["mode"], "schedule": args["schedule"], "probe": probe(args),
            "steps": steps if steps is not None else "",
            "examples": steps * args["batch_size"] if steps is not None else "",
            "device": args["device"],
            "machine": machine["gpu" if args["device"].startswith("cuda") else "cpu"],
            "commit": machine["code"],
            **dict(zip(("test_exact_match", "test_ood_exact_match"), test_figures(folder, records))),
            "minutes": "" if minutes is None or not math.isfinite(minutes) else f"{minutes:.1f}"}


def index_text():
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row(folder) for folder in run_folders())
    return out.getvalue()


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    (HERE / "index.csv").write_text(index_text())
    print(f"results/index.csv: {len(run_folders())} runs")
