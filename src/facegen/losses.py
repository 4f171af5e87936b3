"""GAN losses as small pure functions of discriminator logits; computed in fp32 whatever the autocast."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Discriminator loss: BCE of real against 1 plus fake against 0 (the same for bce and minimax)."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def g_loss(fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Generator loss: non-saturating -log D(G(z)) for bce; the original minimax log(1 - D(G(z)))."""
    fake_logits = fake_logits.float()
    if kind == "minimax":
        return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
