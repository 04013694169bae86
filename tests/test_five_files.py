"""The five files of the design card hold the paper: copied alone (with requirements.txt) into an empty folder
they generate data, train the paper's method and score it; what needs beyond/ says so in one line. And the
checkpoints written before beyond/ existed still resume and score."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch

import train
import eval as evaluation
from beyond.checkpoints import upgrade_checkpoint

ROOT = Path(__file__).resolve().parents[1]
FIVE = ["model.py", "data.py", "schedule.py", "train.py", "eval.py", "requirements.txt"]
OLD = ROOT / "tests" / "fixtures" / "old-layout"


def run(folder, *argv):
    return subprocess.run([sys.executable, *argv], cwd=folder, capture_output=True, text=True, timeout=600)


def test_the_five_files_alone_train_the_paper_and_score_it(tmp_path):
    for name in FIVE:
        shutil.copy(ROOT / name, tmp_path / name)
    made = run(tmp_path, "data.py", "--task", "mult3x3", "--train-size", "640", "--val-size", "40",
               "--test-size", "40")
    assert made.returncode == 0, made.stderr
    trained = run(tmp_path, "train.py", "--task", "mult3x3", "--model", "tiny", "--schedule", "linear",
                  "--train-size", "640", "--batch-size", "64", "--epochs", "2", "--pretrain-epochs", "0",
                  "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--val-limit", "20", "--fig3-examples",
                  "16")
    assert trained.returncode == 0, trained.stderr
    assert "linear schedule" in trained.stdout and "epoch 1: val exact match" in trained.stdout
    records = [json.loads(line) for line in (tmp_path / "runs/mult3x3-tiny-stepwise/metrics.jsonl").open()]
    assert [r["epoch"] for r in records if "val_acc" in r] == [0, 1]
    assert any(r.get("event") == "optimizer_reset" for r in records)         # s(t) grew: AdamW started fresh
    scored = run(tmp_path, "eval.py", "--ckpt", "runs/mult3x3-tiny-stepwise/best.pt", "--limit", "10",
                 "--json", "test.json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads((tmp_path / "test.json").read_text())[0]["examples"] == 10
    for argv, missing in ((["--carry-weight", "1"],
                           "unrecognized arguments: --carry-weight 1 (flags beyond the "
                           "paper need the folder beyond/ beside train.py)"),
                          (["--schedule", "adaptive"],
                           "--schedule adaptive needs the folder beyond/ beside train.py")):
        refused = run(tmp_path, "train.py", "--task", "mult3x3", "--model", "tiny", *argv)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert refused.stderr.strip().splitlines()[-1] == f"train.py: error: {missing}" or \
            missing in refused.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "beyond").exists()


def test_a_checkpoint_in_the_old_layout_scores_and_resumes(data_root, tmp_path):
    """tests/fixtures/old-layout: written by the code before beyond/ (8d1e06f) after one epoch of an adaptive
    run with the carry probe, and of a linear run. eval.py scores them; --resume continues them with the
    probe's weights, the gate's state and its rollback point as they were saved."""
    for kind in ("adaptive", "linear"):
        shutil.copytree(OLD / kind, tmp_path / kind)
        old = torch.load(tmp_path / kind / "ckpt.pt", weights_only=True)
        model, info = evaluation.load_checkpoint(tmp_path / kind / "ckpt.pt")
        assert "carry_probe.weight" not in model.state_dict() and info["task"] == "mult3x3"
        flags = [*json.loads((tmp_path / kind / "args.json").read_text()).items()]
        argv = ["--task", "mult3x3", "--data", str(data_root), "--out", str(tmp_path / kind), "--resume",
                "--epochs", "2", "--model", "tiny", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
                "--batch-size", "32", "--log-every", "10", "--val-limit", "10", "--fig3-examples", "8",
                "--schedule", dict(flags)["schedule"]]
        if kind == "adaptive":
            argv += ["--gate-min-steps", "2", "--gate-max-steps", "5", "--carry-weight", "1"]
        else:
            argv += ["--pretrain-epochs", "0"]
        args = train.parse_args(argv)
        run = train.start_or_resume(args, torch.device("cpu"))
        upgraded = upgrade_checkpoint(old)
        assert run.state.epoch == 1 and run.state.step == old["schedule"]["step"] == 20
        if kind == "adaptive":
            assert torch.equal(run.net.probe.weight, old["model"]["carry_probe.weight"])
            assert run.additions.gate.state == old["schedule"]["gate"]
            point = run.additions.gate.rollback_point
            assert torch.equal(point["model"]["probe.weight"],
                               old["rollback_point"]["model"]["carry_probe.weight"])
            # it restores into today's module
            assert set(point["model"]) == set(run.net.state_dict())
        else:
            assert run.net.probe is None and run.additions.gate is None
        assert set(upgraded["schedule"]) == {f for f in vars(train.RunState())}
        train.main(argv)
        records = [json.loads(line) for line in (tmp_path / kind / "metrics.jsonl").open()]
        assert [r["epoch"] for r in records if "val_acc" in r] == [0, 1]
        assert max(r["step"] for r in records) == 40


def test_every_python_file_has_lines_of_at_most_110_characters():
    """The five files, beyond/, and the tests, benchmarks and results scripts beside them."""
    folders = ("beyond", "tests", "benchmarks", "results")
    files = [ROOT / name for name in FIVE if name.endswith(".py")] + sorted(
        path for folder in folders for path in (ROOT / folder).rglob("*.py"))
    assert len(files) > 30
    long = [f"{path.relative_to(ROOT)}:{number}" for path in files
            for number, line in enumerate(path.read_text().splitlines(), 1) if len(line) > 110]
    assert not long, f"lines over 110 characters: {long}"
