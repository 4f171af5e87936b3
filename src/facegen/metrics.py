"""Sample-quality metrics on Inception features: FID, KID, precision/recall and Inception Score.

Features come from the standard FID Inception (see `facegen.inception`): uint8 images at the
data resolution are resized to 299 with NVIDIA's bilinear filter in float, mapped to
(x - 128) / 128 and reduced to 2048-d pool3 features, as NVIDIA's metrics and clean-fid's
"legacy" mode do. Scores are only comparable under the same protocol (extractor, resize,
crop, resolution, sample count, ...), which travels with every reference statistic.
"""

import io
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.special
import torch
from tqdm import tqdm

from facegen.files import write_bytes_atomic
from facegen.inception import INPUT_SIZE, PINNED_SHA256, Inception, find_inception, resize_bilinear, sha256_of

METRICS = ("fid", "kid", "pr", "is")


def parse_metrics(text: str) -> tuple[str, ...]:
    """'fid,kid' -> ('fid', 'kid'); unknown names are an error that lists the valid ones."""
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric {', '.join(map(repr, unknown)) or repr(text)}; valid metrics: {', '.join(METRICS)}")
    return names


class FeatureExtractor:
    """Inception pool3 features of uint8 images; batched, no-grad, channels_last."""

    def __init__(self, path: str | None = None, device: str = "cpu", bf16: bool = False, batch_size: int = 8):
        # batch_size 8 is the fastest on a 2-core CPU (larger batches fall out of cache); raise it on a GPU.
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        weights = find_inception(path)
        self.device = torch.device(device)
        self.bf16 = bf16
        self.batch_size = batch_size
        self.net = Inception(weights).to(self.device)
        self.has_logits = self.net.has_logits
        sha256 = sha256_of(weights)
        self.protocol = {
            "extractor": "inception-2015-12-05 pool3" if sha256 == PINNED_SHA256 else f"custom {weights.name}",
            "extractor_sha256": sha256,
            "input_size": INPUT_SIZE,
            "resize": "bilinear, NVIDIA/TF1 sampling, float",
            "input_range": "(uint8 - 128) / 128",
            # bf16 autocast deviates from the standard fp32 protocol (features differ by ~1e-2).
            "bf16": bf16,
        }

    def _run(self, images: np.ndarray, progress: bool, want_logits: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
            raise ValueError(f"images must be a uint8 array of shape (N, H, W, 3), got {got}")
        features, logits = [], []
        with torch.inference_mode(), tqdm(total=len(images), unit="img", disable=not progress, leave=False) as bar:
            for start in range(0, len(images), self.batch_size):
                x = torch.from_numpy(images[start:start + self.batch_size]).to(self.device)
                x = (x.permute(0, 3, 1, 2).float() - 128) / 128  # (B, H, W, 3) uint8 -> (B, 3, H, W) float
                # Scaling before resizing is the same map (bilinear weights sum to 1) on the smaller image.
                x = resize_bilinear(x, INPUT_SIZE).contiguous(memory_format=torch.channels_last)  # (B, 3, 299, 299)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    f, head = self.net(x)  # (B, 2048), (B, 1008) or None
                features.append(f.float().cpu().numpy())
                if want_logits:
                    logits.append(head.float().cpu().numpy())
                bar.update(len(x))
        feats = np.concatenate(features).astype(np.float64) if features else np.zeros((0, 2048))
        return feats, (np.concatenate(logits).astype(np.float64) if want_logits and logits else None)

    def features(self, images: np.ndarray, progress: bool = True) -> np.ndarray:
        """(N, H, W, 3) uint8 at any resolution -> (N, 2048) float64 pool3 features."""
        return self._run(images, progress, want_logits=False)[0]

    def features_and_logits(self, images: np.ndarray, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Features and classifier logits in one pass; only for a network with a head (see has_logits)."""
        if not self.has_logits:
            raise ValueError(f"the Inception network has no classifier head, so no logits; {IS_UNAVAILABLE}")
        return self._run(images, progress, want_logits=True)


IS_UNAVAILABLE = ("the Inception Score needs a network with a classifier head (default_1.pt has none): "
                  "pass --inception PATH to NVIDIA's inception-2015-12-05.pt")


def statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features, in float64."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (N, D), got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix; rounding's tiny negative eigenvalues count as 0."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(s1 + s2 - 2 (s1 s2)^1/2), by the eigenvalue route.

    tr((s1 s2)^1/2) is the sum of the square roots of the eigenvalues of s1 s2, which are those of
    the symmetric PSD matrix s1^1/2 s2 s1^1/2. Two symmetric eigendecompositions stay accurate when
    the covariances are singular (fewer samples than 2048), where sqrtm(s1 @ s2) can fail.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet Inception Distance between two feature sets."""
    return frechet_distance(*statistics(feats_a), *statistics(feats_b))


def kid(feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2, kernel (x.y / D + 1)^3, mean and std over subsets.

    As in Binkowski et al. 2018 and StyleGAN/clean-fid, except that a subset larger than a set is
    an error here rather than silently shrunk (the estimate's variance depends on it).
    """
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if subset_size > min(len(a), len(b)):
        raise ValueError(f"KID subset size {subset_size} exceeds the samples ({len(a)} vs {len(b)}); "
                         f"raise --n or use a smaller KID subset size")
    if subset_size < 2:
        raise ValueError(f"KID subset size must be >= 2, got {subset_size}")
    rng = np.random.default_rng(seed)
    m, dim = subset_size, a.shape[1]
    estimates = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy, k_xy = (x @ x.T / dim + 1) ** 3, (y @ y.T / dim + 1) ** 3, (x @ y.T / dim + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        estimates.append(within - 2 * k_xy.mean())
    return float(np.mean(estimates)), float(np.std(estimates))


def _kth_radii(feats: torch.Tensor, k: int, block: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point, computed block by block."""
    # kthvalue's (k+1)-th smallest skips the point itself at distance 0.
    return torch.cat([torch.cdist(feats[i:i + block], feats).kthvalue(k + 1, dim=1).values
                      for i in range(0, len(feats), block)])


def _inside_manifold(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor, block: int) -> float:
    """Fraction of queries within radius of at least one manifold point."""
    inside = [(torch.cdist(queries[i:i + block], points) <= radii).any(dim=1) for i in range(0, len(queries), block)]
    return torch.cat(inside).double().mean().item()


def precision_recall(real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3, block: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): k-NN balls around each set.

    Precision: share of fakes inside the real manifold; recall: share of reals inside the fake one.
    Distances are computed `block` rows at a time (10k x 10k needs ~40 MB per block, not 400 MB).
    """
    real = torch.as_tensor(np.asarray(real_feats), dtype=torch.float32)
    fake = torch.as_tensor(np.asarray(fake_feats), dtype=torch.float32)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set, got {len(real)} vs {len(fake)}")
    precision = _inside_manifold(fake, real, _kth_radii(real, k, block), block)
    recall = _inside_manifold(real, fake, _kth_radii(fake, k, block), block)
    return precision, recall


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score exp(E KL(p(y|x) || p(y))) of classifier logits; mean and std over splits."""
    logits = np.asarray(logits, np.float64)
    if logits.ndim != 2 or len(logits) < splits:
        raise ValueError(f"Inception Score needs (N, classes) logits with N >= splits={splits}, got {logits.shape}")
    log_p = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    scores = []
    for part in np.array_split(log_p, splits):
        log_marginal = scipy.special.logsumexp(part, axis=0) - np.log(len(part))
        scores.append(np.exp(np.mean(np.sum(np.exp(part) * (part - log_marginal), axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


class Reference(NamedTuple):
    """Reference (real-image) statistics: features for KID/PR, mean and covariance for FID."""
    feats: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    protocol: dict


def save_reference(path: str | Path, feats: np.ndarray, protocol: dict) -> Reference:
    """Write features (float32), mean, covariance and the JSON protocol to one .npz, atomically."""
    feats = np.asarray(feats, np.float32).astype(np.float64)  # Stored as float32: stats match what loads.
    mu, sigma = statistics(feats)
    buffer = io.BytesIO()
    np.savez(buffer, feats=feats.astype(np.float32), mu=mu, sigma=sigma, protocol=np.array(json.dumps(protocol)))
    write_bytes_atomic(path, buffer.getvalue())
    return Reference(feats, mu, sigma, _normalized(protocol))


def load_reference(path: str | Path) -> Reference:
    """Read what save_reference wrote; a missing or foreign file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"reference statistics {path} not found; compute them first")
    with np.load(path, allow_pickle=False) as data:
        missing = {"feats", "mu", "sigma", "protocol"} - set(data.files)
        if missing:
            raise ValueError(f"{path} is not a facegen reference (missing {', '.join(sorted(missing))}); recompute it")
        return Reference(data["feats"].astype(np.float64), data["mu"], data["sigma"], json.loads(str(data["protocol"])))


def _normalized(protocol: dict) -> dict:
    """The protocol as it reads back from JSON (tuples become lists), so saved and live ones compare."""
    return json.loads(json.dumps(protocol))


def check_protocols(reference: dict, current: dict) -> None:
    """ValueError naming every key whose value differs (a key absent on one side counts as differing)."""
    a, b = _normalized(reference), _normalized(current)
    differ = [f"{key} {a.get(key, 'missing')} vs {b.get(key, 'missing')}"
              for key in sorted(a.keys() | b.keys()) if a.get(key, "missing") != b.get(key, "missing")]
    if differ:
        raise ValueError(f"protocol mismatch (reference vs now): {', '.join(differ)}; "
                         f"recompute the reference with the same settings")


def compute_metrics(names: tuple[str, ...], reference: Reference, fake_feats: np.ndarray,
                    fake_logits: np.ndarray | None = None, kid_subset_size: int = 1000, k: int = 3) -> dict:
    """The requested metrics of fakes against a reference, as a JSON-ready dict.

    The Inception Score without logits is reported as None with the reason, never estimated.
    """
    results: dict = {}
    if "fid" in names:
        results["fid"] = frechet_distance(reference.mu, reference.sigma, *statistics(fake_feats))
    if "kid" in names:
        results["kid"], results["kid_std"] = kid(reference.feats, fake_feats, subset_size=kid_subset_size)
    if "pr" in names:
        results["precision"], results["recall"] = precision_recall(reference.feats, fake_feats, k=k)
    if "is" in names:
        if fake_logits is None:
            results["is"], results["is_std"], results["is_unavailable"] = None, None, IS_UNAVAILABLE
        else:
            results["is"], results["is_std"] = inception_score(fake_logits)
    return results
