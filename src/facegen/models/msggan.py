"""MSG-GAN (Karnewar & Wang 2019): DCGAN blocks with an image at every scale, G to D.

G emits an RGB image at every scale from the 4x4 (or 7x7) base up to the resolution, and D takes
each scale in at the depth where its features have that size, so gradients reach every block of G
directly instead of only through the finest image. Depth and channels follow dcgan's rule; G adds
one block at full resolution (base_channels wide) so that its finest image also comes from a 1x1
to_rgb. Reals are given to D as one image; D builds their pyramid by average pooling, as the paper
downsamples reals.

Choices: D combines an image with the features by plain channel concatenation of the raw 3
channels (the paper's phi_simple, no from_rgb parameters), so D is dcgan's D with 3 more input
channels per block; no minibatch-stddev layer (BatchNorm already mixes the batch, and the
comparison with dcgan then isolates the multi-scale connections).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from facegen.models import split_resolution
from facegen.models.conditioning import Projection, condition_batchnorm, run
from facegen.models.dcgan import _channels, _dropout, add_spectral_norm, generator_blocks, init_weights


def pyramid(x: torch.Tensor) -> list[torch.Tensor]:
    """(B, 3, R, R) -> [(B, 3, base, base), ..., (B, 3, R, R)], coarsest first, by 2x2 average pooling."""
    base, depth = split_resolution(x.shape[-1])
    scales = [x]
    for _ in range(depth):  # (B, 3, S, S) -> (B, 3, S/2, S/2)
        scales.append(F.avg_pool2d(scales[-1], 2))
    return scales[::-1]


class Generator(nn.Module):
    """z (B, z_dim) and labels y or None -> [(B, 3, base, base), ..., (B, 3, R, R)] in [-1, 1]; the last one is the image."""

    edit_space = "z"  # what the latent tools move: a Gaussian prior's z (its samples lie on a thin shell)

    def __init__(
        self,
        resolution: int = 64,
        z_dim: int = 100,
        z_dist: str = "normal",
        base_channels: int = 64,
        g_activation: str = "relu",
        dense: bool = False,
        dropout: float = 0.0,
        num_conditions: int = 0,
    ) -> None:
        super().__init__()
        self.resolution, self.z_dim, self.z_dist = resolution, z_dim, z_dist  # read by sampling
        self.num_conditions = num_conditions
        chans = _channels(resolution, base_channels) + [base_channels]  # 64 px: 512, 256, 128, 64, 64 at 4..64
        self.blocks = nn.ModuleList(generator_blocks(resolution, z_dim, chans, g_activation, dense, dropout))
        # (B, C, S, S) -> (B, 3, S, S) at every scale
        self.to_rgb = nn.ModuleList(nn.Sequential(nn.Conv2d(c, 3, 1), nn.Tanh()) for c in chans)
        self.apply(init_weights)
        condition_batchnorm(self.blocks, num_conditions)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:
        images, h = [], z
        for block, to_rgb in zip(self.blocks, self.to_rgb):
            h = run(block, h, y)
            images.append(to_rgb(h))
        return images

    def to_edit_space(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The latent tools edit z itself (a conditional model's labels stay beside it)."""
        return z

    def from_edit_space(self, z: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:
        return self(z, y)


class Discriminator(nn.Module):
    """A pyramid (coarsest first, as G emits it) or one real image (B, 3, R, R) -> logits (B,)."""

    def __init__(
        self,
        resolution: int = 64,
        base_channels: int = 64,
        dense: bool = False,
        dropout: float = 0.0,
        spectral_norm: bool = False,
        num_conditions: int = 0,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        base, depth = split_resolution(resolution)
        self.sizes = [base * 2**i for i in range(depth + 1)]  # the scales D expects, coarsest first
        chans = _channels(resolution, base_channels)[::-1]  # 64 px: [64, 128, 256, 512]
        # No BatchNorm on the first block (Radford et al.): (B, 3, R, R) -> (B, C0, R/2, R/2)
        stages = [nn.Sequential(nn.Conv2d(3, chans[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True), *_dropout(dropout))]
        for c_in, c_out in zip(chans, chans[1:]):  # (B, C + 3, S, S) -> (B, 2C, S/2, S/2)
            stages.append(nn.Sequential(nn.Conv2d(c_in + 3, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                                        nn.LeakyReLU(0.2, inplace=True), *_dropout(dropout)))
        if dense:  # (B, C + 3, base, base) -> (B, 1)
            stages.append(nn.Sequential(nn.Flatten(), nn.Linear((chans[-1] + 3) * base * base, 1)))
        else:
            stages.append(nn.Sequential(nn.Conv2d(chans[-1] + 3, 1, base, 1, 0, bias=False), nn.Flatten()))
        self.stages = nn.ModuleList(stages)  # stage i takes the scale of size sizes[-1 - i]
        self.projection = Projection(num_conditions, chans[-1] + 3) if num_conditions else None  # on the head's input
        self.apply(init_weights)
        if spectral_norm:
            add_spectral_norm(self)

    def forward(self, images: torch.Tensor | Sequence[torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        scales = pyramid(images) if isinstance(images, torch.Tensor) else list(images)
        got = [tuple(x.shape[-2:]) for x in scales]
        if got != [(s, s) for s in self.sizes]:
            raise ValueError(f"this {self.resolution} px MSG-GAN discriminator takes images of sizes {self.sizes} "
                             f"(coarsest first) or one {self.resolution} px image; got sizes {got}")
        h = None
        for i, (stage, x) in enumerate(zip(self.stages, reversed(scales))):  # finest first
            h = x if h is None else torch.cat([x.to(h.dtype), h], dim=1)  # the paper's simple concat
            projected = self.projection(h, y) if self.projection is not None and i == len(self.stages) - 1 else 0
            h = stage(h)
        return h.squeeze(1) + projected


def build(
    resolution: int,
    z_dim: int = 100,
    z_dist: str = "normal",
    base_channels: int = 64,
    g_activation: str = "relu",
    dense: bool = False,
    dropout: float = 0.0,
    spectral_norm: bool = False,
    num_conditions: int = 0,
) -> dict[str, nn.Module]:
    return {
        "G": Generator(resolution, z_dim, z_dist, base_channels, g_activation, dense, dropout, num_conditions),
        "D": Discriminator(resolution, base_channels, dense, dropout, spectral_norm, num_conditions),
    }
