"""Inception feature extraction speed: FeatureExtractor vs a plain fp32 per-image loop.

    python benchmarks/extract_speed.py [--n 64] [--data ../shared/data/celeba_subset/img_align_celeba]

Both run the same network on the same real faces (center crop 89 x 89, resized to 64). The plain
loop is what one writes first: the reference recipe (NVIDIA's grid_sample resize, then the
TorchScript graph as shipped), one image at a time, no_grad. Each row is the best of 3 runs; "cores
busy" below 2 means other processes shared the CPU and the row is not trustworthy.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from facegen.metrics import FeatureExtractor  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba_subset" / "img_align_celeba"


def load_faces(folder: Path, n: int, size: int = 64) -> np.ndarray:
    files = sorted(folder.glob("*.jpg"))[:n]
    if len(files) < n:
        raise SystemExit(f"need {n} JPEGs in {folder}, found {len(files)}")
    faces = []
    for file in files:
        image = Image.open(file).convert("RGB")
        w, h = image.size
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        faces.append(np.asarray(image.crop(box).resize((size, size), Image.BILINEAR)))
    return np.stack(faces)  # (N, 64, 64, 3) uint8


def nvidia_resize(x: torch.Tensor) -> torch.Tensor:
    """The resize inside NVIDIA's Inception graph (fid-helper's nv_bilinear): affine_grid + grid_sample."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3)
    theta[0, 2] += 1 / w - 1 / 299
    theta[1, 2] += 1 / h - 1 / 299
    grid = F.affine_grid(theta.unsqueeze(0).repeat([n, 1, 1]), [n, c, 299, 299], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def plain_loop(net: torch.jit.ScriptModule, images: np.ndarray) -> np.ndarray:
    """One image at a time through NVIDIA's resize and the scripted graph, NCHW fp32."""
    feats = []
    with torch.no_grad():
        for image in images:
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
            feats.append(net((nvidia_resize(x) - 128) / 128).numpy())
    return np.concatenate(feats)


def timed(fn, images: np.ndarray, repeats: int = 3) -> tuple[float, float, np.ndarray]:
    """Best img/s of a few runs, the CPU cores it kept busy then (under 2 means others shared them), features."""
    fn(images[:2])  # Warm-up: oneDNN primitives and the TorchScript profiling runs.
    best = (0.0, 0.0)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        feats = fn(images)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best = max(best, (len(images) / wall, cpu / wall))
    return best[0], best[1], feats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="number of faces")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of CelebA JPEGs")
    args = parser.parse_args()
    images = load_faces(args.data, args.n)
    print(f"{len(images)} faces 64 px, torch {torch.__version__}, {torch.get_num_threads()} threads")

    extractor = FeatureExtractor()
    rows = [("plain fp32 loop (TorchScript, 1 img)", *timed(lambda x: plain_loop(extractor.net.scripted, x), images))]
    for batch_size in (8, 32):
        extractor.batch_size = batch_size
        rows.append((f"FeatureExtractor fp32, batch {batch_size}",
                     *timed(lambda x: extractor.features(x, progress=False), images)))
    bf16 = FeatureExtractor(bf16=True)
    rows.append(("FeatureExtractor bf16, batch 8", *timed(lambda x: bf16.features(x, progress=False), images)))

    plain_speed, reference = rows[0][1], rows[0][3]
    print(f"{'extractor':<40} {'img/s':>7} {'speed-up':>8} {'cores busy':>10} {'max rel diff':>12}")
    for name, speed, cores, feats in rows:
        diff = np.abs(feats - reference).max() / np.abs(reference).max()
        print(f"{name:<40} {speed:7.1f} {speed / plain_speed:7.2f}x {cores:10.2f} {diff:12.1e}")

if __name__ == "__main__":
    main()
