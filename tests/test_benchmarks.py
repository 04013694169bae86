"""benchmarks/bench_gpu.py --smoke: the GPU check's code, run on tiny sizes on the CPU, so that it keeps
working while no GPU is at hand."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

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
            assert rows[mode]["zero_cot_ms_per_step"] > 0 and rows[mode]["first_step_s"] > 0
            assert 0 < rows[mode]["hours_to_end_of_removal"] < rows[mode]["hours_all_epochs"]
        assert rows["loop"]["batches_per_s"] > 0 and rows["loop"]["timed_batches"] == 4
        assert rows["loop"]["sync_warnings"] is None                    # counted on a GPU only
        decoded = rows["decode"]
        assert decoded["zero CoT"]["new_tokens"] < decoded["full CoT"]["new_tokens"]
    assert result["tasks"]["mult5x5"]["fp32 (TF32)"]["removal_ends_at_epoch"] > \
        result["tasks"]["mult4x4"]["fp32 (TF32)"]["removal_ends_at_epoch"]   # a longer CoT: later, Delta = 8
    parity = result["parity"]
    # the same seed and batches, one CPU
    assert parity["steps"] == 3 and parity["max_relative_gap_fp32"] == 0.0
    assert "mult4x4  decoding batch 1" in done.stdout and "parity, 3 steps" in done.stdout
    assert {name: p["status"] for name, p in result["parts"].items()} == {
        **{f"{t} {m}": "done" for t in ("mult4x4", "mult5x5") for m in ("fp32 (TF32)", "bf16")},
        **{f"{t} bf16 + compile": "skipped" for t in ("mult4x4", "mult5x5")},
        "mult4x4 loop": "done", "mult5x5 loop": "done", "mult4x4 decode": "done", "mult5x5 decode": "done",
        "parity": "done"}


def load_bench_gpu():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_budget_cut_short_still_writes_what_was_measured_and_names_what_was_skipped(tmp_path, monkeypatch):
    bench = load_bench_gpu()
    # every reading 100 s later than the last
    clock = iter(range(0, 10 ** 6, 100))
    monkeypatch.setattr(bench.time, "time", lambda: next(clock))
    bench.main(["--smoke", "--budget", "350", "--out", str(tmp_path / "cut.json")])
    parts = json.loads((tmp_path / "cut.json").read_text())["parts"]
    done = [name for name, p in parts.items() if p["status"] == "done"]
    skipped = {name: p["reason"] for name, p in parts.items()
               if p["status"] == "skipped" and "budget" in p["reason"]}
    assert done and skipped and "parity" in skipped
    assert all("of the 350 s budget spent" in reason for reason in skipped.values())


def test_a_part_that_fails_leaves_the_other_parts_figures(tmp_path, monkeypatch):
    bench = load_bench_gpu()
    monkeypatch.setattr(bench, "decode", lambda *a: 1 / 0)
    bench.main(["--smoke", "--out", str(tmp_path / "failed.json")])
    result = json.loads((tmp_path / "failed.json").read_text())
    assert result["parts"]["mult4x4 decode"] == {"status": "failed",
                                                 "error": "ZeroDivisionError: division by zero"}
    assert result["parts"]["parity"]["status"] == "done"
    assert result["tasks"]["mult5x5"]["bf16"]["tokens_per_s"] > 0


def test_the_hours_follow_the_schedule_from_full_cot_to_zero_cot():
    """Explicit epochs at the full-CoT step time, then a time falling linearly with s(t), then zero CoT's."""
    bench = load_bench_gpu()
    args = SimpleNamespace(batch_size=808, pretrain_epochs=1, remove_start_from=0, delta=8,
                           epochs=5)                           # T = 1,000 batches; removal ends at epoch 3
    hours = bench.plan_hours(args, SimpleNamespace(longest_train_cot=16), step=3.6, zero_step=1.8)
    assert hours["removal_ends_at_epoch"] == 3.0
    assert hours["hours_to_end_of_removal"] == pytest.approx(1.0 + 2 * 0.75, abs=0.05)   # 1 h, 2 x 0.75 h
    assert hours["hours_all_epochs"] == pytest.approx(2.5 + 2 * 0.5, abs=0.05)           # then 2 x 0.5 h


@pytest.mark.skipif(not (ROOT / "offline" / "wheels" / "common").is_dir(),
                    reason="needs offline/ from benchmarks/prepare_offline.sh (.ci/run prepares it)")
def test_the_documented_gpu_call_runs_offline_in_a_fresh_clone(tmp_path):
    """docs/reference.md's command, benchmarks/gpu_call.sh, with --smoke: a fresh clone with the prepared
    offline/ in it and no TIKTOKEN_CACHE_DIR of ours; no part fails, and the reference's runs offline."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    shutil.copytree(ROOT / "offline", clone / "offline", ignore=shutil.ignore_patterns("site"))
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "PYTHONPATH")}
    done = subprocess.run(["bash", "benchmarks/gpu_call.sh", "--smoke"], cwd=clone, capture_output=True,
                          text=True, timeout=900, env={**env, "OUT": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert all(p["status"] in ("done", "skipped") for p in result["parts"].values()), result["parts"]
    assert result["parts"]["mult4x4 reference"]["status"] == "done"           # transformers 4.x, offline
    assert result["tasks"]["mult4x4"]["loop"]["x_reference_fp32"] > 0
