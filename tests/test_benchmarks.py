"""benchmarks/bench_gpu.py --smoke: the GPU check's code, run on tiny sizes on the CPU, so that it keeps working
while no GPU is at hand."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_gpu_smoke_runs_every_part_on_the_cpu(tmp_path):
    out = tmp_path / "cpu.json"
    done = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--smoke", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["tasks"]) == {"mult4x4", "mult5x5"}
    for task, rows in result["tasks"].items():
        for mode in ("fp32 (TF32)", "bf16"):                             # compile runs on a GPU only
            assert rows[mode]["tokens_per_s"] > 0 and rows[mode]["tokens_per_step"] > 0
            assert 0 < rows[mode]["hours_to_end_of_removal"] < rows[mode]["hours_all_epochs"]
        decoded = rows["decode"]
        assert decoded["zero CoT"]["new_tokens"] < decoded["full CoT"]["new_tokens"]
    assert result["tasks"]["mult5x5"]["fp32 (TF32)"]["removal_ends_at_epoch"] > \
        result["tasks"]["mult4x4"]["fp32 (TF32)"]["removal_ends_at_epoch"]   # a longer CoT: later, Delta = 8
    parity = result["parity"]
    assert parity["steps"] == 3 and parity["max_relative_gap_fp32"] == 0.0   # the same seed and batches, one CPU
    assert "mult4x4  decoding batch 1" in done.stdout and "parity, 3 steps" in done.stdout
    assert {name: p["status"] for name, p in result["parts"].items()} == {
        **{f"{t} {m}": "done" for t in ("mult4x4", "mult5x5") for m in ("fp32 (TF32)", "bf16")},
        **{f"{t} bf16 + compile": "skipped" for t in ("mult4x4", "mult5x5")},
        "mult4x4 decode": "done", "mult5x5 decode": "done", "parity": "done"}


def load_bench_gpu():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_budget_cut_short_still_writes_what_was_measured_and_names_what_was_skipped(tmp_path, monkeypatch):
    bench = load_bench_gpu()
    clock = iter(range(0, 10 ** 6, 100))                               # every reading 100 s later than the last
    monkeypatch.setattr(bench.time, "time", lambda: next(clock))
    bench.main(["--smoke", "--budget", "350", "--out", str(tmp_path / "cut.json")])
    parts = json.loads((tmp_path / "cut.json").read_text())["parts"]
    done = [name for name, p in parts.items() if p["status"] == "done"]
    skipped = {name: p["reason"] for name, p in parts.items() if p["status"] == "skipped" and "budget" in p["reason"]}
    assert done and skipped and "parity" in skipped and all("of the 350 s budget spent" in r for r in skipped.values())


def test_a_part_that_fails_leaves_the_other_parts_figures(tmp_path, monkeypatch):
    bench = load_bench_gpu()
    monkeypatch.setattr(bench, "decode", lambda *a: 1 / 0)
    bench.main(["--smoke", "--out", str(tmp_path / "failed.json")])
    result = json.loads((tmp_path / "failed.json").read_text())
    assert result["parts"]["mult4x4 decode"] == {"status": "failed", "error": "ZeroDivisionError: division by zero"}
    assert result["parts"]["parity"]["status"] == "done" and result["tasks"]["mult5x5"]["bf16"]["tokens_per_s"] > 0
