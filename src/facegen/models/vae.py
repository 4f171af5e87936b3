"""VAE (Kingma & Welling 2014): a strided-conv encoder to (mu, logvar) and a DCGAN-shaped decoder.

The decoder is dcgan's Generator, so a VAE samples, previews and is scored exactly like a GAN (z ~
N(0, I) through `G`), and the encoder mirrors dcgan's discriminator body. Depth and widths derive
from the resolution by the same rule.
"""

from __future__ import annotations

import torch
from torch import nn

from facegen.models import split_resolution
from facegen.models.dcgan import Generator, _channels, init_weights


class Encoder(nn.Module):
    """Image (B, 3, R, R) -> (mu, logvar), each (B, z_dim): the posterior q(z | x) = N(mu, exp(logvar)). A conditional
    encoder also reads the image's labels y (B, K), as K constant input channels: q(z | x, y)."""

    def __init__(self, resolution: int = 64, z_dim: int = 128, base_channels: int = 64, num_conditions: int = 0) -> None:
        super().__init__()
        self.resolution, self.z_dim, self.num_conditions = resolution, z_dim, num_conditions
        base, _ = split_resolution(resolution)
        chans = _channels(resolution, base_channels)[::-1]  # 64 px: [64, 128, 256, 512]
        layers, c_in = [], 3 + num_conditions
        for c_out in chans:  # (B, C, S, S) -> (B, C', S/2, S/2), down to the 4x4 (or 7x7) base
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        self.body = nn.Sequential(*layers, nn.Flatten())  # (B, C, base, base) -> (B, C * base * base)
        self.head = nn.Linear(chans[-1] * base * base, 2 * z_dim)  # -> (B, 2 * z_dim): mu and logvar side by side
        self.apply(init_weights)  # N(0, 0.02): mu and logvar start near 0, the posterior near the prior

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if y is not None:  # (B, 3, R, R) -> (B, 3 + K, R, R)
            x = torch.cat([x, y.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        mu, logvar = self.head(self.body(x)).float().chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)  # exp() stays finite in fp32 and bf16


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I) from the caller's generator: differentiable in mu and logvar."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def build(resolution: int, z_dim: int = 128, base_channels: int = 64, g_activation: str = "relu",
          num_conditions: int = 0) -> dict[str, nn.Module]:
    return {
        "E": Encoder(resolution, z_dim, base_channels, num_conditions),
        "G": Generator(resolution, z_dim, "normal", base_channels, g_activation, num_conditions=num_conditions),
    }


def build_encoder(resolution: int, z_dim: int = 128, base_channels: int = 64) -> dict[str, nn.Module]:
    """An encoder alone, e.g. one trained afterwards for a GAN (`facegen train-encoder`)."""
    return {"E": Encoder(resolution, z_dim, base_channels)}
