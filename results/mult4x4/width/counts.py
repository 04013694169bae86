"""Steps each CoT count needed in 4x4 runs (issue 34: capacity or steps): per run folder, every gate advance
or rollback (count, steps held there, the gate's measure when it moved) and where the run stopped.
    python results/mult4x4/width/counts.py results/mult4x4/width/*/seed00 \\
        results/mult4x4/stepwise/pretrain2/seed00
"""
import json
import sys
from pathlib import Path


def main(folders):
    for folder in map(Path, folders):
        log = folder / "metrics.jsonl"
        if not (log.exists() and (folder / "args.json").exists()):
            sys.exit(f"counts.py: {folder} has no metrics.jsonl and args.json (a run folder of train.py)")
        records = [json.loads(line) for line in log.read_text().splitlines()]
        args = json.loads((folder / "args.json").read_text())
        moves = [r for r in records if r.get("event") in ("advance", "rollback")]
        last = max(r["step"] for r in records)
        holds = [r for r in records if r.get("event") == "hold"]
        count = records[-1].get("scheduled_to_remove")
        held = holds[-1]["steps_held"] if holds and holds[-1]["scheduled_to_remove"] == count else 0
        print(f"{folder}: {args['n_layer']} x {args['n_embd']}, threshold {args['gate_threshold']}, "
              f"stopped at step {last} on count {count} (held {held} steps there)")
        print("  count: steps held (measure), * = moved by the deadline, not the gate")
        moved = lambda r: r["event"] == "advance" and r["measure"] < args["gate_threshold"]
        back = lambda r: "" if r["event"] == "advance" else " rolled back"
        print("  " + ", ".join(f"{r['scheduled_to_remove']}{back(r)}: "
                               f"{r['steps_held']} ({r['measure']:.2f}{'*' if moved(r) else ''})"
                               for r in moves))


if __name__ == "__main__":
    main(sys.argv[1:])
