"""Residual G and D in the style of SNGAN (Miyato et al. 2018; Gulrajani et al. 2017's 32 px ResNets).

G projects z densely to a 4x4 (or 7x7) map and doubles it with residual blocks (BatchNorm, ReLU,
nearest upsampling, two 3x3 convs; a 1x1 conv on the upsampled shortcut); D halves the image with
residual blocks (ReLU, two 3x3 convs, 2x2 average pooling; no BatchNorm, so each sample's logit is its
own) down to the base map, then ReLU, a sum over positions and a linear head. Channels follow dcgan's
rule (`base_channels` at the finest map, doubled per halving), so the two families compare at equal
widths; a residual block costs about 3x the multiply-adds of a DCGAN block at the same widths.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facegen.models import split_resolution
from facegen.models.conditioning import Projection, condition_batchnorm, run
from facegen.models.dcgan import _channels, add_spectral_norm


def init_weights(module: nn.Module) -> None:
    """Xavier-uniform weights, gain sqrt(2) for 3x3 convs and 1 for the rest, zero biases (Miyato et al.'s code)."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        gain = math.sqrt(2) if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3) else 1.0
        nn.init.xavier_uniform_(module.weight, gain)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class UpBlock(nn.Module):
    """(B, C, S, S) -> (B, C', 2S, 2S): BN-ReLU-up-conv3x3-BN-ReLU-conv3x3, plus up-conv1x1 of the input."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(run(self.bn1, x, y)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(run(self.bn2, self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    """(B, C, S, S) -> (B, C', S/2, S/2): [ReLU]-conv3x3-ReLU-conv3x3-avgpool, plus conv1x1-avgpool of the input.

    The first block sees the image itself, so it starts with a conv instead of a ReLU and pools its
    shortcut before the 1x1 conv (SNGAN's "optimized" block: the same function, 3 channels cheaper).
    """

    def __init__(self, c_in: int, c_out: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = F.avg_pool2d(self.conv2(F.relu(h)), 2)
        skip = self.shortcut(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.shortcut(x), 2)
        return h + skip


class Generator(nn.Module):
    """z (B, z_dim) -> image (B, 3, R, R) in [-1, 1]."""

    edit_space = "z"  # what the latent tools move: a Gaussian prior's z (its samples lie on a thin shell)

    def __init__(self, resolution: int = 32, z_dim: int = 128, z_dist: str = "normal", base_channels: int = 64,
                 num_conditions: int = 0) -> None:
        super().__init__()
        self.resolution, self.z_dim, self.z_dist = resolution, z_dim, z_dist  # read by sampling
        self.num_conditions = num_conditions
        base, _ = split_resolution(resolution)
        chans = _channels(resolution, base_channels) + [base_channels]  # 32 px at 32: 128, 64, 32, 32 at 4..32
        self.project = nn.Sequential(nn.Linear(z_dim, chans[0] * base * base), nn.Unflatten(1, (chans[0], base, base)))
        self.blocks = nn.Sequential(*(UpBlock(c_in, c_out) for c_in, c_out in zip(chans, chans[1:])))
        self.to_rgb = nn.Sequential(nn.BatchNorm2d(chans[-1]), nn.ReLU(), nn.Conv2d(chans[-1], 3, 3, 1, 1), nn.Tanh())
        self.apply(init_weights)
        condition_batchnorm(self, num_conditions)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(z)
        for block in self.blocks:
            h = block(h, y)
        return run(self.to_rgb, h, y)

    def to_edit_space(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The latent tools edit z itself (a conditional model's labels stay beside it)."""
        return z

    def from_edit_space(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self(z, y)


class Discriminator(nn.Module):
    """Image (B, 3, R, R) -> logits (B,)."""

    def __init__(self, resolution: int = 32, base_channels: int = 64, spectral_norm: bool = False, num_conditions: int = 0) -> None:
        super().__init__()
        chans = [3] + _channels(resolution, base_channels)[::-1]  # 32 px at 32: 3 -> 32, 64, 128 at 16, 8, 4
        self.blocks = nn.Sequential(*(DownBlock(c_in, c_out, first=i == 0) for i, (c_in, c_out) in enumerate(zip(chans, chans[1:]))))
        self.head = nn.Linear(chans[-1], 1)
        self.projection = Projection(num_conditions, chans[-1]) if num_conditions else None
        self.apply(init_weights)
        if spectral_norm:
            add_spectral_norm(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map before the head (B, C, base, base): the projection's perceptual distance."""
        return F.relu(self.blocks(x))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        logits = self.head(h.sum(dim=(2, 3))).squeeze(1)
        return logits if self.projection is None else logits + self.projection(h, y)


def build(
    resolution: int,
    z_dim: int = 128,
    z_dist: str = "normal",
    base_channels: int = 64,
    spectral_norm: bool = False,
    num_conditions: int = 0,
) -> dict[str, nn.Module]:
    return {"G": Generator(resolution, z_dim, z_dist, base_channels, num_conditions),
            "D": Discriminator(resolution, base_channels, spectral_norm, num_conditions)}
