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
