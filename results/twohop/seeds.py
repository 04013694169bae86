"""The two-hop rows over training seeds: test_id / test_ood / atomic_ood at the last epoch, mean and range.
With --late, per run: the last epoch beside the median and minimum of the last tenth of the evaluations (the
constant-lr runs dip hard now and then, so one epoch can land in a dip) and the peak.

    python results/twohop/seeds.py main/cot main/nocot main/stepwise main/stepwise-bridge   # STUDY/ROW/
    python results/twohop/seeds.py --late noise-10x/cot noise-10x/tail005                 # each seed folder
"""
import json
import sys
from pathlib import Path
from statistics import median

HERE = Path(__file__).parent
SPLITS = ("test_id_acc", "test_ood_acc", "atomic_ood_acc")


def epochs(folder):
    """The per-epoch records of a run's log (the ones with the test splits)."""
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "test_id_acc" in r]


def last_epoch(folder):
    return epochs(folder)[-1]


def seed_folders(row):
    """Seed N is STUDY/ROW/seedNN/."""
    return {int(folder.name[4:]): folder for folder in sorted(HERE.glob(f"{row}/seed[0-9][0-9]"))}


def main(rows):
    print("| row | seeds | test_id per seed | mean (range) | test_ood per seed | mean (range) "
          "| atomic_ood per seed |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        folders = seed_folders(row)
        if not folders:
            sys.exit(f"seeds.py: no run folder for row {row!r} under {HERE}")
        last = [last_epoch(f) for f in folders.values()]
        cells = []
        for key in SPLITS:
            values = [r[key] for r in last]
            cells.append(" / ".join(f"{v:.3f}" for v in values))
            if key != "atomic_ood_acc":
                cells.append(f"{sum(values) / len(values):.3f} ({min(values):.3f}–{max(values):.3f})")
        print(f"| {row} | {', '.join(map(str, folders))} | " + " | ".join(cells) + " |")


def late(runs):
    seeds = [folder.relative_to(HERE) for run in runs
             for folder in sorted(HERE.glob(f"{run}/seed[0-9][0-9]"))]
    runs = seeds or runs
    missing = [run for run in runs if not (HERE / run / "metrics.jsonl").exists()]
    if missing:
        sys.exit(f"seeds.py: no run folder {HERE / missing[0]}")
    print("| run | steps | test_id: last, median of the last tenth (min) "
          "| test_ood: last, median of the last tenth (min) | test_ood peak (step) |")
    print("|---|---|---|---|---|")
    for run in runs:
        records = epochs(HERE / run)
        tenth = records[-max(1, len(records) // 10):]
        cells = []
        for key in SPLITS[:2]:
            values = [r[key] for r in tenth]
            cells.append(f"{records[-1][key]:.3f}, {median(values):.3f} ({min(values):.3f})")
        peak = max(records, key=lambda r: r["test_ood_acc"])
        print(f"| {run} | {records[-1]['step']:,} | " + " | ".join(cells) +
              f" | {peak['test_ood_acc']:.3f} ({peak['step']:,}) |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--late"]:
        late(sys.argv[2:])
    else:
        main(sys.argv[1:] or ["main/cot", "main/nocot", "main/stepwise"])
