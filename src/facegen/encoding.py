"""What an encoder model (VAE, VAE-GAN) gives: latent means of images, reconstructions and their error,
a Gaussian-mixture prior fitted to the training latents, and a 2-D picture of the latent space.

Works from a checkpoint alone; scikit-learn (the `latent` extra) is imported only by the functions
that fit a mixture or run t-SNE.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facegen.images import make_grid, to_float

FAMILIES_WITH_ENCODER = ("vae", "vaegan")


@torch.inference_mode()
def encode(E: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """float32 (N, z_dim): the posterior means of uint8 (N, R, R, 3) images, with E in eval mode."""
    was_training = E.training
    E.eval()
    device = next(E.parameters()).device
    out = [E(to_float(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)))[0].float().cpu()
           for i in range(0, len(images), batch_size)]
    E.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, E.z_dim), np.float32)


@torch.inference_mode()
def decode(G: nn.Module, z: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """uint8 (N, R, R, 3) images of latents, with G in eval mode."""
    from facegen.sample import generate

    return generate(G, torch.as_tensor(z, dtype=torch.float32), batch_size)


def reconstruct(E: nn.Module, G: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 images decoded from the posterior means of uint8 images: deterministic, no sampling."""
    return decode(G, encode(E, images, batch_size), batch_size)


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
