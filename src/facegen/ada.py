"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"): a wide set of transforms shown to D with a probability p that D's own outputs steer.

Like DiffAugment (augment.py), ADA augments everything D sees, reals and fakes, in D's update and in G's
(G's gradient flows back through it), so G is never rewarded for producing the augmentations. Unlike it,
each transform is applied to a sample only with probability p, and p follows D's overfitting: after every
`interval` steps, r_t = E[sign(D(real))] over those steps moves p up when D is too sure of the reals
(r_t above the target) and down when it is not. The paper shows that transforms shown with p below about
0.8 do not leak into G's samples, because their distribution stays distinguishable from the data's.

The transforms and their strengths are the paper's 'bgc' pipeline (its Appendix B, the official defaults):
- b, blit: x-flip, a quarter turn by 0-3 quarters, an integer translation of up to 1/8 of the size;
- g, geometric: isotropic scaling (lognormal, std 0.2 octaves), a rotation of any angle (before and after
  the anisotropic scaling, each with probability 1 - sqrt(1 - p)), anisotropic scaling (std 0.2 octaves),
  a fractional translation (normal, std 1/8 of the size);
- c, colour: brightness (+N(0, 0.2)), contrast (x lognormal, std 0.5 octaves), luma flip, hue rotation
  about the luma axis (any angle), saturation (x lognormal, std 1 octave).
b and g compose into one inverse affine matrix per sample, applied by one bilinear `grid_sample` with
reflection padding (the official code adds a windowed-sinc 2x upsampling around it, which we leave out:
at 32-64 px it costs more than the network's first layers); c is one 4x4 colour matrix per sample. The
colour transforms, as in the official code, do not clamp: a brightened face may leave [-1, 1].

A pyramid (MSG-GAN's scales, coarsest first) or a list of same-size batches (the VAE-GAN's face and its
reconstruction) gets one draw per sample for all its members: the matrices are in normalised coordinates
and per-pixel colours, so they mean the same at every scale.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facegen import distributed

GROUPS = {"b": "blit (x-flip, quarter turns, integer translation)",
          "g": "geometric (scaling, rotation, anisotropic scaling, fractional translation)",
          "c": "colour (brightness, contrast, luma flip, hue, saturation)"}
XINT_MAX = 0.125  # the largest integer translation, as a fraction of the size
SCALE_STD = 0.2  # octaves (log2) of the isotropic scale
ANISO_STD = 0.2  # octaves of the anisotropic scale
XFRAC_STD = 0.125  # std of the fractional translation, as a fraction of the size
BRIGHTNESS_STD = 0.2  # on images in [-1, 1]
CONTRAST_STD = 0.5  # octaves
SATURATION_STD = 1.0  # octaves
LUMA_AXIS = (1.0, 1.0, 1.0)  # normalised below; grey lies on it

Images = torch.Tensor | list[torch.Tensor]


def parse_groups(text: str) -> str:
    """'bgc' -> 'bgc', checked: which transform groups ADA may apply (any of b, g, c; order is fixed)."""
    unknown = sorted(set(text) - set(GROUPS))
    if unknown or not text:
        valid = "; ".join(f"{k}: {v}" for k, v in GROUPS.items())
        raise ValueError(f"data.ada_augment = {text!r} is not valid: use one or more of the letters b, g, c (the paper's "
                         f"default is 'bgc'; {valid})")
    return "".join(g for g in GROUPS if g in text)


def _draws(n: int, uniforms: int, normals: int, generator: torch.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """(n, uniforms) U(0, 1) and (n, normals) N(0, 1) draws from the step's seeded generator, as float64 arrays.

    The matrices are composed in numpy: some forty products of (B, 3, 3) arrays cost a third of a millisecond there
    and several as torch operations, three times a step."""
    device = generator.device if generator is not None else None
    u = torch.rand(n, uniforms, generator=generator, device=device, dtype=torch.float64)
    z = torch.randn(n, normals, generator=generator, device=device, dtype=torch.float64)
    return u.cpu().numpy(), z.cpu().numpy()


def _gate(value: np.ndarray, identity: float, u: np.ndarray, p: float) -> np.ndarray:
    """value where the sample's draw u is below p, else the transform's identity parameter."""
    return np.where(u < p, value, identity)


# Homogeneous 2-D matrices in normalised coordinates ([-1, 1] across the image), each the inverse of its
# transform: they map an output pixel to where it is read from, as affine_grid wants.


def _scale_inv(sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    m = np.zeros((len(sx), 3, 3))
    m[:, 0, 0], m[:, 1, 1], m[:, 2, 2] = 1 / sx, 1 / sy, 1
    return m


def _rotate_inv(cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    m = np.zeros((len(cos), 3, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 2, 2] = cos, sin, -sin, cos, 1
    return m


def _translate_inv(tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    m = np.tile(np.eye(3), (len(tx), 1, 1))
    m[:, 0, 2], m[:, 1, 2] = -tx, -ty
    return m


def geometric_matrix(n: int, p: float, groups: str, size: int, generator: torch.Generator | None) -> torch.Tensor:
    """(n, 3, 3) float32: each sample's blit and geometric transforms composed (inverse, normalised coordinates).

    Every parameter is drawn whatever p is, so the step's later draws do not depend on p's value.
    """
    G = np.tile(np.eye(3), (n, 1, 1))
    if "b" in groups:
        u, _ = _draws(n, 7, 0, generator)
        flip = _gate((u[:, 0] < 0.5).astype(float), 0.0, u[:, 1], p)
        G = G @ _scale_inv(1 - 2 * flip, np.ones(n))
        quarters = _gate(np.floor(u[:, 2] * 4), 0.0, u[:, 3], p).astype(int)
        G = G @ _rotate_inv(np.array([1.0, 0.0, -1.0, 0.0])[quarters], np.array([0.0, 1.0, 0.0, -1.0])[quarters])  # exact
        shift = _gate((u[:, 4:6] * 2 - 1) * XINT_MAX, 0.0, u[:, 6:7], p)
        shift = np.round(shift * size) * 2 / size  # whole pixels, 2 / size normalised units each
        G = G @ _translate_inv(shift[:, 0], shift[:, 1])
    if "g" in groups:
        u, z = _draws(n, 7, 4, generator)
        scale = _gate(np.exp2(z[:, 0] * SCALE_STD), 1.0, u[:, 0], p)
        G = G @ _scale_inv(scale, scale)
        p_rotation = 1 - math.sqrt(min(max(1 - p, 0.0), 1.0))  # two rotations: the chance of either is p
        theta = _gate((u[:, 1] * 2 - 1) * math.pi, 0.0, u[:, 2], p_rotation)
        G = G @ _rotate_inv(np.cos(theta), np.sin(theta))
        aniso = _gate(np.exp2(z[:, 1] * ANISO_STD), 1.0, u[:, 3], p)
        G = G @ _scale_inv(aniso, 1 / aniso)
        theta = _gate((u[:, 4] * 2 - 1) * math.pi, 0.0, u[:, 5], p_rotation)
        G = G @ _rotate_inv(np.cos(theta), np.sin(theta))
        shift = _gate(z[:, 2:4] * XFRAC_STD, 0.0, u[:, 6:7], p)
        G = G @ _translate_inv(shift[:, 0] * 2, shift[:, 1] * 2)
    return torch.from_numpy(G).float()


def colour_matrix(n: int, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """(n, 4, 4) float32: each sample's colour transforms composed, acting on (r, g, b, 1) of images in [-1, 1]."""
    u, z = _draws(n, 7, 3, generator)
    eye = np.eye(4)
    axis = np.array([*LUMA_AXIS, 0.0]) / math.sqrt(3)
    luma = np.outer(axis, axis)  # projection onto the grey axis
    C = np.tile(eye, (n, 1, 1))
    C[:, :3, 3] = _gate(z[:, 0] * BRIGHTNESS_STD, 0.0, u[:, 0], p)[:, None]  # brightness: a shift along every channel
    contrast = _gate(np.exp2(z[:, 1] * CONTRAST_STD), 1.0, u[:, 1], p)
    C[:, :3] *= contrast[:, None, None]  # contrast: a scale about mid-grey (0)
    flip = _gate((u[:, 2] < 0.5).astype(float), 0.0, u[:, 3], p)
    C = (eye - 2 * luma * flip[:, None, None]) @ C  # a reflection through the plane normal to grey
    theta = _gate((u[:, 4] * 2 - 1) * math.pi, 0.0, u[:, 5], p)[:, None, None]
    cross = np.zeros((4, 4))  # [axis]x, the cross-product matrix, for Rodrigues' rotation about the grey axis
    cross[0, 1], cross[0, 2], cross[1, 2] = -axis[2], axis[1], -axis[0]
    cross = cross - cross.T
    hue = np.cos(theta) * (eye - luma) + np.sin(theta) * cross + luma
    hue[:, 3, 3] = 1
    C = hue @ C
    saturation = _gate(np.exp2(z[:, 2] * SATURATION_STD), 1.0, u[:, 6], p)[:, None, None]
    chroma = eye - luma
    chroma[3, 3] = 0  # the homogeneous coordinate stays 1
    C = (luma + chroma * saturation + np.diag([0.0, 0.0, 0.0, 1.0])) @ C
    return torch.from_numpy(C).float()


def ada_augment(x: Images, p: float, groups: str = "bgc", generator: torch.Generator | None = None) -> Images:
    """Augment images (B, 3, H, W) in [-1, 1], a pyramid of them (coarsest first) or a list of same-size batches,
    each transform applied to a sample with probability p; the identity, without a draw, when p is 0."""
    if p <= 0:
        return x
    scales = [x] if isinstance(x, torch.Tensor) else list(x)
    finest = scales[-1]
    n, channels, size = len(finest), finest.shape[1], finest.shape[-1]
    if any(s.shape[-1] > size for s in scales):
        raise ValueError(f"a pyramid goes coarsest first; got sizes {[tuple(s.shape[-2:]) for s in scales]}")
    if "c" in groups and channels != 3:
        raise ValueError(f"ADA's colour group needs RGB images, got {channels} channels; set data.ada_augment without 'c'")
    if "b" in groups or "g" in groups:
        theta = geometric_matrix(n, p, groups, size, generator).to(finest.device)[:, :2, :]  # (B, 2, 3)
        scales = [_resample(s, theta) for s in scales]
    if "c" in groups:
        C = colour_matrix(n, p, generator).to(finest.device)
        scales = [_recolour(s, C) for s in scales]
    return scales[0] if isinstance(x, torch.Tensor) else scales


def _resample(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Each sample read through its matrix; only the samples whose matrix is not the identity are resampled, which
    at the small p most of training runs at is most of the cost saved (the others pass through untouched)."""
    moved = (theta != torch.eye(2, 3, device=theta.device)).flatten(1).any(1).nonzero().flatten()
    if len(moved) == 0:
        return x
    # fp32 inside (grid_sample has no bf16 kernel everywhere); the batch keeps its dtype.
    grid = F.affine_grid(theta[moved], [len(moved), *x.shape[1:]], align_corners=False)  # (M, H, W, 2)
    out = F.grid_sample(x[moved].float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return x.index_copy(0, moved, out.to(x.dtype))


def _recolour(x: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Each sample's colours through its matrix; as in _resample, only the samples whose matrix is not the identity."""
    changed = (C != torch.eye(4, device=C.device)).flatten(1).any(1).nonzero().flatten()
    if len(changed) == 0:
        return x
    C = C[changed]
    out = torch.einsum("bij,bjhw->bihw", C[:, :3, :3], x[changed].float()) + C[:, :3, 3, None, None]  # (M, 3, H, W)
    return x.index_copy(0, changed, out.to(x.dtype))


class AdaptiveAugment(nn.Module):
    """ADA's augmentation and its controller. p, the r_t last measured and the sums of sign(D(real)) since the last
    adjustment are buffers, so a checkpoint carries them and a resumed run steers p exactly as an uninterrupted one."""

    def __init__(self, groups: str = "bgc", target: float = 0.6, interval: int = 4, kimg: float = 500.0, p: float = 0.0) -> None:
        super().__init__()
        self.groups, self.target, self.interval, self.kimg = parse_groups(groups), target, interval, kimg
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("rt", torch.tensor(0.0))
        self.register_buffer("signs", torch.zeros(2))  # sum of sign(D(real)) and how many outputs, since the last adjustment

    def forward(self, x: Images, generator: torch.Generator | None = None) -> Images:
        return ada_augment(x, float(self.p), self.groups, generator)

    @torch.no_grad()
    def observe(self, real_logits: torch.Tensor) -> None:
        """Count the signs of D's outputs on (augmented) reals; called by each update of D."""
        signs = real_logits.detach().float().sign()
        self.signs += torch.stack([signs.sum(), torch.tensor(float(signs.numel()), device=signs.device)]).to(self.signs)

    @torch.no_grad()
    def update(self, step: int, images_per_step: int) -> None:
        """After training step `step` (counted from 1): every `interval` steps, r_t over them on all ranks moves p by
        sign(r_t - target) x (images seen since) / (kimg x 1000), clipped to [0, 1]."""
        if step % self.interval:
            return
        distributed.all_sum(self.signs)  # every rank takes part, whatever it counted
        if self.signs[1] == 0:  # nothing observed (D never ran on reals): nothing to steer by
            return
        self.rt.copy_(self.signs[0] / self.signs[1])
        self.p.add_(torch.sign(self.rt - self.target) * images_per_step * self.interval / (self.kimg * 1000)).clamp_(0, 1)
        self.signs.zero_()

    def extra_repr(self) -> str:
        return f"groups={self.groups!r}, target={self.target}, interval={self.interval}, kimg={self.kimg}"

