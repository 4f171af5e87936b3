"""VAE-GAN (Larsen et al. 2016): a VAE whose decoder is also a GAN generator, judged by a discriminator
whose inner features serve as the learned similarity metric for reconstructions.

E and G are the VAE's; D is dcgan's discriminator that also returns the activations of one inner
conv layer, taken before that layer's BatchNorm as in Larsen et al. (256 channels at 8x8 for 64 px).
"""

from __future__ import annotations

import torch
from torch import nn

from facegen.models import dcgan, split_resolution
from facegen.models.vae import Encoder


def default_feature_layer(resolution: int) -> int:
    """The strided conv whose output is the base size doubled once (8x8 at 64 px: Larsen's layer)."""
    _, depth = split_resolution(resolution)
    return depth - 1


class Discriminator(dcgan.Discriminator):
    """Image (B, 3, R, R) and labels or None -> (logits (B,), features (B, C, S, S) of conv layer `feature_layer`)."""

    def __init__(self, resolution: int = 64, base_channels: int = 64, spectral_norm: bool = False,
                 feature_layer: int | None = None, num_conditions: int = 0) -> None:
        super().__init__(resolution, base_channels, spectral_norm=spectral_norm, num_conditions=num_conditions)
        _, depth = split_resolution(resolution)
        self.feature_layer = feature_layer or default_feature_layer(resolution)
        if not 2 <= self.feature_layer <= depth:  # layer 1 has no BatchNorm and is followed by an in-place activation
            raise ValueError(f"model.feature_layer = {self.feature_layer} is not a strided conv of the {resolution} px "
                             f"discriminator that BatchNorm follows; choose 2..{depth} (default {default_feature_layer(resolution)})")
        convs = [i for i, layer in enumerate(self.net) if isinstance(layer, nn.Conv2d)]
        self.tap = convs[self.feature_layer - 1]  # index in self.net of that conv

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        features = projected = None
        for i, layer in enumerate(self.net):
            if i == len(self.net) - 2 and self.projection is not None:  # the head's input: the last feature map
                projected = self.projection(x, y)
            x = layer(x)
            if i == self.tap:
                features = x  # BatchNorm is not in place, so this tensor stays as the conv wrote it
        logits = x.squeeze(1)
        return (logits if projected is None else logits + projected), features


def build(resolution: int, z_dim: int = 128, base_channels: int = 64, g_activation: str = "relu",
          spectral_norm: bool = False, feature_layer: int | None = None, num_conditions: int = 0) -> dict[str, nn.Module]:
    return {
        "E": Encoder(resolution, z_dim, base_channels, num_conditions),
        "G": dcgan.Generator(resolution, z_dim, "normal", base_channels, g_activation, num_conditions=num_conditions),
        "D": Discriminator(resolution, base_channels, spectral_norm, feature_layer, num_conditions),
    }
