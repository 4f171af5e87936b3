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
    first = subprocess.Popen([sys.executable, "-m", "facegen", *command, "--steps", "100000"], env={**os.environ, "PYTHONPATH": SRC},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    from facegen import files

    real, checkpoints = files.write_bytes_atomic, []

    def disk_full_at_second_checkpoint(path, data):
        if Path(path).name.startswith("ckpt-"):
            checkpoints.append(path)
            if len(checkpoints) > 1:  # the data is written, then the disk is full when it is flushed to it
                with monkeypatch.context() as patch:
                    patch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
                    return real(path, data)
        return real(path, data)

    monkeypatch.setattr(files, "write_bytes_atomic", disk_full_at_second_checkpoint)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"no room to write ckpt-0000004.safetensors in .*checkpoints \(No space left on device; "
                                         r"it needs [0-9.]+ MB\): the earlier checkpoints there are intact"):
        train(_config(celeba_dir, "train.steps=6", "train.checkpoint_every=2"), out, progress=False)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["ckpt-0000002.safetensors"]  # no temporary file left
    assert ckpt.load(out).state["step"] == 2
    monkeypatch.undo()
    train(_config(celeba_dir, "train.steps=6", "train.checkpoint_every=2"), out, resume=True, progress=False)
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


# Checkpoints of a few MB, written every step: long enough in the writing to be killed in mid-write.
KILLED = [*TINY, "model.base_channels=32", "train.checkpoint_every=1", "train.log_every=1"]


def _kill_and_resume(source, out: Path, kills: int, steps: int, seed: int) -> tuple[int, int]:
    """SIGKILL `facegen train` `kills` times, at random moments and (every other kill) in mid-checkpoint-write,
    resuming after each; then let it finish.
    Returns (kills that landed while training ran, kills that left a half-written checkpoint behind)."""
    import random

    rng = random.Random(seed)
    command = [sys.executable, "-m", "facegen", "train", "--preset", "dcgan32", "--data", str(source), "--steps", str(steps),
               *[arg for setting in KILLED for arg in ("--set", setting)],
               "--out", str(out), "--quiet"]
    resume = [sys.executable, "-m", "facegen", "train", "--resume", "--out", str(out), "--steps", str(steps), "--quiet"]
    env = {**os.environ, "PYTHONPATH": SRC}
    landed = torn = 0
    for k in range(kills):
        before = ckpt.latest(out)
        process = subprocess.Popen(resume if before is not None else command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while ckpt.latest(out) == before and process.poll() is None:  # wait until it trains (a new checkpoint) ...
            time.sleep(0.005)
        if k % 2:  # ... then kill it while it writes a checkpoint (its temporary file exists) ...
            while not any(out.glob("checkpoints/.*.tmp*")) and process.poll() is None:
                pass
        else:  # ... or at a random moment
            time.sleep(rng.uniform(0.0, 0.5))
        if process.poll() is None:
            landed += 1
        process.kill()
        process.wait()
        torn += any(out.glob("checkpoints/.*.tmp*"))
        if ckpt.latest(out) is not None:
            assert ckpt.load(out).state["step"] >= 1  # the newest checkpoint always loads
        if ckpt.latest(out) is not None and ckpt.read_state(out)["step"] == steps:
            break
    finish = subprocess.run(resume if ckpt.latest(out) is not None else command, env=env, capture_output=True, text=True)
    assert finish.returncode == 0, finish.stderr
    return landed, torn


def _assert_same_weights(a: Path, b: Path) -> None:
    first, second = ckpt.load(a), ckpt.load(b)
    assert first.state["step"] == second.state["step"]
    for role in first.nets:
        for key, value in first.nets[role].items():
            assert torch.equal(value, second.nets[role][key]), f"{role}.{key}"


@pytest.mark.parametrize("kills, steps", [pytest.param(3, 40, id="short"), pytest.param(20, 200, id="20-kills", marks=pytest.mark.slow)])
def test_sigkill_at_random_moments_loses_nothing_and_ends_where_an_uninterrupted_run_ends(celeba_dir, tmp_path, kills, steps):
    landed, torn = _kill_and_resume(celeba_dir, tmp_path / "killed", kills, steps, seed=kills)
    straight = train(load_config("dcgan32", overrides=[f"data.source={celeba_dir}", *KILLED, f"train.steps={steps}"]),
                     tmp_path / "straight", progress=False)
    _assert_same_weights(straight, tmp_path / "killed")
    records = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, steps + 1))  # no torn, missing or repeated record
    assert landed >= 1 and (kills < 20 or torn >= 3)  # the long run must also have hit checkpoint writes
    print(f"kills survived: {landed} of {landed} that landed while training ({torn} inside a checkpoint write)")


def _png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims width x height: Pillow sees the size before decoding anything."""
    import io
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8  # after the signature: length (4), b'IHDR' (4), width (4), height (4), ...
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", zlib.crc32(bytes(data[ihdr + 4 : ihdr + 21])))
    return bytes(data)


def test_decompression_bombs_in_a_data_folder_are_skipped_unread_and_counted(tmp_path):
    from PIL import Image

    from facegen.data import prepare

    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 40), (10 * i, 50, 90)).save(folder / f"face{i}.png")
    (folder / "bomb-warns.png").write_bytes(_png_claiming(10_000, 10_000))  # 100 MP: Pillow would only warn
    (folder / "bomb-raises.png").write_bytes(_png_claiming(20_000, 20_000))  # 400 MP: Pillow refuses
    meta = json.loads((prepare(str(folder), 32, cache_dir=tmp_path / "cache", progress=False) / "meta.json").read_text())
    assert meta["count"] == 3 and sorted(meta["skipped"]) == ["bomb-raises.png", "bomb-warns.png"]
    assert all("DecompressionBomb" in why for why in meta["skipped"].values())


def _forged_header(tmp_path: Path) -> Path:
    path = tmp_path / "huge-header.safetensors"
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    return path


def _offsets_past_the_end(tmp_path: Path) -> Path:
    header = json.dumps({"t": {"dtype": "F32", "shape": [10**8], "data_offsets": [0, 4 * 10**8]}}).encode()
    path = tmp_path / "past-the-end.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    return path


def _truncated(tmp_path: Path, run: Path) -> Path:
    data = ckpt.latest(run).read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("make", [_forged_header, _offsets_past_the_end, _truncated])
def test_hostile_or_damaged_checkpoints_are_one_line(make, celeba_dir, tmp_path, capsys):
    run = train(_config(celeba_dir, "train.steps=1"), tmp_path / "run", progress=False)
    path = make(tmp_path, run) if make is _truncated else make(tmp_path)
    code, _, err = run_cli(capsys, "sample", str(path), "--n", "1", "--grid", str(tmp_path / "g.png"))
    assert code == 2 and "is not a readable safetensors file" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.png").exists()
