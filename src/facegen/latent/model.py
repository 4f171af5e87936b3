"""What the latent tools need of a run, read from its checkpoint alone: the generator, its encoder and discriminator when
it has them, and the space its latents are edited in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facegen import checkpoint as ckpt
from facegen.sample import generate, labels_for_seeds, latents

ENCODER_FILE = "encoder.safetensors"  # a GAN's encoder, trained by train_encoder


@dataclass
class LatentModel:
    """What the latent tools need of a run: its generator, and its encoder and discriminator when it has them."""

    G: nn.Module
    E: nn.Module | None
    D: nn.Module | None
    checkpoint: ckpt.Checkpoint
    run_dir: Path

    @property
    def resolution(self) -> int:
        return self.checkpoint.architecture["resolution"]

    @property
    def crop(self) -> int | None:
        return self.checkpoint.state["config"]["data"]["crop"]

    @property
    def space(self) -> str:
        """What edits move, as the generator names it: 'z', or 'w' for a style model."""
        return self.G.edit_space

    @property
    def spherical(self) -> bool:
        """Whether edit paths keep to the sphere of their start: a Gaussian prior's z lie on a thin shell, where G was
        trained; w has no such shape."""
        return self.space == "z"

    @property
    def layers(self) -> int | None:
        """How many per-layer latents a photo is projected into (W+ of a style model); None: one latent a face."""
        return getattr(self.G, "num_ws", None)

    @property
    def condition_names(self) -> list[str]:
        """The attributes a conditional model learnt (its faces carry labels beside their latents); [] otherwise."""
        return list(getattr(self.G, "condition_names", []))

    def labels_of_seeds(self, seeds: Sequence[int]) -> torch.Tensor | None:
        """A conditional model's labels of seeds (N, K), as sampling draws them; None for an unconditional one."""
        return labels_for_seeds(self.G, seeds)

    @torch.no_grad()
    def latents_of_seeds(self, seeds: Sequence[int], labels: torch.Tensor | None = None) -> torch.Tensor:
        """Edit-space latents of prior seeds (N, dim): z itself, or w of a style model (z mapped once, with a
        conditional model's labels: the seeds' own, or `labels` to ask for others)."""
        y = self.labels_of_seeds(seeds) if labels is None else labels
        return self.G.to_edit_space(latents(seeds, self.G.z_dim, self.G.z_dist), y)

    def per_layer(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, dim) -> (N, layers, dim), the same latent at every layer, so that a seed's w joins a photo's W+ latents;
        W+ latents and one-latent models' latents as they are."""
        return latents[:, None].expand(-1, self.layers, -1) if self.layers and latents.dim() == 2 else latents

    def images(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> np.ndarray:
        """uint8 images of edit-space latents (N, dim), or of W+ latents (N, layers, dim); a conditional model's z is
        drawn with its faces' labels (N, K) beside it (a style model's w already holds them)."""
        if self.condition_names and self.space == "z" and labels is None:
            raise ValueError("a conditional model draws a face from its latent and its labels; none were given")
        return generate(self.G, latents, edit_space=True, labels=labels if self.space == "z" else None)


def open_model(run: str | Path) -> LatentModel:
    """A run's sampling generator (the EMA copy when kept), plus its encoder (its own, or one trained by
    `facegen train-encoder` for a GAN) and discriminator when present. A run with an encoder gives the pair
    that belongs together (checkpoint.autoencoder_roles), so photos decode through the decoder they were encoded for."""
    checkpoint = ckpt.load(run)
    run_dir = Path(run) if Path(run).is_dir() else checkpoint.path.parent.parent
    e_role, g_role = ckpt.autoencoder_roles(checkpoint) if "E" in checkpoint.nets else (None, "G_ema" if "G_ema" in checkpoint.nets else "G")
    if g_role not in checkpoint.nets:
        raise ValueError(f"{checkpoint.path} holds no generator ({', '.join(checkpoint.nets)}); pass a run of a generative model")
    roles = (g_role, *(r for r in (e_role, "D") if r in checkpoint.nets))
    nets = checkpoint.build(roles)
    E = nets.get(e_role)
    if E is None and (run_dir / ENCODER_FILE).is_file():
        E = ckpt.load(run_dir / ENCODER_FILE).build(("E",))["E"]
    return LatentModel(nets[g_role], E, nets.get("D"), checkpoint, run_dir)
