"""The command line as a user meets it: one clear line and exit status 2 for every bad input."""

import subprocess
import sys

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from facegen.checkpoint import load_generator
from facegen.cli import main
from facegen.sample import latents, parse_seeds, sample_seeds

TINY = ["--set", "model.base_channels=4", "--set", "train.batch_size=4", "--set", "data.split=all", "--quiet"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_run(celeba_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", "--preset", "dcgan32", "--data", str(celeba_dir), "--steps", "2", "--out", str(out), *TINY]) == 0
    return out


def test_prepare_train_sample_end_to_end(trained_run, capsys, tmp_path):
    code, out, _ = run(capsys, "sample", str(trained_run), "--n", "16", "--grid", str(tmp_path / "grid.png"))
    assert code == 0 and "16 samples (32 px, step 2)" in out
    assert Image.open(tmp_path / "grid.png").size == (4 * (4 * 34 + 2),) * 2  # 4x4 tiles of 32 px, 2 px apart, enlarged 4x
    code, out, _ = run(capsys, "sample", str(trained_run), "--n", "16", "--grid", str(tmp_path / "small.png"), "--zoom", "1")
    assert code == 0 and Image.open(tmp_path / "small.png").size == (4 * 34 + 2, 4 * 34 + 2)  # --zoom 1: the model's pixels
    big, small = (np.asarray(Image.open(tmp_path / name)) for name in ("grid.png", "small.png"))
    assert np.array_equal(big[::4, ::4], small)  # whole pixels repeated, nothing blurred
    code, out, _ = run(capsys, "sample", str(trained_run), "--seeds", "3,7-8", "--out", str(tmp_path / "png"))
    assert code == 0 and sorted(p.name for p in (tmp_path / "png").iterdir()) == ["seed-000003.png", "seed-000007.png", "seed-000008.png"]
    assert {Image.open(p).size for p in (tmp_path / "png").iterdir()} == {(32, 32)}  # single faces stay at the model's resolution
    code, _, err = run(capsys, "sample", str(trained_run), "--n", "4", "--grid", str(tmp_path / "zero.png"), "--zoom", "0")
    assert code == 2 and "--zoom 0" in err and not (tmp_path / "zero.png").exists()


def test_sample_of_nothing_and_a_gmm_prior_without_encoder_are_one_line(trained_run, capsys, tmp_path):
    for argv, message in ((["--n", "0"], "ask for at least one image"), (["--prior", "gmm"], "has no encoder"),
                          (["--batch-size", "0"], "generate at least one image at a time"),
                          (["--seeds", "99999999999999999999"], "seeds go up to 9223372036854775807"),
                          (["--n", "100000000000"], "lists more than 1,000,000 seeds")):
        code, _, err = run(capsys, "sample", str(trained_run), *argv, "--grid", str(tmp_path / "g.png"))
        assert code == 2 and err.count("\n") == 1 and message in err


def test_image_i_comes_from_seed_i_whatever_the_batch_size(trained_run):
    G, _ = load_generator(trained_run)
    all_at_once = sample_seeds(G, range(10), batch_size=10)
    in_threes = sample_seeds(G, range(10), batch_size=3)
    alone = sample_seeds(G, [7], batch_size=1)
    assert np.abs(all_at_once.astype(int) - in_threes).max() <= 1  # float reassociation may move a level
    assert np.abs(all_at_once[7].astype(int) - alone[0]).max() <= 1
    assert torch.equal(latents([7], 100)[0], latents(range(10), 100)[7])
    assert latents([1], 8, "uniform").abs().max() <= 1


def test_parse_seeds():
    assert parse_seeds("0-3,9") == [0, 1, 2, 3, 9]
    with pytest.raises(ValueError, match="not a seed list"):
        parse_seeds("a-b")


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "/no/such/folder"], "data source /no/such/folder does not exist"),
    (["train", "--preset", "dcgan99"], "unknown preset 'dcgan99'; available presets:"),
    (["train", "--set", "train.lrd=1"], "unknown config key 'train.lrd'; valid keys in [train]:"),
    (["train", "--set", "train.batch_size=big"], "train.batch_size expects int, got 'big'"),
    (["train", "--set", "data.resolution=100"], "data.resolution = 100 is not supported; use one of 32, 56, 64, 112, 128"),
    (["prepare", "/no/such/folder", "--resolution", "32"], "does not exist"),
    (["sample", "/no/such/run"], "/no/such/run does not exist"),
    (["train", "--resume", "--set", "train.lr_d=1"], "--resume continues a run with its saved config"),
    (["prepare", "synthetic:20", "--resolution", "33"], "--resolution 33: no model trains on it; use one of 32, 56, 64"),
    (["train", "--config", "settings.jpg"], "is not a TOML file (.toml) or a run's config.json"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "settings.jpg").write_bytes(b"")  # an empty file parses as TOML: only its name says it is not one
    code, _, err = run(capsys, *argv, *([] if argv[0] != "train" else ["--out", str(tmp_path / "run")]))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("facegen: error: ") and message in err
    assert not (tmp_path / "run").exists()  # nothing written half-way


def test_empty_folder_is_an_error(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run"))
    assert code == 2 and "no images found in" in err and not (tmp_path / "run").exists()


def test_bad_images_are_skipped_counted_and_named(capsys, tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((40, 40, 3), 40 * i, np.uint8)).save(folder / f"good{i}.jpg")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "truncated.jpg").write_bytes((folder / "good1.jpg").read_bytes()[:300])
    code, out, err = run(capsys, "prepare", str(folder), "--resolution", "32", "--quiet")
    assert code == 0 and "6 images at 32 px, 2 skipped" in out
    assert "2 skipped, 0 converted" in err and err.count("\n") == 1


def test_sample_refuses_a_checkpoint_of_another_model(capsys, tmp_path):
    foreign = tmp_path / "classifier.safetensors"
    safetensors.torch.save_file({"fc.weight": torch.zeros(2, 2)}, foreign)
    code, _, err = run(capsys, "sample", str(foreign))
    assert code == 2 and "not a facegen checkpoint" in err and err.count("\n") == 1


def test_python_dash_m_and_presets_listing():
    result = subprocess.run([sys.executable, "-m", "facegen", "presets"], capture_output=True, text=True, check=True)
    assert "dcgan56-dense" in result.stdout and "7x7x1024" in result.stdout
