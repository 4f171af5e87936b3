"""How a label vector y enters the networks: one module for every family.

y is (B, K), one column per attribute of `model.conditions`: +1 present, -1 absent, 0 unspecified (a user
who asks only for some attributes). An unconditional model has K = 0 and is given y = None: it builds none
of the layers below and runs exactly as before.

- Generators: every BatchNorm becomes a conditional BatchNorm (BigGAN's way, Brock et al. 2019): the
  normalisation without its own affine, then a gain and a bias per channel from a linear map of y, starting
  at gain 1 and bias 0, so an untrained conditional G is the unconditional one.
- Discriminators: a projection head (Miyato & Koyama 2018): <embed(y), features> added to the logit, with
  one learned embedding per attribute, summed as y weighs them (0 for unspecified adds nothing).
"""

from __future__ import annotations

import torch
from torch import nn


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d whose per-channel gain and bias come from y (B, K)."""

    def __init__(self, norm: nn.BatchNorm2d, conditions: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(norm.num_features, norm.eps, norm.momentum, affine=False)
        self.gain = nn.Linear(conditions, norm.num_features)
        self.bias = nn.Linear(conditions, norm.num_features)
        for layer, start in ((self.gain, 1.0), (self.bias, 0.0)):
            nn.init.zeros_(layer.weight)
            nn.init.constant_(layer.bias, start)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.norm(x)  # (B, C, H, W)
        return out * self.gain(y.to(out.dtype))[:, :, None, None] + self.bias(y.to(out.dtype))[:, :, None, None]


def condition_batchnorm(module: nn.Module, conditions: int) -> nn.Module:
    """Replace every BatchNorm2d inside `module` by a ConditionalBatchNorm2d (in place); nothing when conditions is 0."""
    if not conditions:
        return module
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, ConditionalBatchNorm2d(child, conditions))
        else:
            condition_batchnorm(child, conditions)
    return module


def run(module: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Run a Sequential (nested ones too), handing y to the conditional layers; a plain module is just called."""
    if isinstance(module, ConditionalBatchNorm2d):
        return module(x, y)
    if isinstance(module, nn.Sequential) and y is not None:
        for child in module:
            x = run(child, x, y)
        return x
    return module(x)


class Projection(nn.Module):
    """The projection discriminator's label term: <embed(y), h> for pooled features h (B, C) -> (B,)."""

    def __init__(self, conditions: int, channels: int) -> None:
        super().__init__()
        self.embed = nn.Linear(conditions, channels, bias=False)  # column k: attribute k's embedding
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = features.flatten(2).sum(dim=2) if features.dim() == 4 else features  # (B, C)
        return (self.embed(y.to(h.dtype)) * h).sum(dim=1)
