"""Seeded latents and generation: image i comes from seed i, whatever the batch size."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from facegen.images import to_uint8

MAX_SEED = 2**63 - 1  # torch.Generator's seeds are 64-bit
MAX_SEEDS = 1_000_000  # a list longer than this is a typo, not a sample (FID uses 50,000)
BATCHNORM_SEEDS = 2**40  # first seed of the latents that recompute_batchnorm draws: far from any user's seeds
LABEL_STREAM = 2**62  # seed i's labels come from a generator seeded with LABEL_STREAM + i, apart from its z


def parse_seeds(text: str) -> list[int]:
    """'0-63' or '1,5,7-9' -> the listed seeds, in order."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            lo, hi = int(first), int(last if dash else first)
        except ValueError:
            raise ValueError(f"--seeds {text!r} is not a seed list; write e.g. 0-63 or 1,5,7-9") from None
        if hi < lo or lo < 0:
            raise ValueError(f"--seeds {text!r}: ranges go from a low to a high non-negative seed, e.g. 0-63")
        if hi > MAX_SEED:
            raise ValueError(f"--seeds {text!r}: seeds go up to {MAX_SEED} (2^63 - 1)")
        if len(seeds) + hi - lo + 1 > MAX_SEEDS:
            raise ValueError(f"--seeds {text!r} lists more than {MAX_SEEDS:,} seeds; ask for fewer")
        seeds.extend(range(lo, hi + 1))
    return seeds


def latents(seeds: Sequence[int], z_dim: int, z_dist: str = "normal") -> torch.Tensor:
    """(len(seeds), z_dim): row i drawn from its own generator seeded with seeds[i]."""
    rows = []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        rows.append(torch.rand(z_dim, generator=g) * 2 - 1 if z_dist == "uniform" else torch.randn(z_dim, generator=g))
    return torch.stack(rows)


def check_truncation(G: nn.Module, truncation: float) -> None:
    """Truncation pulls w toward its tracked mean: only a style model has one."""
    if truncation != 1 and "truncation" not in inspect.signature(G.forward).parameters:
        raise ValueError(f"--truncation {truncation}: only a style model (model.family=stylegan) has a mean w to pull "
                         "its samples toward; drop --truncation for this run")
    if not 0 <= truncation <= 1:
        raise ValueError(f"--truncation {truncation} must be in [0, 1]: 1 samples as trained, 0 gives the mean face, e.g. 0.7")


MIN_AGREEING = 20  # training faces that must share the asked attributes before the others are drawn from them alone


def parse_attributes(text: str) -> dict[str, float]:
    """'Smiling=1,Male=-1' -> {'Smiling': 1.0, 'Male': -1.0}: +1 present, -1 absent, 0 unspecified."""
    asked = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not name.strip() or value.strip() not in ("1", "+1", "-1", "0"):
            raise ValueError(f"--attributes {text!r}: write NAME=1 (present), NAME=-1 (absent) or NAME=0, comma-separated, "
                             "e.g. Smiling=1,Male=-1")
        asked[name.strip()] = float(value)
    return asked


def labels_for_seeds(G: nn.Module, seeds: Sequence[int], asked: dict[str, float] | None = None) -> torch.Tensor | None:
    """(N, K): seed i's attribute labels for a conditional generator, the labels of one of its training faces drawn
    from a generator seeded by i alone (so that images follow the data's combinations and image i is the same in any
    batch); None for an unconditional one. The training faces' labels come with the model (`label_table`).

    `asked` sets some attributes for every seed; the others are drawn from the training faces that agree with them,
    or from all faces (with a warning) when fewer than MIN_AGREEING do."""
    if not getattr(G, "num_conditions", 0):
        if asked:
            raise ValueError("--attributes needs a conditional model, and this run was trained without model.conditions; "
                             "train one with --preset fast32-cond or --set model.conditions=Smiling,Male,...")
        return None
    table, names = G.label_table.float(), list(G.condition_names)
    columns, values = [], []
    for name, value in (asked or {}).items():
        if name not in names:
            raise ValueError(f"--attributes: {name!r} is not among the attributes this model learnt: {', '.join(names)}")
        columns.append(names.index(name))
        values.append(value)
    if columns:
        agree = (table[:, columns] == torch.tensor(values)).all(dim=1)
        if int(agree.sum()) >= MIN_AGREEING:
            table = table[agree]
        else:
            print(f"facegen: warning: only {int(agree.sum())} training faces have {', '.join(f'{n}={v:+g}' for n, v in asked.items())}; "
                  "the other attributes are drawn from all faces", file=sys.stderr)
    rows = [int(torch.randint(len(table), (1,), generator=torch.Generator().manual_seed(LABEL_STREAM + int(seed)))) for seed in seeds]
    labels = table[rows].clone()
    labels[:, columns] = torch.tensor(values)
    return labels


@torch.inference_mode()
def generate(G: nn.Module, z: torch.Tensor, batch_size: int = 64, truncation: float = 1.0, edit_space: bool = False,
             labels: torch.Tensor | None = None) -> np.ndarray:
    """uint8 (N, R, R, 3) images of latents z (and labels (N, K) for a conditional model), with G in eval mode
    (BatchNorm uses running statistics); a style model's w pulled toward its mean by truncation < 1. With edit_space,
    z are latents of the space the latent tools edit in (G.from_edit_space: z itself for most models, w or W+ for a
    style model)."""
    check_truncation(G, truncation)
    options = {"truncation": truncation} if truncation != 1 else {}
    forward = G.from_edit_space if edit_space else G
    was_training = G.training
    G.eval()
    device = next(G.parameters()).device
    out = []
    for i, chunk in enumerate(z.split(batch_size)):
        y = {} if labels is None else {"y": labels[i * batch_size : (i + 1) * batch_size].to(device)}
        x = forward(chunk.to(device), **options, **y)
        out.append(to_uint8(x[-1] if isinstance(x, list) else x))  # multi-scale generators: the finest scale
    G.train(was_training)
    return np.concatenate(out)


@torch.no_grad()
def recompute_batchnorm(G: nn.Module, batches: int, batch_size: int = 64) -> None:
    """Set G's BatchNorm running statistics to the exact mean and variance over `batches` batches of its own samples.

    An EMA generator's averaged weights never ran with the raw G's statistics that training copies into it;
    statistics of its own samples give better faces (dcgan32 + EMA at 4,000 steps, 2,000 samples: KID 0.0348 ->
    0.0304, FID 63.2 -> 59.1). The latents come from fixed seeds of their own, so the global RNG, and with it an
    exact resume, is untouched.
    """
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta, was_training = [m.momentum for m in norms], G.training
    G.eval()  # as when sampling (no dropout), but for the norms, which measure their batches
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
        m.train()
    device = next(G.parameters()).device
    seeds = range(BATCHNORM_SEEDS, BATCHNORM_SEEDS + batches * batch_size)
    z, labels = latents(seeds, G.z_dim, G.z_dist), labels_for_seeds(G, seeds)
    for i, chunk in enumerate(z.split(batch_size)):
        y = () if labels is None else (labels[i * batch_size : (i + 1) * batch_size].to(device),)
        G(chunk.to(device), *y)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    G.train(was_training)


def sample_seeds(G: nn.Module, seeds: Sequence[int], batch_size: int = 64, truncation: float = 1.0,
                 asked: dict[str, float] | None = None) -> np.ndarray:
    """Images for the given seeds, reading z_dim and the latent prior (and a conditional model's labels, with the
    `asked` attributes set) from the generator itself."""
    labels = labels_for_seeds(G, seeds, asked)
    return generate(G, latents(seeds, G.z_dim, G.z_dist), batch_size, truncation, labels=labels)
