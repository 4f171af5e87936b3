"""Faults a long run meets: a second process on the run, a full disk, a NaN, a foreign checkpoint."""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from facegen import checkpoint as ckpt
from facegen import steps
from facegen.config import load_config
from facegen.train import train

TINY = ["model.base_channels=4", "train.batch_size=4", "data.split=all", "data.resolution=32"]
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _config(source, *extra):
    return load_config("dcgan32", overrides=[f"data.source={source}", *TINY, *extra])


def test_a_second_train_on_a_run_in_progress_is_refused_naming_the_pid(celeba_dir, tmp_path, capsys):
    out = tmp_path / "run"
    command = ["train", "--preset", "dcgan32", "--data", str(celeba_dir), "--set", "model.base_channels=4",
               "--set", "train.batch_size=4", "--set", "data.split=all", "--out", str(out), "--quiet"]
    first = subprocess.Popen([sys.executable, "-m", "facegen", *command, "--steps", "100000"], env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        code, _, err = run_cli(capsys, "train", "--resume", "--out", str(out), "--steps", "5", "--quiet")
        assert code == 2 and f"is being trained by process {first.pid}" in err and len(err.strip().splitlines()) == 1
    finally:
        first.kill()
        first.wait()
    # SIGKILL leaves the PID in the lock file; the kernel released the lock, so the next train takes it over.
    assert (out / "train.lock").read_text() == str(first.pid) and ckpt.latest(out) is None
    code, _, err = run_cli(capsys, *command, "--steps", "1")
    assert code == 0 and f"taking over the lock of process {first.pid}" in err


def test_a_stale_lock_is_taken_over_with_a_warning(celeba_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "train.lock").write_text("999999")  # a process that died without releasing it
    train(_config(celeba_dir, "train.steps=1"), out, progress=False)
    assert "taking over the lock of process 999999" in capsys.readouterr().err
    assert (out / "train.lock").read_text() == ""  # released cleanly


def test_a_run_refused_before_it_starts_leaves_no_folder(tmp_path):
    with pytest.raises(ValueError, match="has no checkpoint to resume from"):
        train(_config("synthetic:50"), tmp_path / "never", resume=True, progress=False)
    assert not (tmp_path / "never").exists()


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_how_much_is_needed(celeba_dir, tmp_path, monkeypatch):
    writes = []

    def full_after_first(path, data):
        writes.append(path)
        if len(writes) > 1:
            Path(path).write_bytes(data[:10])  # part of the file made it before the disk filled
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        Path(path).write_bytes(data)

    monkeypatch.setattr(ckpt, "write_bytes_durably", full_after_first)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"no room to write ckpt-0000004.safetensors in .*checkpoints \(No space left on device; "
                                         r"it needs [0-9.]+ MB\): the earlier checkpoints there are intact"):
        train(_config(celeba_dir, "train.steps=6", "train.checkpoint_every=2"), out, progress=False)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["ckpt-0000002.safetensors"]  # no temporary file left
    assert ckpt.load(out).state["step"] == 2
    monkeypatch.undo()
    train(load_config("dcgan32", overrides=[f"data.source={celeba_dir}", *TINY, "train.steps=6", "train.checkpoint_every=2"]),
          out, resume=True, progress=False)
    assert ckpt.load(out).state["step"] == 6


def _inject_nan(monkeypatch, at_steps: set[int], times: int):
    """Make the GAN step return a NaN loss (and poison G) at the given steps, `times` times in all."""
    real, left = steps.STEPS["dcgan"], [times]

    def poisoned(nets, opt, x_real, ctx):
        stats = real(nets, opt, x_real, ctx)
        if ctx.step in at_steps and left[0] > 0:
            left[0] -= 1
            with torch.no_grad():
                next(nets["G"].parameters()).fill_(float("nan"))
            stats["loss_g"] = torch.tensor(float("nan"))
        return stats

    monkeypatch.setitem(steps.STEPS, "dcgan", poisoned)


def test_a_nan_rolls_back_to_the_last_good_state_with_smaller_learning_rates(celeba_dir, tmp_path, monkeypatch, capsys):
    _inject_nan(monkeypatch, {5}, times=1)
    out = train(_config(celeba_dir, "train.steps=8", "train.checkpoint_every=4", "train.log_every=1"), tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rollbacks = [r for r in records if "rollback_from" in r]
    assert rollbacks == [{"step": 4, "rollback_from": 5, "retry": 1, "lr_d": 1e-4, "lr_g": 1e-4}]
    assert [r["step"] for r in records if "loss_d" in r] == list(range(1, 9))  # the failed step's record was dropped
    state = ckpt.load(out)
    assert state.state["step"] == 8 and all(torch.isfinite(t).all() for t in state.nets["G"].values())
    assert state.state["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(1e-4)  # kept by the checkpoint
    assert "non-finite loss at step 5; rolled back to step 4" in capsys.readouterr().err


def test_a_nan_that_keeps_coming_stops_after_the_retries_naming_the_step(celeba_dir, tmp_path, monkeypatch):
    _inject_nan(monkeypatch, {2}, times=100)
    with pytest.raises(ValueError, match="training diverged: a non-finite loss at step 2 after 2 rollbacks"):
        train(_config(celeba_dir, "train.steps=4", "train.nan_retries=2"), tmp_path / "run", progress=False)


def test_a_checkpoint_of_another_model_in_the_run_is_refused_naming_both(celeba_dir, tmp_path):
    run = train(_config(celeba_dir, "train.steps=1"), tmp_path / "run", progress=False)
    other = train(_config(celeba_dir, "train.steps=1", "model.z_dim=8"), tmp_path / "other", progress=False)
    (ckpt.latest(run)).unlink()
    os.replace(ckpt.latest(other), run / "checkpoints" / "ckpt-0000001.safetensors")
    with pytest.raises(ValueError, match=r"holds a dcgan model .*'z_dim': 8.* but the run's config builds a dcgan model .*'z_dim': 100"):
        train(_config(celeba_dir, "train.steps=2"), run, resume=True, progress=False)
