"""beyond/budget.py: the CPU preset stops at the first epoch end where validation at zero CoT is >= 0.99, and
a run short of it runs on in rounds (the lr decaying again in each) to the cap; --resume continues across a
round's end."""
import json
import math
from types import SimpleNamespace

import pytest

import train
from beyond.budget import Budget
from data import DataError

VALIDATE = train.validate
T = 100                                            # data_root's mult2x2: 3,200 examples in batches of 32
SMALL = ["--task", "mult2x2", "--model", "tiny", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
         "--batch-size", "32", "--schedule", "linear", "--pretrain-epochs", "0", "--delta", "50",
         "--decay-epochs", "1", "--log-every", "50", "--fig3-examples", "0"]


def state(epoch, best_val, best_level=25, step=0):
    return train.RunState(epoch=epoch, best_val=best_val, best_level=best_level, step=step)


def budget(epochs=10, decay_epochs=4, max_steps=14400, log=None):
    args = SimpleNamespace(stop_at_val=0.99, epochs=epochs, decay_epochs=decay_epochs, max_steps=max_steps)
    return Budget(args, 800, 25, log or (lambda record, echo=None: None))


def test_the_preset_stops_on_success_and_runs_on_to_its_cap_otherwise():
    logged = []
    preset = budget(log=lambda record, echo=None: logged.append(record))
    assert preset.last_epoch(state(0, -math.inf, None)) == 18                 # 14,400 steps of 800
    assert not preset.after_epoch(state(6, 0.985))                           # short of 0.99: on
    assert not preset.after_epoch(state(6, 1.0, best_level=24))              # one CoT token still in place
    assert preset.after_epoch(state(7, 0.991, step=6400))
    assert logged[-1] == {"event": "stop", "step": 6400, "epoch": 7,
                          "reason": "validation exact match 0.991 >= 0.99 at zero CoT"}
    assert not preset.after_epoch(state(16, 0.5)) and preset.last_epoch(state(17, 0.5)) == 18
    assert preset.after_epoch(state(17, 0.5, step=14400))                    # the cap's last epoch
    assert logged[-1]["reason"] == "the cap, 14,400 steps, short of --stop-at-val 0.99"


def test_past_its_epochs_each_round_decays_the_lr_from_half_the_last_peak_cut_at_the_cap():
    args = SimpleNamespace(lr=1e-3, reset_warmup=0, decay_epochs=4, epochs=10)
    at = lambda seen: train.RunState(epoch=seen // 800, batch_in_epoch=seen % 800)
    lr = lambda seen, rounds=budget(): train.learning_rate(args, at(seen), 800,
                                                           SimpleNamespace(budget=rounds, gate=None))
    assert lr(4799) == pytest.approx(1e-3) and lr(7999) == pytest.approx(1e-3 / 3200)   # the preset's decay
    assert lr(8000) == pytest.approx(5e-4) and lr(9600) == pytest.approx(2.5e-4)        # round 1: from half
    assert lr(11199) == pytest.approx(5e-4 / 3200)                                       # to 0 in 4 epochs
    assert lr(11200) == pytest.approx(2.5e-4) and lr(14399) == pytest.approx(2.5e-4 / 3200)  # round 2: 1/4
    cut = budget(max_steps=12000)
    assert lr(11200, cut) == pytest.approx(2.5e-4) and lr(11999, cut) == pytest.approx(2.5e-4 / 800)  # cap
    for seen in (0, 4000, 5600, 7999):                                                   # the first round
        assert lr(seen) == train.learning_rate(args, at(seen), 800)


def test_a_cap_below_the_epochs_is_one_error():
    with pytest.raises(DataError, match=r"--max-steps 4000: below the 8,000 steps of --epochs 10"):
        budget(max_steps=4000)


def test_the_preset_has_the_budget_and_the_papers_recipe_has_fixed_epochs():
    tiny = train.parse_args(["--task", "mult3x3", "--model", "tiny"])
    assert (tiny.stop_at_val, tiny.max_steps, tiny.epochs) == (0.99, None, 10)
    assert budget(max_steps=None).cap_epochs == 18                            # two rounds: 14,400 steps
    for argv in (["--task", "mult3x3", "--model", "tiny", "--schedule", "linear"], ["--task", "mult7x7"],
                 ["--task", "mult4x4", "--model", "tiny"],
                 ["--task", "mult3x3", "--model", "tiny", "--mode", "nocot"]):
        args = train.parse_args(argv)
        assert (args.stop_at_val, args.max_steps) == (0.0, 0)
    asked = train.parse_args(["--task", "mult7x7", "--stop-at-val", "0.95", "--max-steps", "90000"])
    assert (asked.stop_at_val, asked.max_steps) == (0.95, 90000)


def scripted_validation(monkeypatch, accuracies):
    """train.validate as it is, with the exact match of each epoch's validation replaced by the next value."""
    values = iter(accuracies)
    monkeypatch.setattr(train, "validate", lambda *a, **k: {**VALIDATE(*a, **k), "val_acc": next(values)})


def records(out, drop=("minutes", "tokens_per_s", "val_examples_per_s")):
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_run_stops_at_the_first_epoch_end_at_or_above_the_threshold(data_root, tmp_path, monkeypatch,
                                                                      capsys):
    scripted_validation(monkeypatch, [0.5, 0.995, 1.0, 1.0])
    out = tmp_path / "run"
    train.main([*SMALL, "--data", str(data_root), "--out", str(out), "--epochs", "2", "--stop-at-val", "0.99",
                "--max-steps", str(4 * T)])
    logged = records(out)
    assert [r["epoch"] for r in logged if "val_acc" in r] == [0, 1]          # all CoT gone in epoch 0
    assert logged[-1] == {"event": "stop", "step": 2 * T, "epoch": 1,
                          "reason": "validation exact match 0.995 >= 0.99 at zero CoT"}
    assert "stopped at step 200: validation exact match 0.995" in capsys.readouterr().out
    scripted_validation(monkeypatch, [])                                     # resumed: nothing left to train
    train.main([*SMALL, "--data", str(data_root), "--out", str(out), "--resume", "--max-steps", str(8 * T)])
    resume = {"event": "resume", "step": 2 * T, "changed": {"max_steps": 8 * T}}
    assert records(out) == [*logged[:-1], resume, logged[-1]]                # the stop record, once
    assert "nothing to resume, the run stopped at step 200: validation" in capsys.readouterr().out


def test_a_run_resumed_across_the_cap_equals_one_run_to_the_higher_cap(data_root, tmp_path, monkeypatch,
                                                                        capsys):
    common = [*SMALL, "--data", str(data_root), "--epochs", "1", "--stop-at-val", "0.99"]
    scripted_validation(monkeypatch, [0.5] * 3)
    train.main([*common, "--out", str(tmp_path / "whole"), "--max-steps", str(3 * T)])
    whole = records(tmp_path / "whole")
    assert [r["epoch"] for r in whole if "val_acc" in r] == [0, 1, 2]
    assert whole[-1]["reason"] == "the cap, 300 steps, short of --stop-at-val 0.99"
    scripted_validation(monkeypatch, [0.5] * 3)
    train.main([*common, "--out", str(tmp_path / "parts"), "--max-steps", str(T)])
    assert records(tmp_path / "parts")[-1]["reason"] == "the cap, 100 steps, short of --stop-at-val 0.99"
    assert "(best validation 0.500); --resume with a higher --max-steps goes on" in capsys.readouterr().out
    train.main([*common, "--out", str(tmp_path / "parts"), "--resume", "--max-steps", str(3 * T)])
    parts = records(tmp_path / "parts")
    assert [r for r in parts if r.get("event") != "resume"] == whole         # every loss, bit for bit
    assert [r for r in parts if r.get("event") == "resume"] == [
        {"event": "resume", "step": T, "changed": {"max_steps": 3 * T}}]


def test_a_run_saved_before_the_budget_resumes_with_its_fixed_epochs(tmp_path):
    saved = vars(train.parse_args(["--task", "mult3x3", "--model", "tiny", "--stop-at-val", "0"]))
    del saved["stop_at_val"], saved["max_steps"]                         # args.json as it was written then
    (tmp_path / "args.json").write_text(json.dumps(saved))
    args = train.parse_args(["--recipe", str(tmp_path / "args.json")])
    assert (args.stop_at_val, args.max_steps) == (0.0, 0)
