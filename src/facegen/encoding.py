"""What an encoder model (VAE, VAE-GAN) gives: latent means of images, reconstructions and their error,
a Gaussian-mixture prior fitted to the training latents, and a 2-D picture of the latent space.

Works from a checkpoint alone; scikit-learn (the `latent` extra) is imported only by the functions
that fit a mixture or run t-SNE.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import torch
from torch import nn

from facegen.checkpoint import load_autoencoder
from facegen.files import save_figure, write_bytes_atomic
from facegen.images import make_grid, to_float


@torch.inference_mode()
def posterior(E: nn.Module, images: np.ndarray, batch_size: int = 256,
              labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """float32 (N, z_dim) twice: the posterior means and log-variances of uint8 (N, R, R, 3) images (with their labels
    (N, K) for a conditional encoder), E in eval mode."""
    was_training = E.training
    E.eval()
    device = next(E.parameters()).device

    def y(i: int) -> tuple:
        return () if labels is None else (torch.as_tensor(labels[i : i + batch_size], dtype=torch.float32).to(device),)

    out = [E(to_float(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)), *y(i))
           for i in range(0, len(images), batch_size)]
    E.train(was_training)
    if not out:
        return np.zeros((0, E.z_dim), np.float32), np.zeros((0, E.z_dim), np.float32)
    return tuple(torch.cat([o[k].float().cpu() for o in out]).numpy() for k in (0, 1))


def encode(E: nn.Module, images: np.ndarray, batch_size: int = 256, labels: np.ndarray | None = None) -> np.ndarray:
    """float32 (N, z_dim): the posterior means of uint8 (N, R, R, 3) images (with their labels, if conditional)."""
    return posterior(E, images, batch_size, labels)[0]


@torch.inference_mode()
def decode(G: nn.Module, z: np.ndarray | torch.Tensor, batch_size: int = 256, labels: np.ndarray | None = None) -> np.ndarray:
    """uint8 (N, R, R, 3) images of latents (and labels, if conditional), with G in eval mode."""
    from facegen.sample import generate

    y = None if labels is None else torch.as_tensor(labels, dtype=torch.float32)
    return generate(G, torch.as_tensor(z, dtype=torch.float32), batch_size, labels=y)


def reconstruct(E: nn.Module, G: nn.Module, images: np.ndarray, batch_size: int = 256,
                labels: np.ndarray | None = None) -> np.ndarray:
    """uint8 images decoded from the posterior means of uint8 images: deterministic, no sampling. A conditional VAE
    encodes and decodes each face with its own labels."""
    return decode(G, encode(E, images, batch_size, labels), batch_size, labels)


def mse_psnr(original: np.ndarray, reconstructed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image MSE on [0, 1] intensities and PSNR in dB (peak 1), of uint8 (N, H, W, 3) pairs."""
    diff = original.astype(np.float64) / 255 - reconstructed.astype(np.float64) / 255
    mse = (diff**2).reshape(len(diff), -1).mean(axis=1)
    return mse, 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


def pairs_grid(originals: np.ndarray, reconstructions: np.ndarray, per_row: int = 8) -> np.ndarray:
    """One image: rows of originals, each directly above the row of their reconstructions."""
    rows = []
    for start in range(0, len(originals), per_row):
        rows += [originals[start : start + per_row], reconstructions[start : start + per_row]]
    width = min(per_row, len(originals))
    padded = [np.concatenate([r, np.zeros((width - len(r), *r.shape[1:]), np.uint8)]) for r in rows]
    return make_grid(np.concatenate(padded), nrow=width)


# A Gaussian-mixture prior over the training latents (Ghosh et al. 2020, "From variational to
# deterministic autoencoders": sampling a 10-component GMM fitted to the latents instead of N(0, I)
# avoids the holes between the posteriors that make VAE samples blurry).

GMM_FILE = "prior-gmm.safetensors"


@dataclass
class GaussianMixturePrior:
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, z_dim)
    cholesky: np.ndarray  # (K, z_dim, z_dim): lower-triangular factors of the covariances
    meta: dict

    def __post_init__(self) -> None:
        # In float64, as numpy's choice checks them: float32 weights that summed to 1 closely enough as float32
        # (scikit-learn keeps float32 latents' dtype) fail that check once saved as float64 and read back.
        self.weights = np.asarray(self.weights, dtype=np.float64) / np.sum(self.weights, dtype=np.float64)

    def latents(self, seeds: Sequence[int]) -> torch.Tensor:
        """(len(seeds), z_dim): row i from its own generator seeded with seeds[i], like sample.latents."""
        rows = []
        for seed in seeds:
            rng = np.random.default_rng(int(seed))
            k = rng.choice(len(self.weights), p=self.weights)
            rows.append(self.means[k] + self.cholesky[k] @ rng.standard_normal(self.means.shape[1]))
        return torch.from_numpy(np.stack(rows)).float()


def gmm_prior(run: str | Path, components: int = 10, max_images: int = 20000, progress: bool = True) -> GaussianMixturePrior:
    """The GMM prior of a run's newest checkpoint: fitted to the posterior means of its training images
    once, then read from RUN/prior-gmm.safetensors while the checkpoint stays the same."""
    E, _, checkpoint = load_autoencoder(run)
    run_dir = Path(run) if Path(run).is_dir() else checkpoint.path.parent.parent
    path = run_dir / GMM_FILE
    meta = {"checkpoint": checkpoint.path.name, "step": checkpoint.state.get("step"), "components": components}
    if path.is_file():
        with safetensors.safe_open(path, framework="np") as f:
            saved = json.loads((f.metadata() or {}).get("facegen_gmm", "{}"))
            if all(saved.get(k) == v for k, v in meta.items()):
                return GaussianMixturePrior(f.get_tensor("weights"), f.get_tensor("means"), f.get_tensor("cholesky"), saved)
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError:
        raise ValueError("the GMM prior needs scikit-learn: pip install 'facegen[latent]'") from None
    dataset = checkpoint.dataset(progress=progress)
    indices = dataset.spread_indices(checkpoint.state["config"]["data"]["split"], max_images)
    z = encode(E, np.asarray(dataset.images[indices]))
    gmm = GaussianMixture(components, covariance_type="full", random_state=0, reg_covar=1e-4).fit(z)
    prior = GaussianMixturePrior(gmm.weights_, gmm.means_, np.linalg.cholesky(gmm.covariances_),
                                 {**meta, "images": len(z)})
    tensors = {"weights": prior.weights, "means": prior.means, "cholesky": prior.cholesky}
    write_bytes_atomic(path, safetensors.numpy.save({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in tensors.items()},
                                                    metadata={"facegen_gmm": json.dumps(prior.meta)}))
    return prior


# The report's figure: latent means in 2-D beside the same projection of the raw pixels.


def project_2d(x: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) by PCA (numpy SVD) or t-SNE (scikit-learn, on the first 50 principal components)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    if method == "pca":
        return x @ vt[:2].T
    if method != "tsne":
        raise ValueError(f"--method {method!r} is not known; choose pca or tsne")
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ValueError("t-SNE needs scikit-learn: pip install 'facegen[latent]' (or use --method pca)") from None
    perplexity = min(30.0, (len(x) - 1) / 3)
    return TSNE(2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(x @ vt[:50].T)


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour accuracy of binary labels in a 2-D picture: how well it separates them."""
    d = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    return float(((labels[nearest].mean(axis=1) > 0.5) == labels).mean())


def latent_plot(run: str | Path, attribute: str, out: str | Path, method: str = "pca", n: int = 1000,
                progress: bool = True) -> dict:
    """Scatter the held-out faces' latent means and their raw pixels in 2-D, coloured by an attribute."""
    E, _, checkpoint = load_autoencoder(run)
    dataset = checkpoint.dataset(progress=progress)
    if dataset.labels is None or not dataset.attr_names:
        raise ValueError(f"{dataset.meta['source']} has no attribute labels; latent-plot needs a labelled source "
                         "(a CelebA root with list_attr_celeba.txt, or synthetic:N)")
    if attribute not in dataset.attr_names:
        raise ValueError(f"unknown attribute {attribute!r}; this data has: {', '.join(dataset.attr_names)}")
    indices = dataset.spread_indices("holdout", n)
    images = np.asarray(dataset.images[indices])
    labels = dataset.labels[indices, dataset.attr_names.index(attribute)] > 0
    views = {"latent means (encoder)": project_2d(encode(E, images), method),
             "raw pixels": project_2d(images.astype(np.float32) / 255, method)}
    scores = {name: knn_accuracy(points, labels) for name, points in views.items()}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (name, points) in zip(axes, views.items()):
        for value, colour in ((False, "tab:blue"), (True, "tab:orange")):
            chosen = labels == value
            ax.scatter(*points[chosen].T, s=6, alpha=0.6, c=colour, label=f"{'' if value else 'not '}{attribute} ({chosen.sum()})")
        ax.set_title(f"{name}, {method.upper()}\n5-NN accuracy of {attribute}: {100 * scores[name]:.1f} %")
        ax.legend(fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{len(images)} held-out faces of {checkpoint.path.parent.parent.name} (step {checkpoint.state.get('step')})")
    fig.tight_layout()
    save_figure(fig, out)
    return {"attribute": attribute, "method": method, "n": len(images), "positive": int(labels.sum()),
            "knn_accuracy": scores, "majority": float(max(labels.mean(), 1 - labels.mean()))}
