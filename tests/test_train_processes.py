"""train.py as real processes: data parallel under torchrun (gloo on the CPU), a SIGKILL at a random step."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--log-every", "1",
        "--fig3-examples", "0"]


def read(run):
    """The log's complete lines: a line still being written (or torn by a kill) has no newline yet."""
    text = (run / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]


def losses(run):
    """{step: loss}; where a killed run logged a step twice, the resumed run's line is the one that counts."""
    return {m["step"]: m["loss"] for m in read(run) if "loss" in m}


def resets(run):
    """The optimizer resets, and the adaptive gate's advances and rollbacks with the measures behind them."""
    return [m for m in read(run) if m.get("event") in ("optimizer_reset", "advance", "rollback")]


def torchrun(args, processes=2):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "train.py", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def assert_close(curve, other):
    assert curve.keys() == other.keys()
    worst = max(abs(curve[step] - other[step]) for step in curve)
    assert worst <= 5e-4, f"loss curves differ by up to {worst}"            # logged to 4 decimals


@pytest.mark.parametrize("schedule", ["linear", "adaptive"])
def test_two_processes_follow_the_one_process_run(schedule, data_root, tmp_path):
    """Global batch 32 as 2 x 16 under torchrun: the same losses, optimizer resets and schedule as one process
    with batch 32; each run's checkpoint then resumes under the other process count."""
    common = ["--task", "mult3x3", "--data", str(data_root), "--batch-size", "32", "--delta", "8",
              "--schedule", schedule, "--gate-min-steps", "3", "--gate-max-steps", "5", "--remove-by-epoch",
              "2", "--pretrain-epochs", "0", "--smoothing-lambda", "0.7", "--device", "cpu", "--stop-at-val",
              "0", *TINY]
    one, two = tmp_path / "one", tmp_path / "two"
    train.main([*common, "--out", str(one), "--epochs", "2"])
    torchrun([*common, "--out", str(two), "--epochs", "2"])
    assert len(losses(one)) == 40                                          # T = 20 batches, every step logged
    assert_close(losses(one), losses(two))
    assert resets(one) == resets(two) and len(resets(one)) >= 5
    saved = [torch.load(run / "ckpt.pt", weights_only=True) for run in (one, two)]
    assert saved[0]["schedule"]["to_remove"] == saved[1]["schedule"]["to_remove"] > 0
    # the 3x3 preset's carry probe: averaged too
    if schedule == "adaptive":
        probe = [ckpt["additions"]["probe"]["weight"] for ckpt in saved]
        assert torch.allclose(*probe, atol=1e-4) and not torch.equal(probe[0], torch.zeros_like(probe[0]))

    swapped = {run: tmp_path / f"{run.name}-resumed" for run in (one, two)}
    for run, copy in swapped.items():
        shutil.copytree(run, copy)
    torchrun([*common, "--out", str(swapped[one]), "--epochs", "3", "--resume"])   # 1 process -> 2
    train.main([*common, "--out", str(swapped[two]), "--epochs", "3", "--resume"])  # 2 processes -> 1
    third_epoch = [{s: v for s, v in losses(run).items() if s > 40} for run in swapped.values()]
    assert len(third_epoch[0]) == 20
    assert_close(*third_epoch)
    assert resets(swapped[one]) == resets(swapped[two])


def start(args, out):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "train.py", *args, "--out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_at(process, run, step):
    """SIGKILL the run once its log shows `step` (it may have gone a little further by then)."""
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if (run / "metrics.jsonl").exists() and any(m.get("step",
                                                          -1) >= step for m in read(run) if "loss" in m):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    ended = process.wait(timeout=60)
    assert ended == -signal.SIGKILL, f"the run ended before step {step}: {process.stderr.read()}"


@pytest.mark.parametrize("mode, schedule",
                         [("explicit", "linear"), ("stepwise", "linear"), ("stepwise", "adaptive")])
def test_sigkill_then_resume_ends_bit_for_bit_like_an_uninterrupted_run(mode, schedule, data_root, tmp_path):
    T, epochs, every = 20, 6, 6
    common = ["--task", "mult3x3", "--data", str(data_root), "--batch-size", "32", "--epochs", str(epochs),
              "--mode", mode, "--schedule", schedule, "--delta", "4", "--gate-min-steps", "3",
              "--remove-by-epoch", "4", "--pretrain-epochs", "1", "--save-every", str(every),
              "--smoothing-lambda", "0.7", "--dropout", "0.1", "--val-limit", "10", "--device", "cpu", *TINY]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert start(common, whole).wait(timeout=300) == 0
    # A random step after the first step checkpoint, in the middle of an epoch of the removal schedule.
    step = random.choice([s for s in range(every + 1, 4 * T) if s % T and (s > T or mode == "explicit")])
    kill_at(start(common, killed), killed, step)
    saved = torch.load(killed / "ckpt.pt", weights_only=True)["schedule"]
    assert 0 < saved["step"] < epochs * T, f"killed at step {step}"
    resumed = start([*common, "--resume"], killed)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    ends = [torch.load(run / "ckpt.pt", weights_only=True) for run in (whole, killed)]
    for name, weights in ends[0]["model"].items():
        assert torch.equal(weights, ends[1]["model"][name]), f"{name} differs after a kill at step {step}"
    assert ends[0]["schedule"] == ends[1]["schedule"]
    assert losses(whole) == losses(killed)


def test_two_processes_train_on_from_a_checkpoint_trained_with_a_probe(data_root, tmp_path):
    """--init from a run trained with the carry probe, under torchrun without it: the GPT's weights carry over
    (the probe is the old run's own, in its additions) and everything trains."""
    common = ["--task", "mult3x3", "--data", str(data_root), "--batch-size", "32", "--epochs", "1",
              "--device", "cpu", "--val-limit", "5", "--schedule", "linear", *TINY]
    train.main([*common, "--out", str(tmp_path / "probe"), "--mode", "nocot", "--carry-weight", "1"])
    torchrun([*common, "--out", str(tmp_path / "two"), "--init", str(tmp_path / "probe" / "ckpt.pt"),
              "--carry-weight", "0"])
    before, after = (torch.load(tmp_path / run / "ckpt.pt", weights_only=True) for run in ("probe", "two"))
    assert "probe" in before["additions"] and "probe" not in after["additions"]
    assert not torch.equal(before["model"]["lm_head.weight"], after["model"]["lm_head.weight"])


COUNT_ALL_REDUCES = """
import json, os, sys
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
import train
rounds, steps, real_ddp, real_step = [], [], train.DistributedDataParallel, train.optimizer_step

def counted_ddp(*args, **kwargs):
    forward = real_ddp(*args, **kwargs)
    forward.register_comm_hook(None, lambda group, bucket: (rounds.append(bucket.is_last()),
                                                            allreduce_hook(group, bucket))[1])
    return forward

train.DistributedDataParallel = counted_ddp
train.optimizer_step = lambda *args: (steps.append(1), real_step(*args))
train.main(sys.argv[2:])
if os.environ["RANK"] == "0":
    open(sys.argv[1], "w").write(json.dumps({"all_reduces": sum(rounds), "optimizer_steps": len(steps)}))
"""


def test_accumulation_all_reduces_gradients_once_per_optimizer_step(data_root, tmp_path):
    """--accumulate 4 under torchrun (gloo): DDP's no_sync() on all but the last batch of a window, so 20
    batches make 5 rounds of all-reduce, not 20 (counted with a DDP communication hook)."""
    (tmp_path / "count.py").write_text(COUNT_ALL_REDUCES)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(tmp_path / "count.py"), str(tmp_path / "count.json"), "--task", "mult3x3", "--data",
               str(data_root), "--out", str(tmp_path / "run"), "--batch-size", "32", "--epochs", "1",
               "--mode", "explicit", "--accumulate", "4", "--val-limit", "5", "--device", "cpu", *TINY]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "count.json").read_text()) == {"all_reduces": 5, "optimizer_steps": 5}
