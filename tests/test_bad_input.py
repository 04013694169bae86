"""Bad input never costs a run and always gets one clear line: every case below ends with a non-zero exit, no
traceback, a last line that names the culprit, and an existing run's files byte for byte as they were."""
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import data
import eval as evaluation
import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--log-every", "10",
        "--schedule", "linear", "--val-limit", "5", "--fig3-examples", "0"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A data root (mult2x2) and a finished run in it: what bad input must never touch."""
    root = tmp_path_factory.mktemp("world")
    data.generate_multiplication("mult2x2", root / "data" / "mult2x2", {"train": 640, "val": 20, "test": 20},
                                 seed=0)
    train.main(["--task", "mult2x2", "--data", str(root / "data"), "--out", str(root / "run"), "--batch-size",
                "64", "--epochs", "1", *TINY])
    return root


def fingerprint(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir())}


def refused(main, argv, capsys):
    """Runs a command line's main; returns its one error line (what it printed last, or its exit message)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    line = str(e.value.code) if isinstance(e.value.code, str) else err.splitlines()[-1]
    assert "Traceback" not in err and "\n" not in line
    return line


TRAIN_FLAGS = [  # (flags, what the line must name)
    (["--lr", "nan"], "--lr"), (["--lr", "-1"], "--lr"), (["--lr", "inf"], "--lr"),
    (["--weight-decay", "-1"], "--weight-decay"), (["--seed", "-1"], "--seed"),
    (["--log-every", "0"], "--log-every"),
    (["--train-size", "0"], "--train-size"), (["--train-size", "-5"], "--train-size"),
    (["--val-limit", "0"], "--val-limit"), (["--val-limit", "-1"], "--val-limit"),
    (["--n-head", "3", "--n-embd", "32"], "--n-embd 32 must be a multiple of --n-head 3"),
    (["--n-embd", "-8"], "--n-embd"), (["--n-layer", "0"], "--n-layer"), (["--dropout", "2"], "--dropout"),
    (["--device", "tpu"], "--device"), (["--max-grad-norm", "-1"], "--max-grad-norm"),
    (["--remove-start-from", "-5"], "--remove-start-from"), (["--epochs", "0"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"), (["--accumulate", "0"], "--accumulate"),
    (["--delta", "0"], "--delta"),
    (["--delta", "nan"], "--delta"), (["--smoothing-lambda", "-1"], "--smoothing-lambda"),
    (["--smoothing-lambda", "nan"], "--smoothing-lambda"), (["--mode", "sideways"], "--mode"),
    (["--model", "huge"], "--model"), (["--dtype", "float16"], "--dtype"),
    (["--removal-side", "middle"], "--removal-side"),
    (["--fig3-examples", "-1"], "--fig3-examples"), (["--reset-warmup", "-1"], "--reset-warmup"),
    (["--decay-epochs", "-1"], "--decay-epochs"), (["--pretrain-epochs", "-1"], "--pretrain-epochs"),
    (["--remove-all-beyond", "0"], "--remove-all-beyond"), (["--gate-threshold", "1.5"], "--gate-threshold"),
    (["--gate-collapse", "0.95"], "--gate-collapse"), (["--gate-min-steps", "0"], "--gate-min-steps"),
    (["--gate-max-steps", "10", "--gate-min-steps", "20"], "--gate-max-steps"),
    (["--max-chunk", "0"], "--max-chunk"),
    (["--carry-weight", "-1"], "--carry-weight"), (["--bridge-weight", "nan"], "--bridge-weight"),
    (["--slower-by", "0"], "--slower-by"), (["--save-every", "-1"], "--save-every"),
    (["--min-decay-epochs", "0"], "--min-decay-epochs"), (["--init", "gpt5"], "--init gpt5"),
    (["--activation", "relu"], "--activation"), (["--out", ""], "--out"), (["--task"], "--task"),
    (["--plan-tokens-per-s", "0"], "--plan-tokens-per-s"), (["--epochs", "1.5"], "--epochs")]


@pytest.mark.parametrize("flags, culprit", TRAIN_FLAGS, ids=[" ".join(f) for f, _ in TRAIN_FLAGS])
def test_a_bad_training_flag(flags, culprit, world, capsys):
    before = fingerprint(world / "run")
    argv = ["--task", "mult2x2", "--data", str(world / "data"), "--out", str(world / "new"), *TINY, *flags]
    assert culprit in refused(train.main, argv, capsys)
    assert fingerprint(world / "run") == before and not (world / "new").exists()


RUN_CASES = [  # a command line against the existing run, and what the line must name
    ([], "holds a run (ckpt.pt, metrics.jsonl): continue it with --resume, or start over with --overwrite"),
    (["--resume", "--n-layer", "2"], "--n-layer 1 (now 2)"),
    (["--resume", "--batch-size", "32"], "--batch-size 64"),
    (["--resume", "--seed", "3"], "--seed 0 (now 3)"), (["--resume", "--lr", "nan"], "--lr"),
    (["--resume", "--carry-weight", "1"], "trained without the carry probe"),
    (["--resume", "--schedule", "adaptive"], "trained with the linear schedule")]


@pytest.mark.parametrize("flags, culprit", RUN_CASES, ids=[" ".join(f) or "fresh" for f, _ in RUN_CASES])
def test_a_command_line_never_costs_the_existing_run_a_file(flags, culprit, world, capsys):
    before = fingerprint(world / "run")
    argv = ["--task", "mult2x2", "--data", str(world / "data"), "--out", str(world / "run"), *TINY,
            "--epochs", "2", "--batch-size", "64", *flags]
    assert culprit in refused(train.main, argv, capsys)
    assert fingerprint(world / "run") == before


RECIPES = [  # a key of the run's args.json changed to this, and what the line must name
    ({"model": "huge"}, "--model"), ({"mode": "sideways"}, "--mode"), ({"dtype": "float16"}, "--dtype"),
    ({"removal_side": "middle"}, "--removal-side"), ({"epochs": 1.5}, "--epochs"), ({"lr": "abc"}, "--lr"),
    ({"compile": "yes"}, "compile must be true or false"), ({"probe_examples": 9}, "probe_examples"),
    ({"lr": float("nan")}, "--lr")]


@pytest.mark.parametrize("change, culprit", RECIPES, ids=[str(c) for c, _ in RECIPES])
def test_a_recipe_holds_nothing_a_command_line_could_not(change, culprit, world, tmp_path, capsys):
    recipe = {**json.loads((world / "run" / "args.json").read_text()), **change}
    (tmp_path / "args.json").write_text(json.dumps(recipe))
    before = fingerprint(world / "run")
    line = refused(train.main, ["--recipe", str(tmp_path / "args.json"), "--out", str(tmp_path / "new")],
                   capsys)
    assert culprit in line and str(tmp_path / "args.json") in line
    assert fingerprint(world / "run") == before


def test_the_runs_own_recipe_with_a_bad_value_costs_it_nothing(world, capsys):
    """The case that cost a run its log: its own args.json as the recipe (--out is that run), a bad lr."""
    before = fingerprint(world / "run")
    line = refused(train.main, ["--recipe", str(world / "run" / "args.json"), "--lr", "nan"], capsys)
    assert "--lr" in line and fingerprint(world / "run") == before
    line = refused(train.main, ["--recipe", str(world / "run" / "args.json")], capsys)
    assert "holds a run" in line and fingerprint(world / "run") == before


def test_batches_all_longer_than_max_len_train_stop_the_run(world, tmp_path, capsys):
    argv = ["--task", "mult2x2", "--data", str(world / "data"), "--out", str(tmp_path / "new"), *TINY,
            "--max-len-train", "1"]
    assert "--max-len-train 1: every example is longer" in refused(train.main, argv, capsys)
    assert not (tmp_path / "new").exists()


def test_a_gpt2_folder_whose_config_is_not_numbers_is_one_line(world, tmp_path, capsys):
    from conftest import gpt2_tensors, write_safetensors
    model, _ = evaluation.load_checkpoint(world / "run" / "best.pt")
    (tmp_path / "gpt2").mkdir()
    write_safetensors(tmp_path / "gpt2" / "model.safetensors", gpt2_tensors(model))
    (tmp_path / "gpt2" / "config.json").write_text(json.dumps({"n_head": "two"}))
    line = refused(evaluation.main, ["--ckpt", str(tmp_path / "gpt2"), "--task", "mult2x2", "--data",
                                     str(world / "data"), "--limit", "2"], capsys)
    assert "n_head must be a whole number" in line and "config.json" in line


def test_bench_gpu_checks_its_output_before_it_runs(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--smoke", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--out" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("text, culprit", [("{", "not a readable args.json"), ("[1]", "not a JSON object")])
def test_a_recipe_that_is_not_json_is_one_line(text, culprit, tmp_path, capsys):
    (tmp_path / "args.json").write_text(text)
    assert culprit in refused(train.main, ["--recipe", str(tmp_path / "args.json")], capsys)


def corrupt(world, tmp_path, how):
    """A copy of the data root with mult2x2 broken one way."""
    root = tmp_path / "data"
    shutil.copytree(world / "data", root)
    folder = root / "mult2x2"
    meta = json.loads((folder / "meta.json").read_text())
    if how == "bin cut by a byte":
        raw = (folder / "train.bin").read_bytes()
        (folder / "train.bin").write_bytes(raw[:-1])
    elif how == "bin empty":
        (folder / "train.bin").write_bytes(b"")
    elif how == "token outside the vocabulary":
        tokens = np.fromfile(folder / "train.bin", np.uint16)
        tokens[1] = 60000
        tokens.tofile(folder / "train.bin")
    elif how == "meta not JSON":
        (folder / "meta.json").write_text("{")
    elif how == "meta a list":
        (folder / "meta.json").write_text("[]")
    elif how == "meta without vocab_ids":
        del meta["vocab_ids"]
    elif how == "meta of another task":
        meta["task"] = "mult3x3"
    elif how == "meta counts wrong":
        meta["splits"]["train"]["examples"] += 1
    elif how == "longest example inflated":
        meta["splits"]["train"]["longest_example"] = 10 ** 7
    if how.startswith("meta") or how.startswith("longest"):
        if how not in ("meta not JSON", "meta a list"):
            (folder / "meta.json").write_text(json.dumps(meta))
    return root


DATA_CASES = ["bin cut by a byte", "bin empty", "token outside the vocabulary", "meta not JSON",
              "meta a list", "meta without vocab_ids", "meta of another task", "meta counts wrong",
              "longest example inflated"]


@pytest.mark.parametrize("how", DATA_CASES)
def test_a_broken_data_file_is_one_line_naming_it(how, world, tmp_path, capsys):
    root = corrupt(world, tmp_path, how)
    argv = ["--task", "mult2x2", "--data", str(root), "--out", str(tmp_path / "new"), *TINY]
    line = refused(train.main, argv, capsys)
    assert str(root / "mult2x2") in line
    assert not (tmp_path / "new" / "ckpt.pt").exists()


def checkpoint_case(world, tmp_path, how):
    ckpt = torch.load(world / "run" / "ckpt.pt", weights_only=True)
    path = tmp_path / "bad.pt"
    if how == "no task":
        del ckpt["task"]
    elif how == "block_size inflated":
        ckpt["model_config"]["block_size"] = 20_000_000
    elif how == "n_head not a number":
        ckpt["model_config"]["n_head"] = "two"
    elif how == "a tensor missing":
        del ckpt["model"]["lm_head.weight"]
    if how == "not a pickle":
        path.write_bytes(b"\x00junk" * 10)
    elif how == "a hostile pickle":
        path.write_bytes(pickle.dumps(Path("/"), protocol=2))       # an object weights_only refuses
    else:
        torch.save(ckpt, path)
    return path


CHECKPOINTS = [("no task", "no task"), ("block_size inflated", "transformer.wpe.weight"),
               ("n_head not a number", "model_config"), ("a tensor missing", "lm_head.weight"),
               ("not a pickle", "not a train.py checkpoint"),
               ("a hostile pickle", "refused, not a plain checkpoint")]


@pytest.mark.parametrize("how, culprit", CHECKPOINTS, ids=[h for h, _ in CHECKPOINTS])
def test_a_broken_checkpoint_is_one_line_and_builds_nothing(how, culprit, world, tmp_path, capsys):
    path = checkpoint_case(world, tmp_path, how)
    line = refused(evaluation.main, ["--ckpt", str(path), "--limit", "2"], capsys)
    assert culprit in line and str(path) in line and "weights_only=False" not in line


def test_resume_needs_a_checkpoint_with_its_optimizer(world, tmp_path, capsys):
    shutil.copytree(world / "run", tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    del ckpt["optimizer"]
    torch.save(ckpt, tmp_path / "run" / "ckpt.pt")
    argv = ["--task", "mult2x2", "--data", str(world / "data"), "--out", str(tmp_path / "run"), "--resume",
            "--epochs", "2"]
    assert "no optimizer" in refused(train.main, argv, capsys)


EVAL_FLAGS = [(["--batch-size", "0"], "--batch-size"), (["--limit", "-3"], "--limit"),
              (["--warmup", "-1"], "--warmup"), (["--device", "tpu"], "--device"),
              (["--n-remove", "-2"], "--n-remove")]


@pytest.mark.parametrize("flags, culprit", EVAL_FLAGS, ids=[" ".join(f) for f, _ in EVAL_FLAGS])
def test_a_bad_evaluation_flag(flags, culprit, world, capsys):
    assert culprit in refused(evaluation.main, ["--ckpt", str(world / "run" / "best.pt"), *flags], capsys)


def test_eval_warmup_zero_is_legitimate(world, tmp_path):
    evaluation.main(["--ckpt", str(world / "run" / "best.pt"), "--warmup", "0", "--limit", "3",
                     "--json", str(tmp_path / "r.json")])
    assert json.loads((tmp_path / "r.json").read_text())[0]["examples"] == 3


def test_a_figure_goes_to_a_png_file_not_a_folder(world, tmp_path, capsys):
    assert "--out" in refused(evaluation.main, ["--plot", str(world / "run"), "--out", str(tmp_path)], capsys)
    assert not tmp_path.with_suffix(".png").exists()


@pytest.mark.parametrize("name", ["r.txt", "missing/r.json", "."])
def test_eval_json_goes_to_a_json_file_in_a_folder_checked_before_evaluating(name, world, tmp_path, capsys):
    before = fingerprint(world / "run")
    argv = ["--ckpt", str(world / "run" / "best.pt"), "--json", str(tmp_path / name)]
    assert "--json" in refused(evaluation.main, argv, capsys)
    assert list(tmp_path.iterdir()) == [] and fingerprint(world / "run") == before
    line = refused(evaluation.main, [*argv[:3], str(world / "run" / "ckpt.pt")], capsys)   # a run's file
    assert "--json" in line and fingerprint(world / "run") == before


DEVICES = [("cuda", 0, "sees no CUDA GPU"), ("cuda:3", 2, "has 2 CUDA GPU(s)"),
           ("mps", 0, "has no MPS device")]


@pytest.mark.parametrize("device, gpus, culprit", DEVICES)
def test_a_device_torch_cannot_use_is_one_line(device, gpus, culprit, world, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    argv = ["--task", "mult2x2", "--data", str(world / "data"), "--out", str(tmp_path / "new"), *TINY,
            "--device", device]
    assert f"--device {device}: this" in refused(train.main, argv, capsys) and not (tmp_path / "new").exists()
    line = refused(evaluation.main, ["--ckpt", str(world / "run" / "best.pt"), "--device", device], capsys)
    assert f"--device {device}: this" in line and culprit in line


def test_a_log_cut_by_a_kill_is_read_to_its_last_whole_record_and_a_bad_line_is_named(world, tmp_path):
    whole = (world / "run" / "metrics.jsonl").read_bytes()
    (tmp_path / "metrics.jsonl").write_bytes(whole[:-20])         # a kill in the middle of the last record
    assert evaluation.read_metrics(tmp_path) == evaluation.read_metrics(world / "run")[:-1]
    (tmp_path / "metrics.jsonl").write_bytes(whole[:-20] + b"\n")
    last = len(whole.splitlines())
    with pytest.raises(data.DataError, match=f"{tmp_path / 'metrics.jsonl'}:{last}: not a JSON record"):
        evaluation.read_metrics(tmp_path)


def test_a_missing_text_file_and_an_ablation_row_matching_nothing_are_one_line(world, tmp_path, capsys):
    argv = ["--ckpt", str(world / "run" / "best.pt"), "--text", str(tmp_path / "x.txt")]
    line = refused(evaluation.main, argv, capsys)
    assert f"{tmp_path / 'x.txt'}: no such file" in line
    pytest.importorskip("matplotlib")
    with pytest.raises(SystemExit) as e:
        evaluation.main(["--ablation", f"a={world / 'run'}", f"b={tmp_path / 'none*'}", "--out",
                         str(tmp_path / "a.png")])
    out, err = capsys.readouterr()
    assert "--ablation 'b=" in str(e.value.code) and out == "" and not (tmp_path / "a.png").exists()


@pytest.mark.parametrize("flag", ["--out", "--data"])
def test_train_folders_that_are_files_are_one_line(flag, world, tmp_path, capsys):
    before = fingerprint(world / "run")
    argv = ["--task", "mult2x2", "--data", str(world / "data"), "--out", str(tmp_path / "new"), *TINY,
            flag, str(world / "run" / "ckpt.pt")]
    assert f"{flag} {world / 'run' / 'ckpt.pt'}: a file, not a folder" in refused(train.main, argv, capsys)
    assert fingerprint(world / "run") == before and not (tmp_path / "new").exists()


@pytest.mark.parametrize("task", ["mult2x2", "twohop"])
def test_data_never_writes_over_a_run_folder_or_a_file(task, world, capsys):
    before = fingerprint(world / "run")
    line = refused(data.main, ["--task", task, "--out", str(world / "run")], capsys)
    assert f"{world / 'run'}: holds args.json, best.pt, ckpt.pt, not a dataset" in line
    line = refused(data.main, ["--task", task, "--out", str(world / "run" / "args.json")], capsys)
    assert "a file, not a dataset folder" in line and fingerprint(world / "run") == before


def test_data_writes_over_a_dataset_folder(tmp_path):
    out = tmp_path / "mult2x2"
    for train_size in ("5", "6"):                                 # the second time over the first's folder
        (out / ".DS_Store").write_bytes(b"finder") if out.exists() else None
        data.main(["--task", "mult2x2", "--out", str(out), "--train-size", train_size, "--val-size", "3",
                   "--test-size", "3"])
        assert data.load_meta(out)["splits"]["train"]["examples"] == int(train_size)


DATA_FLAGS = [(["--task", "mult2x2", "--train-size", "0"], "--train-size"),
              (["--task", "mult2x2", "--seed", "-1"],
              "--seed"), (["--task", "mult1x1"], "mult1x1"),
              (["--task", "mult2x2", "--val-size", "x"], "--val-size")]


@pytest.mark.parametrize("flags, culprit", DATA_FLAGS, ids=[" ".join(f) for f, _ in DATA_FLAGS])
def test_a_bad_data_flag(flags, culprit, tmp_path, capsys):
    assert culprit in refused(data.main, [*flags, "--out", str(tmp_path / "d")], capsys)
    assert not (tmp_path / "d").exists()


def test_index_writes_only_when_asked_and_reports_a_broken_folder(tmp_path, monkeypatch, capsys):
    index = ROOT / "results" / "index.csv"
    before = index.read_bytes()
    for flags in (["--help"], ["--bogus"]):
        subprocess.run([sys.executable, "results/index.py", *flags], cwd=ROOT, capture_output=True,
                       timeout=120)
        assert index.read_bytes() == before
    sys.path.insert(0, str(ROOT / "results"))
    import index as results_index
    broken = tmp_path / "mult3x3" / "seeds" / "preset" / "seed00"
    broken.mkdir(parents=True)
    (broken / "args.json").write_text("{")
    monkeypatch.setattr(results_index, "HERE", tmp_path)
    assert "mult3x3/seeds/preset/seed00,unreadable: JSONDecodeError" in results_index.index_text()
    assert "seed00: skipped, JSONDecodeError" in capsys.readouterr().err


def test_bench_model_checks_its_arguments():
    done = subprocess.run([sys.executable, "benchmarks/bench_model.py", "--examples", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--examples" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr


TORCH_SAVE_FAILED = RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed")


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), TORCH_SAVE_FAILED])
def test_a_failed_write_leaves_no_temporary_file_and_names_the_file(error, tmp_path):
    """A full disk: os errors, and torch.save's RuntimeError from inside its writer."""
    def fail(f):
        f.write(b"partial")
        raise error
    with pytest.raises(data.DataError, match="ckpt.pt: could not be written"):
        data.write_atomic(tmp_path / "ckpt.pt", fail)
    assert list(tmp_path.iterdir()) == []


def test_a_run_killed_and_resumed_logs_every_record_once(world, tmp_path):
    """kill -9 at a moment that lands between checkpoints, then --resume: the log holds the uninterrupted
    run's records, none twice."""
    argv = [sys.executable, "train.py", "--task", "mult2x2", "--data", str(world / "data"), *TINY,
            "--batch-size", "32", "--epochs", "3", "--save-every", "7", "--log-every", "1"]
    whole = subprocess.run([*argv, "--out", str(tmp_path / "whole")], cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    killed = subprocess.Popen([*argv, "--out", str(tmp_path / "killed")], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    for line in killed.stdout:                                    # past a step checkpoint, before the end
        if line.startswith("step 25 "):
            break
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    resumed = subprocess.run([*argv, "--out", str(tmp_path / "killed"), "--resume"], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    records = {run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").open()]
               for run in ("whole", "killed")}
    strip = lambda r: {k: v for k, v in r.items() if k not in ("minutes", "tokens_per_s",
                                                               "val_examples_per_s")}
    assert [strip(r) for r in records["killed"]] == [strip(r) for r in records["whole"]]


def test_data_killed_while_regenerating_leaves_the_old_dataset_or_the_new_one(tmp_path):
    """kill -9 while data.py writes mult3x3 again with another seed: the folder is then one whole dataset, its
    meta.json and every .bin from the same generation."""
    out = tmp_path / "mult3x3"
    sizes = ["--train-size", "600000", "--val-size", "100", "--test-size", "100"]
    assert subprocess.run([sys.executable, "data.py", "--task", "mult3x3", "--out", str(out), *sizes,
                           "--seed", "0"],
                          cwd=ROOT, capture_output=True, timeout=300).returncode == 0
    for delay in (0.5, 1.2, 2.0):
        writing = subprocess.Popen([sys.executable, "data.py", "--task", "mult3x3", "--out", str(out), *sizes,
                                    "--seed", "1"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(delay)
        writing.kill()
        writing.wait()
        meta = data.load_meta(out)
        for split in ("train", "val", "test"):
            data.load_split(out, split, meta)                      # sizes, vocabulary: one generation
        fresh = tmp_path / f"fresh-{meta['seed']}"
        if not fresh.exists():
            data.generate_multiplication("mult3x3", fresh, {"train": 600000, "val": 100, "test": 100},
                                         meta["seed"])
        assert (out / "test.bin").read_bytes() == (fresh / "test.bin").read_bytes()
        assert (out / "train.bin").read_bytes() == (fresh / "train.bin").read_bytes()
