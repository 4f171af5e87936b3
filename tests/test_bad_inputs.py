"""The bad-input suite: every mistake a user can make at the command line gets one line on stderr, exit
status 2, and nothing written or changed. docs/reliability.md's table "What facegen checks" lists the same cases."""

import hashlib
import json
from pathlib import Path

import pytest
from conftest import run_cli

RUN, VAE = "{run}", "{vae}"  # placeholders: a tiny DCGAN run and a tiny VAE run
TINY = ["--set", "model.base_channels=4", "--set", "train.batch_size=4", "--set", "data.split=all"]

# (case, argv, a fragment of the one-line message). Paths are relative to the test's own folder.
CASES = [
    ("prepare: missing folder", ["prepare", "no-such-folder", "--resolution", "32"], "does not exist"),
    ("prepare: a resolution no model takes", ["prepare", "synthetic:20", "--resolution", "33"], "--resolution 33: no model trains on it"),
    ("prepare: malformed synthetic spec", ["prepare", "synthetic:many", "--resolution", "32"], "is malformed; write synthetic:N"),
    ("prepare: a corrupt zip", ["prepare", "corrupt.zip", "--resolution", "32"], "is not a readable zip archive"),
    ("prepare: a folder without images", ["prepare", "empty", "--resolution", "32"], "no images found in empty"),
    ("prepare: --seed without --limit", ["prepare", "synthetic:20", "--resolution", "32", "--seed", "1"], "--seed picks the random subset"),
    ("prepare: --limit 0", ["prepare", "synthetic:20", "--resolution", "32", "--limit", "0"], "--limit 0: take at least one image"),
    ("train: unknown preset", ["train", "--preset", "dcgan99"], "unknown preset 'dcgan99'; available presets:"),
    ("train: unknown key", ["train", "--set", "train.lrd=1"], "unknown config key 'train.lrd'; valid keys in [train]:"),
    ("train: wrong type", ["train", "--set", "train.batch_size=big"], "train.batch_size expects int, got 'big'"),
    ("train: unsupported resolution", ["train", "--set", "data.resolution=100"], "data.resolution = 100 is not supported"),
    ("train: a NaN learning rate", ["train", "--set", "train.lr_g=nan"], "train.lr_g expects a finite number"),
    ("train: --set without a section", ["train", "--set", "lr_g=1"], "must look like section.key=value"),
    ("train: a setting the family does not use", ["train", "--preset", "vae64", "--set", "train.g_steps=2"], "train.g_steps"),
    ("train: negative beta", ["train", "--preset", "vae64", "--set", "loss.beta=-1"], "loss.beta"),
    ("train: unknown reconstruction loss", ["train", "--preset", "vae64", "--set", "loss.recon=ssim"], "loss.recon"),
    ("train: a config file that is not TOML", ["train", "--config", "settings.jpg"], "is not a TOML file (.toml)"),
    ("train: broken TOML", ["train", "--config", "broken.toml"], "is not valid TOML"),
    ("train: a config file extending an unknown preset", ["train", "--config", "mine.toml"], "extends unknown preset 'fast99'; available presets:"),
    ("train: zero budget", ["train", "--minutes", "0"], "train.minutes = 0.0 must be > 0"),
    ("train: --resume of a folder without checkpoints", ["train", "--resume", "--out", "empty"], "is not a facegen run"),
    ("train: --resume with new settings", ["train", "--resume", "--out", RUN, "--set", "train.lr_d=1"],
     "--resume continues a run with its saved config"),
    ("train: a run in the way", ["train", "--preset", "dcgan32", "--out", RUN], "already holds a run; pass --resume"),
    ("sweep: --vary without values", ["sweep", "--preset", "dcgan32", "--vary", "train.lr_g=", "--out", "sweep"], "needs a list of values"),
    ("sweep: --vary of an unknown section", ["sweep", "--preset", "dcgan32", "--vary", "trian.lr_g=1", "--out", "sweep"],
     "unknown config section 'trian'"),
    ("sweep: a value of the wrong type", ["sweep", "--preset", "dcgan32", "--vary", "train.batch_size=4,x", "--out", "sweep"],
     "expects int, got 'x'"),
    ("runs: missing folder", ["runs", "no-such-folder"], "is not a folder"),
    ("runs: unknown sort column", ["runs", "empty-runs", "--sort", "speed"], "cannot sort by 'speed'; columns: run, preset"),
    ("sample: missing run", ["sample", "no-such-run"], "no-such-run does not exist"),
    ("sample: --n 0", ["sample", RUN, "--n", "0"], "ask for at least one image"),
    ("sample: a backwards seed range", ["sample", RUN, "--seeds", "5-2"], "ranges go from a low to a high"),
    ("sample: a seed over 2^63", ["sample", RUN, "--seeds", "99999999999999999999"], "seeds go up to"),
    ("sample: --batch-size 0", ["sample", RUN, "--batch-size", "0"], "generate at least one image at a time"),
    ("sample: a file that is not a checkpoint", ["sample", "notes.safetensors"], "is not a readable safetensors file"),
    ("sample: a GMM prior for a GAN", ["sample", RUN, "--prior", "gmm"], "has no encoder"),
    ("evaluate: nothing to evaluate", ["evaluate"], "evaluate needs a RUN directory"),
    ("evaluate: unknown metric", ["evaluate", RUN, "--metrics", "lpips"], "unknown metric 'lpips'"),
    ("evaluate: reconstructions of a GAN", ["evaluate", RUN, "--reconstructions"], "has no encoder"),
    ("compare: a folder that is not a run", ["compare", "empty", "--out", "page"], "is not a facegen run"),
    ("reconstruct: a GAN", ["reconstruct", RUN, "--holdout", "2", "--out", "r.png"], "has no encoder"),
    ("reconstruct: a photo that is not an image", ["reconstruct", VAE, "--images", "notes.txt", "--out", "r.png"], "is not an image Pillow can read"),
    ("interpolate: one point", ["interpolate", RUN, "--seeds", "1", "--out", "i.png"], "at least two"),
    ("interpolate: an unknown file type", ["interpolate", RUN, "--seeds", "1,2", "--out", "i.bmp"], "write a .png grid or a .gif"),
    ("edit: no directions yet", ["edit", RUN, "--seeds", "0-3", "--add", "Smiling=2", "--out", "edits"], "directions"),
    ("edit: a strength that is not a number", ["edit", RUN, "--seeds", "0", "--add", "Smiling=lots", "--out", "edits"], "is not a number"),
    ("directions: --from-seeds without a name", ["directions", RUN, "--from-seeds", "3,17"], "must look like NAME=VALUE"),
    ("train-encoder: a model with its own encoder", ["train-encoder", VAE], "with its own encoder; train-encoder is for GANs"),
    ("latent-plot: a GAN", ["latent-plot", RUN, "--attribute", "Smiling", "--out", "p.png"], "has no encoder"),
]


@pytest.fixture(scope="module")
def runs(faces, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    assert run_cli_quiet(["train", "--preset", "dcgan32", "--data", str(faces), "--steps", "1", "--out", str(folder / "gan"), *TINY]) == 0
    assert run_cli_quiet(["train", "--preset", "vae64", "--data", str(faces), "--set", "data.resolution=32", "--steps", "1",
                          "--out", str(folder / "vae"), *TINY]) == 0
    return folder / "gan", folder / "vae"


def run_cli_quiet(argv):
    from facegen.cli import main

    return main([*argv, "--quiet"])


def _files(*folders: Path) -> dict[str, str]:
    """Every file under the folders with a hash of its content: what a failed command must leave as it was."""
    return {str(p): hashlib.sha1(p.read_bytes()).hexdigest() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("case", "argv", "message"), CASES, ids=[case for case, _, _ in CASES])
def test_a_bad_input_is_one_line_exit_2_and_writes_nothing(case, argv, message, runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty-runs").mkdir()
    (tmp_path / "corrupt.zip").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "settings.jpg").write_bytes(b"")
    (tmp_path / "broken.toml").write_text("[train\nlr_g = ")
    (tmp_path / "mine.toml").write_text('extends = "fast99"\n')
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / "notes.safetensors").write_text("not a checkpoint")
    gan, vae = runs
    argv = [str(gan) if a == RUN else str(vae) if a == VAE else a for a in argv]
    before = _files(tmp_path, gan, vae)
    code, _, err = run_cli(capsys, *argv)
    assert code == 2, f"{case}: exit {code}; stderr: {err}"
    assert err.startswith("facegen: error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err, err
    assert _files(tmp_path, gan, vae) == before  # nothing half-written, nothing changed


def test_the_suite_is_at_least_thirty_distinct_inputs_across_the_commands():
    assert len({json.dumps(argv) for _, argv, _ in CASES}) == len(CASES) >= 30
    assert len({argv[0] for _, argv, _ in CASES}) >= 12
