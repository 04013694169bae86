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
        assert None not in [args[k] for k in ("schedule", "carry_weight", "decay_after_recovery", "lr",
                                              "epochs", "batch_size", "remove_by_epoch",
                                              "fig3_examples")], run
        machine = json.loads((run / "machine.json").read_text())
        assert set(machine) == {"cpu", "cores", "gpu", "code"} and all(v != "" for v in machine.values()), run
        for test in json.loads((run / "test.json").read_text()) if (run / "test.json").exists() else []:
            scored = Path(test["checkpoint"]).parent
            assert scored == Path(args["out"]), f"{run}: test.json scored another run"


def test_a_saved_recipe_starts_the_same_run(monkeypatch):
    """train.py --recipe RUN/args.json gives back every saved setting (--device aside: a GPU run's recipe is
    read here as if this machine had its GPU)."""
    monkeypatch.setattr(train, "missing_device", lambda name: None)
    for run in index.run_folders():
        saved = json.loads((run / "args.json").read_text())
        args = vars(train.parse_args(["--recipe", str(run / "args.json"), "--device", saved["device"]]))
        assert {**args, "recipe": None} == {**saved, "recipe": None}, run


def test_a_resumed_runs_minutes_add_up_its_stretches():
    """train.py's clock restarts at --resume: 24.8 min to the cap, then 7.8 more, is 32.6 min."""
    log = [{"step": 50, "minutes": 0.1}, {"event": "hold"}, {"step": 14400, "minutes": 24.78},
           {"step": 14450, "minutes": 0.07}, {"step": 20000, "minutes": 7.81}]
    assert round(index.training_minutes(log), 2) == 32.59
    assert index.training_minutes(log[:3]) == 24.78 and index.training_minutes([{"event": "hold"}]) is None


import rates  # noqa: E402  (results/rates.py)


def test_the_rate_tables_in_both_readmes_are_what_the_index_says_now():
    index_rows = rates.read_index()
    for readme in rates.readmes():
        text = readme.read_text()
        assert "<!-- rates.py: comparisons -->" in text and "<!-- rates.py: budget -->" in text, readme
        assert text == rates.with_tables(text, index_rows), f"{readme}: stale, run `python results/rates.py`"
        stale = text.replace("| 7 of 10 (35–93 %) |", "| 8 of 10 (44–97 %) |", 1)
        assert stale != text and rates.with_tables(stale, index_rows) == text


def test_the_rates_statistics_match_their_textbook_values():
    assert [round(p, 3) for p in rates.clopper_pearson(7, 10)] == [0.348, 0.933]
    assert rates.clopper_pearson(0, 5)[0] == 0 and round(rates.clopper_pearson(0, 5)[1], 3) == 0.522
    assert round(rates.fisher(17, 21, 0, 5), 4) == 0.0019 and round(rates.fisher(7, 10, 5, 11), 3) == 0.387
    assert rates.mcnemar(3, 0) == 0.25 and rates.mcnemar(0, 0) == 1.0 and rates.mcnemar(5, 5) == 1.0


def test_a_paired_comparison_pairs_runs_by_seed_and_tests_the_discordant_pairs(monkeypatch):
    run = lambda row, seed, acc: {"path": f"mult3x3/seeds/{row}/seed{seed:02d}", "seed": str(seed),
                                  "machine": "Intel Xeon", "test_exact_match": acc}
    index_rows = [run("a", s, "1.000") for s in range(6)] + [run("b", s, "0.500") for s in (1, 2, 3, 4, 5, 9)]
    a, b = "mult3x3/seeds/a", "mult3x3/seeds/b"
    monkeypatch.setattr(rates, "COMPARISONS", [("a vs b", a, b, True), ("a vs b, unpaired", a, b, False)])
    monkeypatch.setattr(rates, "first_difference", lambda a, b: 50)
    paired, unpaired = rates.comparison_table(index_rows)[2:]
    assert "paired, seeds 1–5;" in paired and "5 of 5" in paired and "0 of 5" in paired
    assert "exact McNemar p = 0.06 (5 vs 0 discordant)" in paired
    assert "6 of 6" in unpaired and "0 of 6" in unpaired and "Fisher p = 0.002" in unpaired


def test_the_budget_table_lists_the_runs_with_a_budget_and_their_steps_to_the_stop(tmp_path, monkeypatch):
    table = "\n".join(rates.budget_table(rates.read_index()))
    assert "| seeds/command1-fullround | 21 | Intel Xeon, 6a36037 | 14,400 | 14,400, 14,400 | 21.6, 21.6 |" \
        in table
    assert "seeds/preset " not in table and "seeds/preset-e353d98" not in table      # fixed 8,000 steps
    runs = [(6400, 10.5, 0.99), (8000, 14.0, 0.99), (14400, 21.0, 0.99), (7200, 12.0, 0.99),
            (8000, 15.0, 0.0)]
    for seed, (steps, minutes, stop) in enumerate(runs):
        (tmp_path / f"r/seed{seed}").mkdir(parents=True)
        (tmp_path / f"r/seed{seed}/args.json").write_text(json.dumps({"stop_at_val": stop}))
    monkeypatch.setattr(rates, "HERE", tmp_path)
    index = [{"path": f"r/seed{seed}", "task": "mult3x3", "study": "seeds", "row": "r", "seed": str(seed),
              "machine": "Intel(R) Xeon(R) Processor", "commit": "abc", "test_exact_match": "1.000",
              "steps": str(steps), "minutes": str(minutes)}
             for seed, (steps, minutes, _) in enumerate(runs)]
    assert rates.budget_table(index)[2] == \
        "| seeds/r | 0–3 | Intel Xeon, abc | 6,400 / 8,000 / 14,400 / 7,200 | 7,600, 14,400 | 13.0, 21.0 |"


def test_the_zero_cot_phase_script_gives_the_readmes_figures(capsys, monkeypatch):
    sys.path.insert(0, str(RESULTS / "mult3x3" / "seeds"))
    import zero_cot_phase
    monkeypatch.chdir(RESULTS.parent)
    zero_cot_phase.main([])                                             # the preset's seeds 0-10
    out = capsys.readouterr().out
    assert "10 of 11 reached 0.99 at zero CoT; phase (steps): min 1,600, median 2,416, max 3,200" in out
    assert "| 9 | 4,800 | 7657 | not by 8000 | > 3,200 |" in out
    assert "behind (measure <= 0.15): test >= 0.99 on 4 of 4" in out
    assert "the others: test >= 0.99 on 6 of 7" in out
