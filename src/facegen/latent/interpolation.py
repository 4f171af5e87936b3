"""Paths between latents (lerp and slerp), a style model's style mixing, and the frames they make, as a grid or a GIF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from facegen.files import write_bytes_atomic
from facegen.images import enlarge, grid_zoom, save_grid
from facegen.latent.model import LatentModel


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return torch.lerp(a, b, t)  # exact at both ends


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents); lerp when a and b are parallel."""
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:
        return lerp(a, b, t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def interpolate(points: torch.Tensor, steps: int, spherical: bool = False) -> torch.Tensor:
    """(K, z_dim) -> ((K - 1) * (steps - 1) + 1, z_dim): `steps` latents per segment, shared ends counted once."""
    if len(points) < 2:
        raise ValueError("interpolation needs at least two points, e.g. --seeds 3,17")
    if steps < 2:
        raise ValueError(f"--steps {steps}: a segment needs at least its two ends (steps >= 2)")
    mix = slerp if spherical else lerp
    path = [points[0]]
    for a, b in zip(points, points[1:]):
        path += [mix(a, b, i / (steps - 1)) for i in range(1, steps)]
    return torch.stack(path)


def save_frames(frames: np.ndarray, out: str | Path, per_row: int, seconds_per_frame: float = 0.12,
                zoom: int | None = None) -> Path:
    """uint8 (N, R, R, 3) as a grid PNG (per_row a row) or an animated GIF, enlarged zoom times (None: auto)."""
    out = Path(out)
    zoom = grid_zoom(zoom, frames.shape[1])
    if out.suffix.lower() == ".gif":
        import io

        from PIL import Image

        buffer = io.BytesIO()
        images = [Image.fromarray(enlarge(f, zoom)) for f in frames]
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(seconds_per_frame * 1000), loop=0)
        return write_bytes_atomic(out, buffer.getvalue())
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out}: write a .png grid or a .gif animation")
    return save_grid(frames, out, nrow=per_row, zoom=zoom)


COARSE_LAYERS = 3  # a style model's layers at its base and first doubling (4 and 8 px): pose, face shape, hair style


def style_mix(model: LatentModel, rows: Sequence[int], columns: Sequence[int], cutoff: int = COARSE_LAYERS) -> np.ndarray:
    """A style-mixing grid (Karras et al. 2019, figure 3), uint8 ((len(rows) + 1) * (len(columns) + 1), R, R, 3) in row
    order: the column seeds' faces along the top, the row seeds' down the left, and in cell (i, j) row i's w in the
    layers before `cutoff` (the coarse styles) with column j's from it on (the fine ones: colours, texture, light)."""
    if not model.layers:
        raise ValueError(f"style mixing needs a style model (model.family=stylegan); this run edits in {model.space}")
    if not 1 <= cutoff < model.layers:
        raise ValueError(f"--cutoff {cutoff}: a style model of {model.layers} layers mixes at a layer from 1 to {model.layers - 1}")
    w_rows, w_columns = model.latents_of_seeds(rows), model.latents_of_seeds(columns)
    top, left = model.images(w_columns), model.images(w_rows)
    grid = [np.concatenate([np.full_like(top[:1], 255), top])]  # a blank corner
    for i in range(len(rows)):
        ws = model.G.mix(w_rows[i].expand(len(columns), -1), w_columns, torch.full((len(columns),), cutoff))
        grid.append(np.concatenate([left[i : i + 1], model.images(ws)]))
    return np.concatenate(grid)
