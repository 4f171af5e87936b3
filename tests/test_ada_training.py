"""Adaptive augmentation in training: off leaves runs alone, p is logged, resumes exactly and works for every GAN.

The transforms and the controller alone are pinned in test_ada.py; two DDP ranks keeping one p in test_distributed.py.
"""

import json

import pytest
import torch
from conftest import run_cli

from facegen import checkpoint as ckpt
from facegen import report
from facegen.config import load_config
from facegen.train import train

TINY = ["model.base_channels=4", "train.batch_size=4", "data.split=all", "data.resolution=32", "train.precision=fp32",
        "train.log_every=1"]
FAST_ADA = ["data.ada_target=0.6", "data.ada_kimg=0.04", "data.ada_interval=2"]  # p moves by 4 x 2 / 40 = 0.2 per adjustment


def _config(source, *extra, preset="dcgan32", steps=4):
    return load_config(preset, overrides=[f"data.source={source}", *TINY, f"train.steps={steps}", *extra])


def _train(source, out, *extra, preset="dcgan32", steps=4, resume=False):
    return train(_config(source, *extra, preset=preset, steps=steps), out, resume=resume, progress=False)


def _weights(run):
    state = ckpt.load(run)
    return state.nets, state.state.get("ada")


def test_an_inert_controller_leaves_the_run_as_without_ada_and_a_moving_one_changes_it(celeba_dir, tmp_path):
    plain, _ = _weights(_train(celeba_dir, tmp_path / "plain"))
    # ADA on, counting D's signs, but p at 0 (no adjustment within 4 steps): no draw, the same weights.
    inert, state = _weights(_train(celeba_dir, tmp_path / "inert", "data.ada_target=0.6", "data.ada_interval=100"))
    assert state["p"].item() == 0.0 and state["signs"][1].item() == 4 * 4
    assert all(torch.equal(plain[role][k], inert[role][k]) for role in plain for k in plain[role])
    moving, state = _weights(_train(celeba_dir, tmp_path / "moving", *FAST_ADA, "data.ada_p=0.5"))
    assert state["p"].item() != 0.5
    assert any(not torch.equal(plain["G"][k], moving["G"][k]) for k in plain["G"])


def test_p_and_rt_are_logged_plotted_and_tabled(celeba_dir, tmp_path):
    run = _train(celeba_dir, tmp_path / "runs" / "ada", *FAST_ADA, "data.ada_p=0.5", steps=6)
    records = [r for r in report.read_metrics(run / "metrics.jsonl") if "loss_d" in r]
    assert [r["step"] for r in records] == list(range(1, 7))
    p = [r["ada_p"] for r in records]
    assert p[0] == 0.5 and p[1] != 0.5  # moved after step 2 (interval 2), not after step 1
    assert p[1] == p[2] and p[3] != p[2]
    assert all(-1 <= r["ada_rt"] <= 1 for r in records)
    assert (run / "training.png").is_file()
    row = next(r for r in report.runs_table(tmp_path / "runs"))
    assert row["ada_p"] == p[-1]


def test_resume_in_mid_interval_steers_p_exactly_as_the_uninterrupted_run(celeba_dir, tmp_path):
    settings = [*FAST_ADA, "data.ada_interval=4", "data.ada_p=0.5", "train.checkpoint_every=3"]
    straight = _train(celeba_dir, tmp_path / "straight", *settings, steps=9)
    _train(celeba_dir, tmp_path / "resumed", *settings, steps=3)  # stops at step 3: one step short of the first adjustment
    assert _weights(tmp_path / "resumed")[1]["signs"][1].item() == 3 * 4  # three steps' signs counted, not yet used
    resumed = _train(celeba_dir, tmp_path / "resumed", *settings, steps=9, resume=True)
    (a, ada_a), (b, ada_b) = _weights(straight), _weights(resumed)
    assert all(torch.equal(ada_a[k], ada_b[k]) for k in ada_a)
    assert all(torch.equal(a[role][k], b[role][k]) for role in a for k in a[role])
    p = lambda run: [r["ada_p"] for r in report.read_metrics(run / "metrics.jsonl") if "ada_p" in r]  # noqa: E731
    assert p(straight) == p(resumed)


@pytest.mark.parametrize("preset, extra", [("msggan32", []), ("vaegan64", []), ("dcgan32", ["model.family=resnet"])])
def test_every_gan_family_trains_with_ada_and_steers_p(celeba_dir, tmp_path, preset, extra):
    run = _train(celeba_dir, tmp_path / "run", *FAST_ADA, "data.ada_p=0.5", *extra, preset=preset, steps=4)
    p = [r["ada_p"] for r in report.read_metrics(run / "metrics.jsonl") if "ada_p" in r]
    assert len(p) == 4 and len(set(p)) > 1 and all(0 <= v <= 1 for v in p)


@pytest.mark.parametrize("setting, words", [
    ("data.ada_target=1", "must be in [0, 1)"),
    ("data.ada_target=-0.1", "must be in [0, 1)"),
    ("data.ada_augment=bgx", "b, g, c"),
    ("data.ada_interval=0", ">= 1"),
    ("data.ada_kimg=0", "> 0"),
    ("data.ada_p=1.5", "[0, 1]"),
])
def test_a_bad_ada_setting_is_one_line_before_training(celeba_dir, tmp_path, capsys, setting, words):
    target = [] if setting.startswith("data.ada_target") else ["--set", "data.ada_target=0.6"]
    code, out, err = run_cli(capsys, "train", "--preset", "dcgan32", "--data", str(celeba_dir), *target, "--set", setting,
                             "--out", str(tmp_path / "run"))
    assert code != 0 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_ada_settings_without_a_target_or_on_a_vae_are_refused_naming_the_fix():
    with pytest.raises(ValueError, match="set data.ada_target too"):
        load_config("dcgan32", overrides=["data.ada_kimg=100"])
    with pytest.raises(ValueError, match="does not apply to model.family = vae"):
        load_config("vae64", overrides=["data.ada_target=0.6"])


def test_the_checkpoint_of_an_ada_run_samples_as_any_other(celeba_dir, tmp_path, capsys):
    run = _train(celeba_dir, tmp_path / "run", *FAST_ADA, "data.ada_p=0.9")
    code, out, err = run_cli(capsys, "sample", str(run), "--n", "4", "--out", str(tmp_path / "samples"))
    assert code == 0, err
    assert len(list((tmp_path / "samples").glob("*.png"))) == 4
    assert json.loads((run / "config.json").read_text())["data"]["ada_target"] == 0.6
