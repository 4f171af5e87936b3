"""DCGAN (Radford et al. 2015) at any supported resolution, including the 56 px report's dense variant.

Depth and channel counts derive from the resolution: a 4x4 (or 7x7) map doubles up to the image
size while the channels halve down to `base_channels`, so 64 px gives the canonical 512-256-128-64.
"""

from __future__ import annotations

import torch
from torch import nn

from facegen.models import split_resolution
from facegen.models.conditioning import Projection, condition_batchnorm, run

D_KERNELS = (3, 4)  # D's stride-2 kernel: 3 or Radford et al.'s 4; with padding 1 both halve an even size


def _activation(name: str) -> nn.Module:
    return nn.ReLU(inplace=True) if name == "relu" else nn.LeakyReLU(0.2, inplace=True)


def _dropout(p: float) -> list[nn.Module]:
    return [nn.Dropout(p)] if p else []


def _channels(resolution: int, base_channels: int) -> list[int]:
    """Channels from the smallest map to the largest: 64 px, 64 -> [512, 256, 128, 64]."""
    _, depth = split_resolution(resolution)
    return [base_channels * 2 ** (depth - 1 - i) for i in range(depth)]


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for conv and linear weights, N(1, 0.02) for BatchNorm scales (Radford et al.)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def add_spectral_norm(net: nn.Module) -> nn.Module:
    """Wrap every Conv2d and Linear weight of `net` in spectral normalisation (Miyato et al. 2018).

    BatchNorm stays as it is. Call after init_weights: the wrapped weight is computed, not a parameter.
    """
    for module in list(net.modules()):  # listed first: wrapping adds submodules
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(module)
    return net


def generator_blocks(resolution: int, z_dim: int, chans: list[int], g_activation: str, dense: bool,
                     dropout: float) -> list[nn.Sequential]:
    """G's body: a block projecting z to (B, chans[0], base, base), then one block per doubling through chans."""
    base, _ = split_resolution(resolution)
    if dense:  # (B, z_dim) -> (B, C0, base, base) through a dense layer
        project = [nn.Linear(z_dim, chans[0] * base * base, bias=False), nn.Unflatten(1, (chans[0], base, base))]
    else:  # (B, z_dim, 1, 1) -> (B, C0, base, base) through a transposed conv
        project = [nn.Unflatten(1, (z_dim, 1, 1)), nn.ConvTranspose2d(z_dim, chans[0], base, 1, 0, bias=False)]
    blocks = [nn.Sequential(*project, nn.BatchNorm2d(chans[0]), _activation(g_activation), *_dropout(dropout))]
    for c_in, c_out in zip(chans, chans[1:]):  # (B, C, S, S) -> (B, C', 2S, 2S)
        blocks.append(nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                                    _activation(g_activation), *_dropout(dropout)))
    return blocks


class Generator(nn.Module):
    """z (B, z_dim) and labels y (B, num_conditions) or None -> image (B, 3, R, R) in [-1, 1]."""

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
        chans = _channels(resolution, base_channels)
        blocks = generator_blocks(resolution, z_dim, chans, g_activation, dense, dropout)
        to_rgb = [nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]  # (B, C, R/2, R/2) -> (B, 3, R, R)
        self.net = nn.Sequential(*blocks, *to_rgb)
        self.apply(init_weights)
        condition_batchnorm(self.net, num_conditions)  # after init_weights, which would zero its gains

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return run(self.net, z, y)

    def to_edit_space(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The latent tools edit z itself (a conditional model's labels stay beside it)."""
        return z

    def from_edit_space(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self(z, y)


class Discriminator(nn.Module):
    """Image (B, 3, R, R) and labels y (B, num_conditions) or None -> logits (B,); the sigmoid lives in the loss for
    numerical stability. A conditional D adds the projection of y onto its last features."""

    def __init__(
        self,
        resolution: int = 64,
        base_channels: int = 64,
        dense: bool = False,
        dropout: float = 0.0,
        spectral_norm: bool = False,
        kernel_size: int = 4,
        num_conditions: int = 0,
    ) -> None:
        super().__init__()
        if kernel_size not in D_KERNELS:
            raise ValueError(f"model.d_kernel = {kernel_size}: D's stride-2 convs take kernel 4 (Radford et al.) or 3")
        base, _ = split_resolution(resolution)
        chans = _channels(resolution, base_channels)[::-1]  # 64 px: [64, 128, 256, 512]
        # No BatchNorm on the first block (Radford et al.): (B, 3, R, R) -> (B, C0, R/2, R/2)
        layers = [nn.Conv2d(3, chans[0], kernel_size, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True), *_dropout(dropout)]
        for c_in, c_out in zip(chans, chans[1:]):  # (B, C, S, S) -> (B, 2C, S/2, S/2)
            layers += [nn.Conv2d(c_in, c_out, kernel_size, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True),
                       *_dropout(dropout)]
        if dense:  # (B, C, base, base) -> (B, 1); either head is the last two modules (see features)
            layers += [nn.Flatten(), nn.Linear(chans[-1] * base * base, 1)]
        else:
            layers += [nn.Conv2d(chans[-1], 1, base, 1, 0, bias=False), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.projection = Projection(num_conditions, chans[-1]) if num_conditions else None
        self.apply(init_weights)
        if spectral_norm:
            add_spectral_norm(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map before the head (B, C, base, base): the projection's perceptual distance."""
        return self.net[:-2](x)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.projection is None:
            return self.net(x).squeeze(1)
        h = self.features(x)
        return self.net[-2:](h).squeeze(1) + self.projection(h, y)


def build(
    resolution: int,
    z_dim: int = 100,
    z_dist: str = "normal",
    base_channels: int = 64,
    g_activation: str = "relu",
    dense: bool = False,
    dropout: float = 0.0,
    spectral_norm: bool = False,
    d_base_channels: int | None = None,
    d_kernel: int = 4,
    num_conditions: int = 0,
) -> dict[str, nn.Module]:
    return {
        "G": Generator(resolution, z_dim, z_dist, base_channels, g_activation, dense, dropout, num_conditions),
        "D": Discriminator(resolution, d_base_channels or base_channels, dense, dropout, spectral_norm, d_kernel, num_conditions),
    }
