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
RECON_KINDS = ("mse", "l1", "bce", "pixel", "dis_feature")  # pixel = mse; dis_feature = squared error of D's features


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


def d_targets(n: int, noise: LabelNoise, generator: torch.Generator | None, device: torch.device,
              n_fake: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets (real (n,), fake (n_fake or n,)) for D's BCE: 1 and 0, softened as `noise` says.

    beta(a,b) subtracts a Beta draw from the real target and adds one to the fake target (the 32 px
    report, after Salimans et al.); smooth(p) is one-sided smoothing (real = 1 - p); flip(p) swaps
    each label with probability p. One uniform draw per target, reals first.
    """
    n_fake = n if n_fake is None else n_fake
    ones, zeros = torch.ones(n, device=device), torch.zeros(n_fake, device=device)
    if noise.kind == "beta":  # inverse CDF of uniform draws: exact Beta samples from the step's generator
        u = torch.rand(n + n_fake, generator=generator, device=device).cpu().double().numpy()
        draws = torch.from_numpy(scipy.special.betaincinv(noise.a, noise.b, u)).float().to(device)
        return ones - draws[:n], zeros + draws[n:]
    if noise.kind == "smooth":
        return ones - noise.a, zeros
    if noise.kind == "flip":
        flips = torch.rand(n + n_fake, generator=generator, device=device) < noise.a
        return torch.where(flips[:n], 0.0, ones), torch.where(flips[n:], 1.0, zeros)
    return ones, zeros


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce",
           label_noise: LabelNoise = LabelNoise(), generator: torch.Generator | None = None) -> torch.Tensor:
    """D's loss: BCE against (noisy) targets for bce and minimax; hinge: relu(1 - real) + relu(1 + fake)."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    real_target, fake_target = d_targets(len(real_logits), label_noise, generator, real_logits.device, len(fake_logits))
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


def r1_penalty(real_logits: torch.Tensor, inputs: list[torch.Tensor], scale: float = 1.0) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): the squared norm of D's gradient at the real images it saw, summed over
    an image's pixels (and scales) and averaged over the batch. The graph is kept so that D descends it.

    `scale` is the fp16 loss scale: the logits are scaled before differentiating, so the input gradients do
    not underflow, and the gradients unscaled after (PyTorch's AMP recipe for gradient penalties).
    """
    grads = torch.autograd.grad(real_logits.float().sum() * scale, inputs, create_graph=True)
    return sum((g.float() / scale).pow(2).flatten(1).sum(1) for g in grads).mean()


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


# VAE terms. Every term is summed over an image's pixels (or latent dimensions, or features) and
# averaged over the batch, so beta = 1 is the ELBO of a Gaussian decoder (see docs/vae.md).


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image, summed over z and averaged over the batch."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Per-image sum over pixels of images in [-1, 1], averaged over the batch.

    mse (= pixel): squared error; l1: absolute error; bce: Bernoulli cross-entropy of the intensities
    mapped to [0, 1] (the decoder's tanh output read as a probability).
    """
    x_hat, x = x_hat.float(), x.float()
    if kind in ("mse", "pixel"):
        error = (x_hat - x).pow(2)
    elif kind == "l1":
        error = (x_hat - x).abs()
    elif kind == "bce":
        error = F.binary_cross_entropy(((x_hat + 1) / 2).clamp(1e-6, 1 - 1e-6), (x + 1) / 2, reduction="none")
    else:
        raise ValueError(f"loss.recon = {kind!r} is not a pixel loss; choose one of mse, l1, bce")
    return error.flatten(1).sum(dim=1).mean()


def feature_loss(features_hat: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Larsen et al.'s learned similarity: 0.5 * sum (D_l(x~) - D_l(x))^2 per image, averaged over the batch."""
    return 0.5 * (features_hat.float() - features.float()).pow(2).flatten(1).sum(dim=1).mean()


def kl_weight(beta: float, step: int, warmup_steps: int = 0) -> float:
    """beta, ramped linearly from 0 over the first warmup_steps steps (Bowman et al. 2016)."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)


def equilibrium_gates(real_loss: float, fake_loss: float, equilibrium: float, margin: float) -> tuple[bool, bool]:
    """(update D, keep G's GAN term) by Larsen et al.'s rule on D's BCE of reals and fakes.

    D skips its update when it is far ahead (either loss below equilibrium - margin); G's GAN term is
    skipped when D is far behind (either loss above equilibrium + margin); never both. 0 turns it off.
    """
    if equilibrium <= 0:
        return True, True
    train_d = not (real_loss < equilibrium - margin or fake_loss < equilibrium - margin)
    train_g = not (real_loss > equilibrium + margin or fake_loss > equilibrium + margin)
    if not (train_d or train_g):
        return True, True
    return train_d, train_g
