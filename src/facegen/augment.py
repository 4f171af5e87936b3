"""DiffAugment (Zhao et al. 2020): differentiable augmentations shown to D, for training on few images.

D must only ever see augmented images: the same policy is applied to the reals and to the fakes, in
the D step and in the G step alike (G's gradient flows back through the augmentation). Augmenting
reals alone would teach G to generate the augmentations; augmenting only in the D step would let G
fool an easier, unaugmented D. Each call draws fresh per-sample parameters, so reals and fakes get
independent draws from the same distribution, as in the official code.

The operations follow the official PyTorch code, which also works on images in [-1, 1]:
- color: brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5);
- translation: a shift of up to 1/8 of the size per axis, the uncovered border filled with 0;
- cutout: a square of half the size (clipped at the image border) filled with 0.
Filling with 0 (the official code multiplies by a mask) means mid-grey in [-1, 1], not black.

A pyramid (a list of scales of the same images, as MSG-GAN's G emits) is augmented as one: each
sample's parameters are drawn once and applied to every scale, shifts and squares scaled to it. A list
of same-size batches is the degenerate case: every batch gets the same draws (the VAE-GAN augments a face
and its reconstruction alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 1 / 8  # the largest shift, as a fraction of the image size
CUTOUT_RATIO = 1 / 2  # the side of the cutout square, as a fraction of the image size


def parse_policy(text: str) -> tuple[str, ...]:
    """'color,translation,cutout' -> ('color', 'translation', 'cutout'); '' -> () (no augmentation)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    return _check(names)


def _check(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {', '.join(map(repr, unknown))}; valid policies: "
                         f"{', '.join(POLICIES)} (comma-separated, or empty for none)")
    return tuple(names)


def _uniform(batch: int, low: float, high: float, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1, 1) draws from U(low, high), made on the generator's device and moved to the images'."""
    device = generator.device if generator is not None else like.device
    u = torch.rand(batch, 1, 1, 1, generator=generator, device=device)
    return (low + (high - low) * u).to(like.device, like.dtype)


def _randint(batch: int, low: int, high: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1) integers in [low, high), made on the generator's device and moved to the images'."""
    device = generator.device if generator is not None else like.device
    return torch.randint(low, high, (batch, 1, 1), generator=generator, device=device).to(like.device)


def _color(scales: list[torch.Tensor], generator: torch.Generator | None) -> list[torch.Tensor]:
    # Every step is per pixel or a mean over the image, so it commutes with average pooling.
    finest = scales[-1]
    brightness = _uniform(len(finest), -0.5, 0.5, generator, finest)
    saturation = _uniform(len(finest), 0.0, 2.0, generator, finest)
    contrast = _uniform(len(finest), 0.5, 1.5, generator, finest)
    out = []
    for x in scales:
        x = x + brightness
        grey = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
        x = (x - grey) * saturation + grey
        mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
        out.append((x - mean) * contrast + mean)
    return out


def _translation(scales: list[torch.Tensor], generator: torch.Generator | None) -> list[torch.Tensor]:
    finest = scales[-1]
    B, _, H, W = finest.shape
    max_y, max_x = int(H * TRANSLATION_RATIO + 0.5), int(W * TRANSLATION_RATIO + 0.5)
    shift_y = _randint(B, -max_y, max_y + 1, generator, finest)  # (B, 1, 1), in pixels of the finest scale
    shift_x = _randint(B, -max_x, max_x + 1, generator, finest)
    out = []
    for x in scales:
        h, w = x.shape[-2:]
        dy, dx = torch.round(shift_y * h / H).long(), torch.round(shift_x * w / W).long()
        rows = torch.arange(h, device=x.device).view(1, h, 1) - dy  # (B, h, 1): the source row of each row
        cols = torch.arange(w, device=x.device).view(1, 1, w) - dx  # (B, 1, w)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # (B, h, w)
        batch = torch.arange(B, device=x.device).view(B, 1, 1)
        moved = x.permute(0, 2, 3, 1)[batch, rows.clamp(0, h - 1), cols.clamp(0, w - 1)]  # (B, h, w, C)
        out.append(moved.permute(0, 3, 1, 2) * inside.unsqueeze(1).to(x.dtype))
    return out


def _cutout(scales: list[torch.Tensor], generator: torch.Generator | None) -> list[torch.Tensor]:
    finest = scales[-1]
    B, _, H, W = finest.shape
    size_y, size_x = int(H * CUTOUT_RATIO + 0.5), int(W * CUTOUT_RATIO + 0.5)
    # The square's centre is anywhere in the image, so it may hang over the border (the official draw).
    top = _randint(B, 0, H + 1 - size_y % 2, generator, finest) - size_y // 2  # (B, 1, 1), finest pixels
    left = _randint(B, 0, W + 1 - size_x % 2, generator, finest) - size_x // 2
    out = []
    for x in scales:
        h, w = x.shape[-2:]
        # A pixel is cut when its centre, in finest-scale coordinates, falls in the square.
        ys = (torch.arange(h, device=x.device).view(1, h, 1) + 0.5) * (H / h)
        xs = (torch.arange(w, device=x.device).view(1, 1, w) + 0.5) * (W / w)
        cut = (ys >= top) & (ys < top + size_y) & (xs >= left) & (xs < left + size_x)  # (B, h, w)
        out.append(x * (~cut).unsqueeze(1).to(x.dtype))
    return out


AUGMENTATIONS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(
    x: torch.Tensor | Sequence[torch.Tensor],
    policy: str | Sequence[str],
    generator: torch.Generator | None = None,
) -> torch.Tensor | list[torch.Tensor]:
    """Augment images (B, 3, H, W) in [-1, 1], or a pyramid of them (coarsest first), differentiably.

    Per-sample parameters come from `generator` (the global RNG when None), so a seeded run repeats.
    """
    names = parse_policy(policy) if isinstance(policy, str) else _check(policy)
    scales = [x] if isinstance(x, torch.Tensor) else list(x)
    if any(s.shape[-1] > scales[-1].shape[-1] for s in scales):
        raise ValueError(f"a pyramid goes coarsest first; got sizes {[tuple(s.shape[-2:]) for s in scales]}")
    for name in names:
        scales = AUGMENTATIONS[name](scales, generator)
    return scales[0] if isinstance(x, torch.Tensor) else scales
