"""The zero-CoT phase of the preset's runs: from the step where all CoT is gone to the first epoch end where
validation exact match at zero CoT is >= 0.99 (validation runs at epoch ends, every 800 steps, so a phase is
known to 800 steps). Prints a markdown table, a row per run folder given, then the distribution. "Behind"
is the gate's measure (exact match on the training batches) at its last five advances, averaged: how far the
model was from the CoT just removed when the gate's deadline took the next tokens.
    python results/mult3x3/seeds/zero_cot_phase.py [RUN ...]      # default: the preset's seeds 0-10
"""
import json
import sys

import numpy as np

BEHIND = 0.15     # a cut read off the runs in results/ (README, "Command 1's budget"), not a test


def phase(run):
    """(seed, step all CoT went, step the gate saw recovery, first epoch end >= 0.99 or None, last step, the
    zero-CoT validations in order, test exact match, the gate's measure at its last five advances)."""
    metrics = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
    seed = json.load(open(f"{run}/args.json"))["seed"]
    test = json.load(open(f"{run}/test.json"))[0]["accuracy"]
    all_gone = next(m["step"] for m in metrics if m.get("event") == "advance" and m.get("to") == "all")
    recovered = next((m["step"] for m in metrics if m.get("event") == "recovered"), None)
    at_zero = [(m["step"],
                m["val_acc"]) for m in metrics if m.get("scheduled_to_remove") == "all" and "val_acc" in m]
    done = next((step for step, acc in at_zero if acc >= 0.99), None)
    last_five = np.mean([m["measure"] for m in metrics if m.get("event") == "advance"][-5:])
    return seed, all_gone, recovered, done, at_zero[-1][0], [acc for _, acc in at_zero], test, last_five


def main(runs):
    runs = runs or [f"results/mult3x3/seeds/preset/seed{seed:02d}" for seed in range(11)]
    print("| seed | all CoT gone at step | gate's `recovered` | val >= 0.99 at step "
          "| zero-CoT phase (steps) | validation at zero CoT, each epoch end | test "
          "| measure at the last 5 advances |")
    print("|---|---|---|---|---|---|---|---|")
    phases, behind = [], []
    for run in runs:
        seed, gone, recovered, done, last, accs, test, last_five = phase(run)
        phases.append(done - gone if done else None)
        behind.append((last_five, test >= 0.99))
        print(f"| {seed} | {gone:,} | {recovered if recovered else 'never'} "
              f"| {done if done else 'not by ' + str(last)}"
              f" | {done - gone if done else f'> {last - gone:,}'} | {' / '.join(f'{a:.3f}' for a in accs)} "
              f"| {test:.3f} | {last_five:.2f} |")
    reached = sorted(p for p in phases if p is not None)
    spread = (f"min {min(reached):,}, median {int(np.median(reached)):,}, max {max(reached):,}"
              if reached else "none")
    print(f"\n{len(reached)} of {len(phases)} reached 0.99 at zero CoT; phase (steps): {spread}; "
          f"{len(phases) - len(reached)} not within their budget")
    for name, group in ((f"behind (measure <= {BEHIND})", [ok for m, ok in behind if m <= BEHIND]),
                        ("the others", [ok for m, ok in behind if m > BEHIND])):
        print(f"{name}: test >= 0.99 on {sum(group)} of {len(group)}")


if __name__ == "__main__":
    main(sys.argv[1:])
