"""The one place images change representation: uint8 HWC on disk, float (B, 3, H, W) in [-1, 1] inside."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegen.files import write_bytes_atomic

MIN_FACE_PX = 128  # grids are enlarged by whole pixels until a face is about this wide: a 32 px face is a dot on screen


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1], channels_last in memory at no cost."""
    return batch.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3), rounding to nearest."""
    x = x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def make_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 (N, H, W, 3) -> one uint8 image with the N tiles in rows of nrow (default: square)."""
    n, h, w, c = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        grid[top : top + h, left : left + w] = image
    return grid


def auto_zoom(resolution: int) -> int:
    """The whole-pixel enlargement that shows a face of this resolution at about MIN_FACE_PX on screen."""
    return max(1, round(MIN_FACE_PX / resolution))


def grid_zoom(zoom: int | None, resolution: int) -> int:
    """The asked zoom, or (None) auto_zoom of the faces' resolution."""
    return auto_zoom(resolution) if zoom is None else zoom


def enlarge(image: np.ndarray, zoom: int) -> np.ndarray:
    """uint8 HWC enlarged zoom times by repeating pixels (nearest), as the explorer shows faces: no blur, no new detail."""
    if zoom < 1:
        raise ValueError(f"--zoom {zoom}: enlarge by a whole factor of at least 1, e.g. 4 (1 keeps the model's pixels)")
    return image if zoom == 1 else image.repeat(zoom, axis=0).repeat(zoom, axis=1)


def save_image(image: np.ndarray, path: str | Path, zoom: int = 1) -> Path:
    """Write a uint8 HWC array (enlarged zoom times) atomically, so a reader never sees half a file."""
    path = Path(path)
    buffer = io.BytesIO()
    Image.fromarray(enlarge(image, zoom)).save(buffer, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    return write_bytes_atomic(path, buffer.getvalue())


def save_grid(images: np.ndarray, path: str | Path, nrow: int | None = None, zoom: int | None = None) -> Path:
    """A grid of uint8 (N, H, W, 3) tiles, enlarged zoom times (None: auto_zoom of the tiles' size)."""
    return save_image(make_grid(images, nrow), path, grid_zoom(zoom, images.shape[1]))
