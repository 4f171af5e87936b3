"""GAN losses and the stabilisation tricks that act on them, as small pure functions.

Every random draw comes from the generator the caller passes (the training step's own), so a run
and its resumed continuation draw the same noise. Losses are computed in fp32 whatever the autocast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import scipy.special
import torch
import torch.nn.functional as F

LOSS_KINDS = ("bce", "minimax", "hinge")


@dataclass(frozen=True)
class LabelNoise:
    """How D's targets are softened: none, beta(a,b), smooth(p) or flip(p)."""

    kind: str = "none"
    a: float = 0.0  # beta: first parameter; smooth / flip: the probability or amount p
    b: float = 0.0  # beta: second parameter


def parse_label_noise(text: str) -> LabelNoise:
    """'beta(1,5)', 'smooth(0.1)', 'flip(0.05)', a bare number (= smooth), or 'none'."""
    text = str(text).strip().lower().replace(" ", "")
    if text in ("", "none"):
        return LabelNoise()
    try:
        return _checked(LabelNoise("smooth", float(text)))  # a bare number is plain smoothing
    except ValueError as err:
        if "label_noise" in str(err):
            raise
    match = re.fullmatch(r"(beta|smooth|flip)\(([^,()]+)(?:,([^,()]+))?\)", text)
    if not match or (match[1] == "beta") != (match[3] is not None):
        raise ValueError(f"loss.label_noise = {text!r} is not understood; write beta(a,b), smooth(p), flip(p), a number, or none")
    try:
        a, b = float(match[2]), float(match[3] or 0.0)
    except ValueError:
        raise ValueError(f"loss.label_noise = {text!r}: the parameters must be numbers") from None
    return _checked(LabelNoise(match[1], a, b))


def _checked(noise: LabelNoise) -> LabelNoise:
    if noise.kind == "beta" and (noise.a <= 0 or noise.b <= 0):
        raise ValueError(f"loss.label_noise = beta({noise.a:g},{noise.b:g}): Beta parameters must be > 0, e.g. beta(1,5)")
    if noise.kind in ("smooth", "flip") and not 0 <= noise.a < 1:
        raise ValueError(f"loss.label_noise = {noise.kind}({noise.a:g}): p must be in [0, 1), e.g. {noise.kind}(0.1)")
    return noise


def d_targets(n: int, noise: LabelNoise, generator: torch.Generator | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets (real, fake) for D's BCE: 1 and 0, softened as `noise` says.

    beta(a,b) subtracts a Beta draw from the real target and adds one to the fake target (the 32 px
    report, after Salimans et al.); smooth(p) is one-sided smoothing (real = 1 - p); flip(p) swaps
    each label with probability p.
    """
    ones, zeros = torch.ones(n, device=device), torch.zeros(n, device=device)
    if noise.kind == "beta":  # inverse CDF of uniform draws: exact Beta samples from the step's generator
        u = torch.rand(2, n, generator=generator, device=device).cpu().double().numpy()
        draws = torch.from_numpy(scipy.special.betaincinv(noise.a, noise.b, u)).float().to(device)
        return ones - draws[0], zeros + draws[1]
    if noise.kind == "smooth":
        return ones - noise.a, zeros
    if noise.kind == "flip":
        flips = torch.rand(2, n, generator=generator, device=device) < noise.a
        return torch.where(flips[0], zeros, ones), torch.where(flips[1], ones, zeros)
    return ones, zeros


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce",
           label_noise: LabelNoise = LabelNoise(), generator: torch.Generator | None = None) -> torch.Tensor:
    """D's loss: BCE against (noisy) targets for bce and minimax; hinge: relu(1 - real) + relu(1 + fake)."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    real_target, fake_target = d_targets(len(real_logits), label_noise, generator, real_logits.device)
    return (F.binary_cross_entropy_with_logits(real_logits, real_target)
            + F.binary_cross_entropy_with_logits(fake_logits, fake_target))


def g_loss(fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """G's loss: non-saturating -log D(G(z)) for bce, the original log(1 - D(G(z))) for minimax, -D(G(z)) for hinge."""
    fake_logits = fake_logits.float()
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "minimax":
        return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def instance_noise_sigma(sigma: float, step: int, anneal_steps: int = 0) -> float:
    """The instance-noise scale at a step: constant, or annealed linearly to zero over anneal_steps."""
    if anneal_steps <= 0:
        return sigma
    return sigma * max(0.0, 1.0 - step / anneal_steps)


def add_instance_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    """x + N(0, sigma^2), applied to real and fake alike before D (Sønderby et al. 2016)."""
    if sigma <= 0:
        return x
    return x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
