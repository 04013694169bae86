"""results/: every run folder is in the generated index, with its recipe and its machine recorded."""
import json
import sys
from pathlib import Path

import train

RESULTS = Path(__file__).resolve().parent.parent / "results"
sys.path.insert(0, str(RESULTS))
import index  # noqa: E402  (results/index.py)


def test_the_committed_index_is_what_the_folders_say_now():
    committed = (RESULTS / "index.csv").read_text()
    assert committed == index.index_text(), "results/index.csv is stale: run `python results/index.py`"


def test_every_run_folder_is_in_the_index_and_at_results_task_study_row_seed():
    runs = sorted(p.parent for p in RESULTS.rglob("args.json"))
    assert runs and runs == index.run_folders()
    listed = [line.split(",")[0] for line in (RESULTS / "index.csv").read_text().splitlines()[1:]]
    assert listed == [run.relative_to(RESULTS).as_posix() for run in runs]


def test_every_run_records_its_resolved_recipe_and_its_machine():
    settings = set(vars(train.parse_args(["--task", "mult3x3"])))
    for run in index.run_folders():
        args = json.loads((run / "args.json").read_text())
        assert set(args) == settings, f"{run}: {sorted(set(args) ^ settings)}"
        assert None not in [args[k] for k in ("schedule", "carry_weight", "decay_after_recovery", "lr", "epochs",
                                              "batch_size", "remove_by_epoch", "fig3_examples")], run
        machine = json.loads((run / "machine.json").read_text())
        assert set(machine) == {"cpu", "cores", "gpu", "code"} and all(v != "" for v in machine.values()), run
        for test in json.loads((run / "test.json").read_text()) if (run / "test.json").exists() else []:
            assert Path(test["checkpoint"]).parent == Path(args["out"]), f"{run}: test.json scored another run"


def test_a_saved_recipe_starts_the_same_run():
    """train.py --recipe RUN/args.json gives back every saved setting (--device aside)."""
    for run in index.run_folders():
        saved = json.loads((run / "args.json").read_text())
        args = vars(train.parse_args(["--recipe", str(run / "args.json"), "--device", saved["device"]]))
        assert {**args, "recipe": None} == {**saved, "recipe": None}, run
