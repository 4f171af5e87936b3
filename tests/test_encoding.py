"""Encoder models from a checkpoint alone: `reconstruct`, `latent-plot`, the GMM prior, reconstruction scores."""

import json

import numpy as np
import pytest
from conftest import run_cli as run
from PIL import Image

from facegen import encoding
from facegen.config import load_config
from facegen.train import train


def test_mse_and_psnr_on_known_images():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    b[1] = 255
    mse, psnr = encoding.mse_psnr(a, b)
    assert mse.tolist() == [0.0, 1.0] and psnr[1] == 0.0 and psnr[0] == pytest.approx(120.0)


def test_a_vae_run_logs_its_quick_kid_and_keeps_the_best(vae_run):
    kids = [json.loads(line) for line in (vae_run / "metrics.jsonl").read_text().splitlines() if '"kid"' in line]
    assert [r["step"] for r in kids] == [3] and (vae_run / "checkpoints" / "best.safetensors").is_file()


def test_reconstruct_held_out_faces_prints_errors_and_writes_the_pairs(vae_run, capsys, tmp_path):
    code, out, _ = run(capsys, "reconstruct", str(vae_run), "--holdout", "3", "--out", str(tmp_path / "grid.png"), "--quiet")
    assert code == 0 and out.count("PSNR") == 4 and "mean of 3" in out
    assert Image.open(tmp_path / "grid.png").size == (4 * (3 * 34 + 2), 4 * (2 * 34 + 2))  # originals above reconstructions, 4x


def test_reconstruct_photos_and_bad_photos(vae_run, faces, capsys, tmp_path):
    photo = faces / "img_align_celeba" / "000001.jpg"
    code, out, _ = run(capsys, "reconstruct", str(vae_run), "--images", str(photo), "--out", str(tmp_path / "one.png"))
    assert code == 0 and "000001.jpg: MSE" in out
    (tmp_path / "notes.txt").write_text("not a face")
    code, _, err = run(capsys, "reconstruct", str(vae_run), "--images", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "x.png"))
    assert code == 2 and err.count("\n") == 1 and "is not an image Pillow can read" in err
    assert not (tmp_path / "x.png").exists()


def test_a_gan_run_has_no_encoder(faces, capsys, tmp_path):
    cfg = load_config("dcgan32", overrides=[f"data.source={faces}", "model.base_channels=4", "train.batch_size=4", "train.steps=1"])
    gan = train(cfg, tmp_path / "gan", progress=False)
    code, _, err = run(capsys, "reconstruct", str(gan), "--holdout", "2", "--out", str(tmp_path / "g.png"))
    assert code == 2 and "dcgan model, which has no encoder" in err and "vae, vaegan" in err


def test_gmm_prior_is_fitted_once_and_sampled_per_seed(vae_run, capsys, tmp_path):
    code, _, _ = run(capsys, "sample", str(vae_run), "--prior", "gmm", "--n", "6", "--out", str(tmp_path / "all"))
    assert code == 0
    saved = vae_run / encoding.GMM_FILE
    first_write = saved.stat().st_mtime_ns
    code, _, _ = run(capsys, "sample", str(vae_run), "--prior", "gmm", "--seeds", "4", "--out", str(tmp_path / "one"))
    assert code == 0 and saved.stat().st_mtime_ns == first_write  # reused, not refitted
    assert np.array_equal(np.asarray(Image.open(tmp_path / "all" / "seed-000004.png")),
                          np.asarray(Image.open(tmp_path / "one" / "seed-000004.png")))
    prior = encoding.gmm_prior(vae_run)
    assert prior.means.shape == (10, 8) and prior.weights.sum() == pytest.approx(1.0) and prior.meta["step"] == 3


def test_gmm_prior_samples_with_float32_weights_that_float64_finds_unnormalised():
    weights = np.full(10, 0.1, np.float32)
    weights[0] += 4e-8  # sums to 1 within float32's tolerance, not within float64's (what a saved prior is read back as)
    assert abs(weights.astype(np.float64).sum() - 1) > np.sqrt(np.finfo(np.float64).eps)
    prior = encoding.GaussianMixturePrior(weights.astype(np.float64), np.zeros((10, 3)), np.tile(np.eye(3), (10, 1, 1)), {})
    assert prior.latents([0, 1, 2]).shape == (3, 3)


def test_latent_plot_by_attribute(vae_run, capsys, tmp_path):
    for method in ("pca", "tsne"):
        code, out, _ = run(capsys, "latent-plot", str(vae_run), "--attribute", "Smiling", "--method", method,
                           "--out", str(tmp_path / f"{method}.png"), "--quiet")
        assert code == 0 and "5-NN accuracy in 2-D: latent means (encoder)" in out and (tmp_path / f"{method}.png").is_file()
    code, _, err = run(capsys, "latent-plot", str(vae_run), "--attribute", "Smiles", "--out", str(tmp_path / "x.png"), "--quiet")
    assert code == 2 and "unknown attribute 'Smiles'; this data has: Eyeglasses, Male, Smiling" in err


def test_knn_accuracy_tells_separated_from_mixed_labels():
    rng = np.random.default_rng(0)
    labels = np.arange(100) % 2 == 0
    separated = rng.normal(size=(100, 2)) + 10 * labels[:, None]
    assert encoding.knn_accuracy(separated, labels) == 1.0
    assert encoding.knn_accuracy(rng.normal(size=(100, 2)), labels) < 0.75


def test_evaluate_reconstructions_and_the_gmm_prior(vae_run, capsys):
    code, out, _ = run(capsys, "evaluate", str(vae_run), "--reconstructions", "--n", "4", "--metrics", "fid,kid", "--json", "--quiet")
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and result == json.loads((vae_run / "eval-reconstructions.json").read_text())
    assert result["n"] == 4 and 0 < result["mse"] < 1 and result["psnr"] > 0 and result["fid"] > 0 and "PSNR (dB)" in out
    code, out, _ = run(capsys, "evaluate", str(vae_run), "--prior", "gmm", "--n", "6", "--metrics", "kid", "--json", "--quiet")
    assert code == 0 and json.loads((vae_run / "eval-gmm.json").read_text())["prior"] == "gmm"
    code, _, err = run(capsys, "evaluate", str(vae_run), "--reconstructions", "--prior", "gmm", "--quiet")
    assert code == 2 and "drop --reference and --prior" in err
