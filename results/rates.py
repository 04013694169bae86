"""The rate tables of the 3x3 runs, written from results/index.csv (as index.py writes the index from the
folders): each row's runs grouped by machine and code, with n, how many reached >= 0.99 on the test split and
the exact (Clopper-Pearson) 95 % interval; then the comparisons the READMEs cite; then the steps and minutes
of the runs with a budget. A paired comparison (same seeds, so the same init and data order, one flag changed)
gets the exact McNemar test over the seeds both rows ran and says where the two runs' logs first differ; an
unpaired one gets Fisher's exact test. The tables go between the markers in README.md and results/README.md
(`<!-- rates.py: rates -->`, `comparisons` or `budget`, then `<!-- rates.py: end -->`); tests/test_results.py
fails when a table is stale.
    python results/rates.py            # rewrite the tables in both READMEs
"""
import argparse
import csv
import json
import math
import statistics
from pathlib import Path

HERE = Path(__file__).parent
PASS = 0.99
# The comparisons the READMEs cite: (what, row A, row B, paired). A row is an index.csv path prefix, with
# ":FIRST-LAST" to keep those seeds only.
COMPARISONS = [
    ("the carry probe, within the preset", "mult3x3/seeds/preset-e353d98", "mult3x3/ablation/no-probe", True),
    ("the lr decay that waits for recovery", "mult3x3/seeds/preset:0-10", "mult3x3/ablation/no-decay-wait",
     True),
    ("command 1's rounds: from half the last peak lr vs the full lr", "mult3x3/seeds/command1-halfround",
     "mult3x3/seeds/command1-fullround", True),
    ("the preset vs the paper's linear s(t)", "mult3x3/seeds/preset", "mult3x3/seeds/linear", False),
    ("... the preset's fresh seeds only", "mult3x3/seeds/preset:11-20", "mult3x3/seeds/linear", False),
    ("the preset vs no removal smoothing", "mult3x3/seeds/preset", "mult3x3/ablation/no-smoothing", False),
    ("the preset vs no optimizer resets", "mult3x3/seeds/preset", "mult3x3/ablation/no-reset", False),
]
END = "<!-- rates.py: end -->"


def binomial_cdf(k, n, p):
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))


def bisect(f, target):
    """The p in [0, 1] where the increasing function f reaches target."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        lo, hi = ((lo + hi) / 2, hi) if f((lo + hi) / 2) < target else (lo, (lo + hi) / 2)
    return (lo + hi) / 2


def clopper_pearson(k, n, alpha=0.05):
    """The exact interval: P(X >= k | lower) = P(X <= k | upper) = alpha / 2."""
    lower = 0.0 if k == 0 else bisect(lambda p: 1 - binomial_cdf(k - 1, n, p), alpha / 2)
    upper = 1.0 if k == n else bisect(lambda p: -binomial_cdf(k, n, p), -alpha / 2)
    return lower, upper


def fisher(k1, n1, k2, n2):
    """Fisher's exact test, two-sided: the tables with these margins no likelier than the one seen."""
    total, passed = n1 + n2, k1 + k2
    prob = lambda a: math.comb(n1, a) * math.comb(n2, passed - a) / math.comb(total, passed)
    seen = prob(k1)
    return min(1.0, sum(prob(a) for a in range(max(0, passed - n2), min(n1, passed) + 1)
                        if prob(a) <= seen * (1 + 1e-9)))


def mcnemar(only_a, only_b):
    """The exact McNemar test, two-sided: the pairs where one row passed and the other did not, vs 1/2."""
    n = only_a + only_b
    return 1.0 if n == 0 else min(1.0, 2 * binomial_cdf(min(only_a, only_b), n, 0.5))


def runs(index, row):
    """The index rows a comparison's row names: a path prefix, and ':FIRST-LAST' for a range of seeds."""
    prefix, _, seeds = row.partition(":")
    first, last = map(int, seeds.split("-")) if seeds else (0, math.inf)
    return [r for r in index if r["path"].rsplit("/", 1)[0] == prefix and first <= int(r["seed"]) <= last
            and r["test_exact_match"]]


def first_difference(path_a, path_b):
    """The first logged step at which two runs' losses differ, or None where every shared record agrees."""
    records = lambda path: map(json.loads, (HERE / path / "metrics.jsonl").open())
    losses = lambda path: {r["step"]: r["loss"] for r in records(path) if "loss" in r}
    a, b = losses(path_a), losses(path_b)
    return next((step for step in sorted(set(a) & set(b)) if a[step] != b[step]), None)


def kind(machine):
    """The machine as index.csv has it, without lscpu's marks: Intel(R) Xeon(R) Processor -> Intel Xeon."""
    return machine.replace("(R)", "").replace(" Processor", "")


def rate(group):
    k, n = sum(float(r["test_exact_match"]) >= PASS for r in group), len(group)
    lower, upper = clopper_pearson(k, n)
    return k, n, f"{k} of {n} ({100 * lower:.0f}–{100 * upper:.0f} %)"


def seeds_text(group):
    """The seeds as runs of consecutive numbers: 0–7, 9, 10."""
    spans = []
    for seed in sorted(int(r["seed"]) for r in group):
        if spans and seed == spans[-1][1] + 1:
            spans[-1][1] = seed
        else:
            spans.append([seed, seed])
    return ", ".join(f"{a}–{b}" if b > a + 1 else ", ".join(map(str, range(a, b + 1))) for a, b in spans)


def rate_table(index):
    """Every 3x3 row of seeds/ and ablation/, a line per machine and code version."""
    lines = ["| row | seeds | machine, code | test exact match per seed | ≥ 0.99 (95 % interval) |",
             "|---|---|---|---|---|"]
    groups = {}
    for r in index:
        if r["task"] == "mult3x3" and r["study"] in ("seeds", "ablation") and r["test_exact_match"]:
            groups.setdefault((r["study"], r["row"], kind(r["machine"]), r["commit"]), []).append(r)
    for (study, row, machine, commit), group in sorted(groups.items(), key=lambda kv: (kv[0][0] != "seeds",
                                                                                       kv[0][1:])):
        accuracies = " / ".join(r["test_exact_match"] for r in group)
        lines.append(f"| {study}/{row} | {seeds_text(group)} | {machine}, {commit} | {accuracies} | "
                     f"{rate(group)[2]} |")
    return lines


def comparison_table(index):
    lines = ["| comparison | A | B | design | A: ≥ 0.99 | B: ≥ 0.99 | test |",
             "|---|---|---|---|---|---|---|"]
    for what, row_a, row_b, paired in COMPARISONS:
        a, b = runs(index, row_a), runs(index, row_b)
        if paired:
            seeds = sorted({r["seed"] for r in a} & {r["seed"] for r in b}, key=int)
            a, b = ([r for r in rows if r["seed"] in seeds] for rows in (a, b))
        if not a or not b:
            continue
        if paired:
            passed = [(float(x["test_exact_match"]) >= PASS, float(y["test_exact_match"]) >= PASS)
                      for x, y in zip(a, b)]
            only_a, only_b = sum(x and not y for x, y in passed), sum(y and not x for x, y in passed)
            steps = [step for x, y in zip(a, b) if (step := first_difference(x["path"], y["path"]))]
            differ = "none" if not steps else f"{min(steps):,}" + (
                f"–{max(steps):,}" if max(steps) > min(steps) else "")
            same = f" ({len(a) - len(steps)} pairs never)" if steps and len(steps) < len(a) else ""
            machines = sorted({kind(r["machine"]) for r in a + b})
            across = f"; machines {' vs '.join(machines)}" if len(machines) > 1 else ""
            design = f"paired, seeds {seeds_text(a)}{across}; losses first differ at logged step " \
                     f"{differ}{same}"
            test = f"exact McNemar p = {mcnemar(only_a, only_b):.2f} ({only_a} vs {only_b} discordant)"
        else:
            design = "unpaired"
            test = f"Fisher p = {fisher(rate(a)[0], rate(a)[1], rate(b)[0], rate(b)[1]):.3f}"
        lines.append(f"| {what} | {row_a} | {row_b} | {design} | {rate(a)[2]} | {rate(b)[2]} | {test} |")
    return lines


def budget_table(index):
    """The 3x3 rows that ran with a budget (args.json's stop_at_val > 0, command 1's): the steps and minutes
    each seed took to its stop, the median and the worst, a line per machine and code version."""
    stopping = lambda r: json.loads((HERE / r["path"] / "args.json").read_text()).get("stop_at_val", 0) > 0
    lines = ["| row | seeds | machine, code | steps per seed | steps: median, worst | "
             "minutes: median, worst |", "|---|---|---|---|---|---|"]
    groups = {}
    for r in index:
        if r["task"] == "mult3x3" and r["test_exact_match"] and stopping(r):
            groups.setdefault((r["study"], r["row"], kind(r["machine"]), r["commit"]), []).append(r)
    for (study, row, machine, commit), group in sorted(groups.items()):
        steps, minutes = [int(r["steps"]) for r in group], [float(r["minutes"]) for r in group]
        lines.append(f"| {study}/{row} | {seeds_text(group)} | {machine}, {commit} | "
                     f"{' / '.join(f'{s:,}' for s in steps)} | "
                     f"{statistics.median(steps):,.0f}, {max(steps):,} | "
                     f"{statistics.median(minutes):.1f}, {max(minutes):.1f} |")
    return lines


def with_tables(text, index):
    """A README's text with each generated table, between its marker and the end marker, written anew."""
    for name, table in (("rates", rate_table), ("comparisons", comparison_table), ("budget", budget_table)):
        marker = f"<!-- rates.py: {name} -->"
        if marker in text:
            start = text.index(marker) + len(marker)
            text = text[:start] + "\n" + "\n".join(table(index)) + "\n" + text[text.index(END, start):]
    return text


def readmes():
    return [HERE / "README.md", HERE.parent / "README.md"]


def read_index():
    with open(HERE / "index.csv", newline="") as f:
        return list(csv.DictReader(f))


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    for readme in readmes():
        readme.write_text(with_tables(readme.read_text(), read_index()))
        print(f"{readme.relative_to(HERE.parent)}: tables written")
