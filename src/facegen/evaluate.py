"""Evaluation as a user runs it: samples of a run (or any image source) against real reference images.

Reference statistics are cached inside the data cache they were computed from, keyed by their
protocol, so every run evaluated against the same split reuses them. Scores are only compared
when the images were prepared the same way: a mismatch is an error that names what differs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from facegen.checkpoint import load_autoencoder, load_generator
from facegen.data import FaceDataset, open_dataset
from facegen.encoding import gmm_prior, mse_psnr, reconstruct
from facegen.files import write_text_atomic
from facegen.metrics import FeatureExtractor, Reference, check_protocols, compute_metrics, load_reference, save_reference
from facegen.sample import generate, sample_seeds

if TYPE_CHECKING:
    from facegen.report import TensorBoard

PREPARATION_KEYS = ("extractor", "extractor_sha256", "input_size", "resize", "input_range", "bf16", "resolution", "crop")
KID_SUBSET = 1000  # clean-fid / StyleGAN's default; capped at the sample sizes unless asked for explicitly


def preparation(protocol: dict) -> dict:
    """The part of a protocol that must match for two feature sets to be comparable."""
    return {key: protocol.get(key) for key in PREPARATION_KEYS}


def real_images(dataset: FaceDataset, split: str, n: int | None) -> np.ndarray:
    """Up to n images of a split, spread evenly over it (deterministic, no seed needed)."""
    return np.asarray(dataset.images[dataset.spread_indices(split, n)])


def reference_statistics(dataset: FaceDataset, split: str, n: int | None, extractor: FeatureExtractor,
                         progress: bool = True) -> Reference:
    """Features, mean and covariance of real images, computed once per protocol and cached with the data."""
    images = real_images(dataset, split, n)
    protocol = {**extractor.protocol, "source": dataset.meta["source"], "resolution": dataset.resolution,
                "crop": dataset.meta["crop"], "split": split, "n": len(images)}
    key = hashlib.sha1(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:12]
    path = dataset.path / "reference" / f"{split}-{len(images)}-{key}.npz"
    if path.is_file():
        return load_reference(path)
    return save_reference(path, extractor.features(images, progress=progress), protocol)


def score(names: tuple[str, ...], reference: Reference, images: np.ndarray, extractor: FeatureExtractor,
          sample_protocol: dict, kid_subset: int | None = None, progress: bool = True) -> dict:
    """Metrics of images against a reference, after checking both were prepared the same way."""
    check_protocols(preparation(reference.protocol), preparation({**extractor.protocol, **sample_protocol}))
    subset = kid_subset or min(KID_SUBSET, len(images), len(reference.feats))
    if "is" in names and extractor.has_logits:
        feats, logits = extractor.features_and_logits(images, progress=progress)
    else:
        feats, logits = extractor.features(images, progress=progress), None
    results = compute_metrics(names, reference, feats, logits, kid_subset_size=subset)
    return {**results, "n": len(images), "n_reference": len(reference.feats), "kid_subset": subset if "kid" in names else None,
            "protocol": {**sample_protocol, "reference": reference.protocol}}


PRIORS = ("normal", "gmm")
EVAL_FILES = {"normal": "eval.json", "gmm": "eval-gmm.json", "reconstructions": "eval-reconstructions.json"}


def evaluate_run(run: str | Path, names: tuple[str, ...], n: int = 2000, reference: str | None = None,
                 extractor: FeatureExtractor | None = None, kid_subset: int | None = None, progress: bool = True,
                 prior: str = "normal") -> dict:
    """Sample seeds 0..n-1 from a run's newest checkpoint (or a given one) and score them; writes eval.json.

    prior="gmm" samples an encoder model's Gaussian-mixture prior instead of N(0, I) (eval-gmm.json).
    """
    if prior not in PRIORS:
        raise ValueError(f"--prior {prior!r} is not known; choose one of {', '.join(PRIORS)}")
    G, checkpoint = load_generator(run)
    data = checkpoint.state["config"]["data"]
    resolution, crop = checkpoint.architecture["resolution"], data["crop"]
    extractor = extractor or FeatureExtractor()
    if reference and reference.endswith(".npz"):
        ref = load_reference(reference)
    else:  # the run's own held-out split by default; a whole other source when one is named
        dataset = checkpoint.dataset(reference, progress=progress)
        ref = reference_statistics(dataset, "all" if reference else "holdout", None, extractor, progress)
    if prior == "gmm":
        images = generate(G, gmm_prior(run, progress=progress).latents(range(n)))
    else:
        images = sample_seeds(G, range(n))
    sample_protocol = {"samples": f"{prior}-prior seeds 0-{n - 1} of {checkpoint.path.name}", "resolution": resolution, "crop": crop}
    results = {"checkpoint": checkpoint.path.name, "step": checkpoint.state.get("step"), "prior": prior,
               **score(names, ref, images, extractor, sample_protocol, kid_subset, progress)}
    write_text_atomic(_run_dir(run, checkpoint) / EVAL_FILES[prior], json.dumps(results, indent=1))
    return results


def evaluate_reconstructions(run: str | Path, names: tuple[str, ...], n: int | None = None, extractor: FeatureExtractor | None = None,
                             kid_subset: int | None = None, progress: bool = True) -> dict:
    """Encode and decode the run's held-out faces: MSE and PSNR against them, FID/KID of the reconstructions
    against the same faces; writes eval-reconstructions.json."""
    E, G, checkpoint = load_autoencoder(run)
    dataset = checkpoint.dataset(progress=progress)
    extractor = extractor or FeatureExtractor()
    ref = reference_statistics(dataset, "holdout", None, extractor, progress)
    originals = real_images(dataset, "holdout", n)
    reconstructions = reconstruct(E, G, originals)
    mse, psnr = mse_psnr(originals, reconstructions)
    sample_protocol = {"samples": f"reconstructions of {len(originals)} held-out faces by {checkpoint.path.name}",
                       "resolution": dataset.resolution, "crop": dataset.meta["crop"]}
    results = {"checkpoint": checkpoint.path.name, "step": checkpoint.state.get("step"),
               "mse": float(mse.mean()), "psnr": float(psnr.mean()),
               **score(names, ref, reconstructions, extractor, sample_protocol, kid_subset, progress)}
    write_text_atomic(_run_dir(run, checkpoint) / EVAL_FILES["reconstructions"], json.dumps(results, indent=1))
    return results


def _run_dir(run: str | Path, checkpoint) -> Path:
    return Path(run) if Path(run).is_dir() else checkpoint.path.parent.parent


def evaluate_sources(samples: str, reference: str, names: tuple[str, ...], resolution: int = 64, crop: int | None = None,
                     n: int | None = None, extractor: FeatureExtractor | None = None, kid_subset: int | None = None,
                     cache_dir: str | None = None, progress: bool = True) -> dict:
    """Two image sources (made elsewhere, or two real sets) through the same preparation, then scored."""
    extractor = extractor or FeatureExtractor()
    ref_data = open_dataset(reference, resolution, crop, cache_dir, progress=progress)
    sample_data = open_dataset(samples, resolution, crop, cache_dir, progress=progress)
    ref = reference_statistics(ref_data, "all", None, extractor, progress)
    images = real_images(sample_data, "all", n)
    sample_protocol = {"samples": sample_data.meta["source"], "resolution": resolution, "crop": crop}
    return score(names, ref, images, extractor, sample_protocol, kid_subset, progress)


def format_results(results: dict) -> str:
    """A small table of the figures a result holds."""
    rows = [("MSE", "mse"), ("PSNR (dB)", "psnr"), ("FID", "fid"), ("KID", "kid"), ("KID std", "kid_std"),
            ("precision", "precision"), ("recall", "recall"), ("Inception Score", "is")]
    lines = [f"{label:16s} {results[key]:.4f}" for label, key in rows if results.get(key) is not None]
    if results.get("is_unavailable"):
        lines.append(f"{'Inception Score':16s} unavailable: {results['is_unavailable']}")
    lines.append(f"{'n':16s} {results['n']} samples vs {results['n_reference']} reference images")
    return "\n".join(lines)


class QuickKID:
    """KID of a few hundred samples against as many held-out faces, every kid_every steps (rank 0 only).

    The Inception network is loaded on first use; the reference is computed once and cached with the data.
    """

    def __init__(self, dataset: FaceDataset, n: int, run_dir: Path) -> None:
        self.dataset, self.n, self.run_dir = dataset, n, run_dir
        self.extractor = self.reference = None
        best = run_dir / "checkpoints" / "best.json"
        self.best = json.loads(best.read_text())["kid"] if best.is_file() else float("inf")

    def measure(self, step: int, G: nn.Module, metrics_path: Path, board: "TensorBoard | None" = None) -> bool:
        """Log the KID of this step; True when it is the best so far."""
        from facegen.metrics import kid

        if self.extractor is None:
            self.extractor = FeatureExtractor()
            self.reference = reference_statistics(self.dataset, "holdout", self.n, self.extractor, progress=False)
        feats = self.extractor.features(sample_seeds(G, range(self.n)), progress=False)  # a conditional G: its data's labels
        size = min(len(feats), len(self.reference.feats))  # both sets whole: one subset says it all
        value = kid(self.reference.feats, feats, subsets=1, subset_size=size)[0]
        record = {"step": step, "kid": round(value, 6), "kid_samples": len(feats)}
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if board:
            board.scalars(record)
        if value >= self.best:
            return False
        self.best = value
        write_text_atomic(self.run_dir / "checkpoints" / "best.json", json.dumps({"step": step, "kid": value}))
        return True
