"""The attribute judge: a small CNN that predicts the 40 CelebA attributes (multi-label) of a face.

It measures generators rather than being one: attribute rates of samples next to the data's, and
how often a latent edit produces the attribute it aims for. Depth derives from the resolution like
the DCGAN's: stride-2 blocks halve the image down to the 4x4 (or 7x7) base while channels double.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facegen.models import split_resolution


class Judge(nn.Module):
    """Image (B, 3, R, R) in [-1, 1] -> logits (B, A), one independent yes/no per attribute."""

    def __init__(self, resolution: int = 64, num_attributes: int = 40, base_channels: int = 32,
                 attr_names: Sequence[str] = ()) -> None:
        super().__init__()
        if attr_names and len(attr_names) != num_attributes:
            raise ValueError(f"judge: {len(attr_names)} attribute names for num_attributes={num_attributes}; "
                             "pass one name per attribute")
        # Kept on the model (and in the checkpoint's architecture) so predictions carry their names.
        self.resolution, self.attr_names = resolution, tuple(attr_names) or tuple(f"attr_{i}" for i in range(num_attributes))
        _, depth = split_resolution(resolution)
        chans = [base_channels * 2**i for i in range(depth)]  # 64 px, 32: [32, 64, 128, 256]
        layers, c_in = [], 3
        for c_out in chans:  # (B, C, S, S) -> (B, C', S/2, S/2), down to the 4x4 (or 7x7) base
            layers += [
                nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True),
            ]
            c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # (B, C, base, base) -> (B, C)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], num_attributes)  # (B, C) -> (B, A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build(resolution: int, num_attributes: int, base_channels: int = 32, attr_names: Sequence[str] = ()) -> dict[str, nn.Module]:
    return {"C": Judge(resolution, num_attributes, base_channels, attr_names)}
