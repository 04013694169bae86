"""The two-hop rows over training seeds: test_id / test_ood / atomic_ood at the last epoch, mean and range.

    python results/twohop/seeds.py cot nocot stepwise stepwise-bridge    # reads results/twohop/ROW[-seedN]/metrics.jsonl
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
SPLITS = ("test_id_acc", "test_ood_acc", "atomic_ood_acc")


def last_epoch(folder):
    """The last per-epoch record of a run's log (the one with the test splits)."""
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "test_id_acc" in r][-1]


def seed_folders(row):
    """Seed 0 is ROW/, seed N is ROW-seedN/."""
    folders = {0: HERE / row} if (HERE / row / "metrics.jsonl").exists() else {}
    for folder in HERE.glob(f"{row}-seed*"):
        folders[int(folder.name.rsplit("-seed", 1)[1])] = folder
    return dict(sorted(folders.items()))


def main(rows):
    print("| row | seeds | test_id per seed | mean (range) | test_ood per seed | mean (range) | atomic_ood per seed |")
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


if __name__ == "__main__":
    main(sys.argv[1:] or ["cot", "nocot", "stepwise"])
