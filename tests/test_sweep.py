"""Sweeps and the table of runs: `facegen sweep` and `facegen runs`, on tiny models."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli as run

from facegen import checkpoint as ckpt
from facegen.sweep import parse_vary, split_values

TINY = ["--set", "model.base_channels=4", "--set", "data.split=all", "--set", "train.preview_every=1000"]


def _sweep_args(faces: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", "--preset", "dcgan32", "--data", str(faces), *TINY, "--set", "train.batch_size=4",
            "--vary", "train.lr_g=1e-4,2e-4", "--vary", "model.z_dim=8,16", "--steps", "2", "--out", str(out), "--quiet", *extra]


def test_values_split_at_top_level_commas_only():
    assert split_values("32,64") == ["32", "64"]
    assert split_values("[0.5, 0.9],[0.0, 0.99]") == ["[0.5, 0.9]", "[0.0, 0.99]"]
    assert parse_vary("train.betas_g=[0.5, 0.9], [0.0, 0.99]") == ("train.betas_g", ("[0.5, 0.9]", "[0.0, 0.99]"))


def test_a_2x2_sweep_trains_each_combination_once_and_ranks_them(faces, tmp_path, capsys):
    out = tmp_path / "sweep"
    code, stdout, err = run(capsys, *_sweep_args(faces, out, "--evaluate", "--metrics", "kid", "--n", "8"))
    assert code == 0, err
    names = {"lr_g=1e-4_z_dim=8", "lr_g=1e-4_z_dim=16", "lr_g=2e-4_z_dim=8", "lr_g=2e-4_z_dim=16"}
    assert {p.name for p in out.iterdir() if p.is_dir()} == names | {"compare"}
    for name in names:
        config = json.loads((out / name / "config.json").read_text())
        lr_g, z_dim = (part.split("=")[1] for part in name.split("_z_dim"))
        assert config["train"]["lr_g"] == float(lr_g) and config["model"]["z_dim"] == int(z_dim)
        assert json.loads((out / name / "run.json").read_text())["preset"] == "dcgan32"
        assert (out / name / "eval.json").is_file()
    manifest = json.loads((out / "sweep.json").read_text())
    assert sorted(manifest["finished"]) == sorted(names) and set(manifest["seconds"]) == names
    lines = stdout.split("comparison")[0].strip().splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("run ")):]
    assert table[0].split()[:4] == ["run", "preset", "model.z_dim", "train.lr_g"]
    kids = [float(line.split()[table[0].split().index("kid")]) for line in table[1:]]
    assert kids == sorted(kids)  # ranked by KID
    page = (out / "compare" / "index.html").read_text()
    assert [page.index(f"<b>{line.split()[0]}</b>") for line in table[1:]] == sorted(page.index(f"<b>{line.split()[0]}</b>") for line in table[1:])

    # Run again: every run is finished, none is trained again.
    stamps = {name: ckpt.latest(out / name).stat().st_mtime_ns for name in names}
    code, stdout, _ = run(capsys, *_sweep_args(faces, out, "--evaluate", "--metrics", "kid", "--n", "8"))
    assert code == 0 and stdout.count("finished earlier, skipped") == 4
    assert stamps == {name: ckpt.latest(out / name).stat().st_mtime_ns for name in names}

    # The same folder with other settings is refused rather than mixed.
    code, _, err = run(capsys, *_sweep_args(faces, out, "--set", "train.seed=1"))
    assert code == 2 and "holds another sweep" in err


def test_runs_lists_settings_that_differ_and_sorts_csv_and_json(faces, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert run(capsys, *_sweep_args(faces, out))[0] == 0
    code, stdout, _ = run(capsys, "runs", str(out), "--json", "--sort", "steps")
    rows = json.loads(stdout)
    assert code == 0 and len(rows) == 4
    assert all(set(r["settings"]) == {"model.z_dim", "train.lr_g"} and r["steps"] == 2 and r["seconds"] > 0 for r in rows)
    assert all(r["kid"] is None and r["loss_d"] is not None for r in rows)  # not evaluated: no invented figures
    code, stdout, _ = run(capsys, "runs", str(out), "--csv")
    header, *lines = stdout.strip().splitlines()
    assert header.startswith("run,preset,model.z_dim,train.lr_g,") and len(lines) == 4
    code, _, err = run(capsys, "runs", str(out), "--sort", "nope")
    assert code == 2 and "cannot sort by 'nope'" in err
    code, _, err = run(capsys, "runs", str(tmp_path / "missing"))
    assert code == 2 and "is not a folder" in err


@pytest.mark.parametrize(("vary", "message"), [
    ("train.lr_g", "must look like section.key=v1,v2"),
    ("lr_g=1e-4,2e-4", "must look like section.key=v1,v2"),
    ("train.lr_g=", "needs a list of values"),
    ("train.lr_g=1e-4,,2e-4", "needs a list of values"),
    ("train.lr_g=1e-4,1e-4", "lists a value twice"),
    ("trian.lr_g=1e-4", "unknown config section 'trian'"),
    ("train.lr_gg=1e-4,2e-4", "unknown config key 'train.lr_gg'"),
    ("train.batch_size=4,big", "train.batch_size expects int, got 'big'"),
    ("train.batch_size=4,-1", "train.batch_size"),
])
def test_a_bad_vary_is_one_line_before_any_run_starts(faces, tmp_path, capsys, vary, message):
    out = tmp_path / "sweep"
    code, _, err = run(capsys, "sweep", "--preset", "dcgan32", "--data", str(faces), "--vary", "train.seed=0,1",
                       "--vary", vary, "--steps", "2", "--out", str(out), "--quiet")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_key_both_varied_and_set_is_refused(faces, tmp_path, capsys):
    code, _, err = run(capsys, "sweep", "--preset", "dcgan32", "--set", "train.lr_g=1e-4", "--vary", "train.lr_g=1e-4,2e-4",
                       "--out", str(tmp_path / "sweep"))
    assert code == 2 and "train.lr_g is both varied and set" in err


def test_a_sweep_killed_with_sigkill_resumes_without_redoing_finished_runs(faces, tmp_path):
    """Kill the sweep while its second run trains (after that run's first checkpoint); run it again."""
    out = tmp_path / "sweep"
    args = [sys.executable, "-m", "facegen", "sweep", "--preset", "dcgan32", "--data", str(faces), *TINY,
            "--set", "train.batch_size=4", "--set", "train.checkpoint_every=10", "--vary", "train.seed=0,1", "--steps", "60",
            "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = out / "seed=1"
    deadline = time.monotonic() + 300
    while ckpt.latest(second) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the sweep ended before it could be killed mid-run"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = ckpt.latest(second)
    assert killed_at is not None, "the second run never checkpointed before the deadline"
    assert ckpt.read_state(killed_at)["step"] < 60
    first_stamp = ckpt.latest(out / "seed=0").stat().st_mtime_ns
    started = json.loads((second / "run.json").read_text())["started"]
    assert json.loads((out / "sweep.json").read_text())["finished"] == ["seed=0"]

    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "seed=0 finished earlier, skipped" in again.stdout and "seed=1 (resuming)" in again.stdout
    assert ckpt.latest(out / "seed=0").stat().st_mtime_ns == first_stamp  # the finished run was not touched
    assert json.loads((second / "run.json").read_text())["started"] == started  # continued, not restarted
    assert ckpt.read_state(second)["step"] == 60
    assert json.loads((out / "sweep.json").read_text())["finished"] == ["seed=0", "seed=1"]
