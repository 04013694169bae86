"""What separates the preset's runs that recover at zero CoT early from those that recover late (or never),
read from their logs. Prints a markdown table, a row per run folder given (default: the tuned seeds 0-10 and
the fresh ones):
    python results/mult3x3/seeds/early_or_late.py [RUN ...]
"""
import glob
import json
import sys

import numpy as np


def first_at_or_after(pairs, step):
    return next((value for at, value in pairs if at >= step), float("nan"))


def row(run):
    metrics = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
    seed = json.load(open(f"{run}/args.json"))["seed"]
    test = json.load(open(f"{run}/test.json"))[0]["accuracy"]
    advances = [m for m in metrics if m.get("event") == "advance"]
    all_gone = next(m["step"] for m in advances if m.get("to") == "all")
    recovered = next((m["step"] for m in metrics if m.get("event") == "recovered"), None)
    by_threshold = sum(m["measure"] >= 0.9 for m in advances)           # the rest: the deadline's pace
    tokens = {m["cot_removed"]: m["teacher_forced_acc"] for m in metrics if m.get("event") == "fig3_point"}
    mean_over = lambda first, last: np.mean([tokens[t] for t in range(first, last + 1) if t in tokens])
    measure = [(m["step"], m["measure"]) for m in metrics
               if m.get("event") in ("hold", "recovered") and m.get("scheduled_to_remove") == "all"]
    carry = [(m["step"], m["carry_mse"]) for m in metrics if "carry_mse" in m]
    late = recovered is None or recovered - all_gone > 1500
    return (f"| {seed} | {test:.3f} | {'late' if late else 'early'} | {all_gone} | "
            f"{recovered - all_gone if recovered else 'never'} | {by_threshold} of {len(advances)} | "
            f"{mean_over(0, 13):.2f} | {mean_over(14, 15):.2f} | {mean_over(16, 24):.2f} | "
            f"{first_at_or_after(measure, all_gone + 200):.2f} / "
            f"{first_at_or_after(measure, all_gone + 800):.2f} | "
            f"{first_at_or_after(carry, all_gone):.3f} |")


def main(runs):
    runs = runs or sorted(glob.glob("results/mult3x3/seeds/preset/seed*"))
    print("| seed | test | recovery | all CoT gone at step | steps to `recovered` after it "
          "| advances by the threshold | val at tokens 0–13 (mean) | at 14–15 | at 16–24 "
          "| measure 200 / 800 steps after | carry_mse then |")
    print("|" + "---|" * 11)
    for run in runs:
        print(row(run))


if __name__ == "__main__":
    main(sys.argv[1:])
