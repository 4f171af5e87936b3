"""The attribute judge: train it on labelled faces, then read attribute rates of any images with it.

One judge measures both real and generated images, so "48 % smiling in the data, 31 % in the
samples" compares like with like: its own errors apply to both columns. Its holdout accuracy
next to the always-the-majority baseline says how far to trust it per attribute.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from facegen import checkpoint as ckpt
from facegen import models
from facegen.data import BatchLoader, open_dataset
from facegen.devices import resolve_runtime
from facegen.files import write_text_atomic
from facegen.images import to_float, to_uint8

FAMILY = "judge"
ROLE = "C"


def train_judge(source: str, out: str | Path, resolution: int = 64, crop: int | None = None, epochs: int = 3,
                batch_size: int = 128, lr: float = 1e-3, seed: int = 0, base_channels: int = 32,
                cache_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train a judge on the source's training split, score it on the held-out split, save it to `out`.

    Writes `out/judge.safetensors` (a facegen checkpoint) and `out/judge.json` (the report it returns).
    """
    out = Path(out)
    if epochs < 1:
        raise ValueError(f"judge: epochs must be >= 1, got {epochs}")
    models.split_resolution(resolution)  # an unsupported resolution fails before a cache is built for it

    # Data.
    dataset = open_dataset(source, resolution, crop, cache_dir, progress=progress)
    if dataset.labels is None or not dataset.attr_names:
        raise ValueError(f"data source {source} has no attribute labels; the judge needs a CelebA root with "
                         "list_attr_celeba.txt (or synthetic:N)")
    train_idx, holdout_idx = dataset.split_indices("train"), dataset.split_indices("holdout")
    names = list(dataset.attr_names)
    loader = BatchLoader(dataset.images, train_idx, batch_size, seed)
    # Same seed and indices, so batch `step` of this loader holds the labels of the images batch `step` holds.
    label_loader = BatchLoader(np.asarray(dataset.labels), train_idx, batch_size, seed)
    train_rate = (dataset.labels[train_idx] > 0).mean(axis=0)  # (A,) fraction positive
    total_steps = epochs * loader.steps_per_epoch

    # Model and optimizer.
    runtime = resolve_runtime()
    torch.manual_seed(seed)
    architecture = {"resolution": dataset.resolution, "num_attributes": len(names), "base_channels": base_channels,
                    "attr_names": names}
    C = runtime.prepare(models.build(FAMILY, **architecture)[ROLE])
    with torch.no_grad():  # start from the base rates, so early steps learn images rather than priors
        C.head.bias.copy_(torch.logit(torch.as_tensor(train_rate, dtype=torch.float32).clamp(1e-3, 1 - 1e-3)))
    opt = torch.optim.Adam(C.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.15)
    flips = torch.Generator().manual_seed(seed)

    # The loop.
    C.train()
    t_start = time.perf_counter()
    bar = tqdm(range(total_steps), desc="judge", unit="step", disable=not progress)
    for step in bar:
        x = to_float(loader.batch(step).to(runtime.device, non_blocking=True))
        y = (label_loader.batch(step) > 0).float().to(runtime.device)  # {-1, +1} -> {0, 1}
        flip = (torch.rand(len(x), generator=flips) < 0.5).to(runtime.device)[:, None, None, None]
        x = torch.where(flip, x.flip(3), x)  # a mirrored face keeps all 40 attributes
        with runtime.autocast():
            logits = C(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    seconds = time.perf_counter() - t_start

    # Evaluate on the held-out split, in chunks: the full CelebA's is half a gigabyte at 64 px.
    chunk = 4096
    predicted = np.concatenate([predict(C, dataset.images[holdout_idx[i : i + chunk]]) for i in range(0, len(holdout_idx), chunk)])
    truth = dataset.labels[holdout_idx] > 0
    accuracy = (predicted == truth).mean(axis=0)
    majority = train_rate >= 0.5  # what "always predict the training majority" says for each attribute
    baseline = (truth == majority).mean(axis=0)
    balanced = balanced_accuracy(predicted, truth)
    crop = dataset.meta["crop"]  # a cache passed as the source brings its own
    report = {
        "source": source, "resolution": dataset.resolution, "crop": crop, "cache": str(dataset.path),
        "holdout_rule": dataset.meta.get("holdout_rule"), "train_images": len(train_idx), "holdout_images": len(holdout_idx),
        "epochs": epochs, "steps": total_steps, "batch_size": batch_size, "lr": lr, "seed": seed,
        "precision": runtime.precision, "train_seconds": round(seconds, 1),
        "mean_accuracy": float(accuracy.mean()), "mean_baseline": float(baseline.mean()),
        "attributes": {
            name: {"accuracy": float(accuracy[i]), "baseline": float(baseline[i]), "balanced_accuracy": balanced[i],
                   "train_rate": float(train_rate[i]), "holdout_rate": float(truth[:, i].mean())}
            for i, name in enumerate(names)
        },
    }

    # Save.
    state = {
        "accuracy": {n: report["attributes"][n]["accuracy"] for n in names},
        "baseline": {n: report["attributes"][n]["baseline"] for n in names},
        "base_rates": {n: report["attributes"][n]["train_rate"] for n in names},
        "data": {"source": source, "resolution": dataset.resolution, "crop": crop, "holdout_rule": report["holdout_rule"]},
        "train": {"epochs": epochs, "steps": total_steps, "batch_size": batch_size, "lr": lr, "seed": seed},
    }
    ckpt.save(out / "judge.safetensors", ckpt.Checkpoint(FAMILY, architecture, {ROLE: C.state_dict()}, state))
    write_text_atomic(out / "judge.json", json.dumps(report, indent=1))
    return report


def load_judge(path: str | Path) -> tuple[nn.Module, ckpt.Checkpoint]:
    """The judge of a checkpoint file (or of a folder holding judge.safetensors), in eval mode on the CPU."""
    path = Path(path)
    if path.is_dir() and (path / "judge.safetensors").is_file():
        path = path / "judge.safetensors"
    checkpoint = ckpt.load(path)
    if checkpoint.family != FAMILY:
        raise ValueError(f"{checkpoint.path} holds a {checkpoint.family} model, not a judge; pass the output of facegen judge train")
    return checkpoint.build((ROLE,))[ROLE], checkpoint


@torch.inference_mode()
def probabilities(judge: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """float (N, A): the judge's probability of each attribute in uint8 (N, H, W, 3) images.

    Images of another size are resized to the judge's resolution with antialiased bilinear
    filtering; the judge was trained on Lanczos-downscaled caches, so this is close, not identical,
    and upscaled small samples look blurrier to it than native ones (compare_rates corrects for that).
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"judge: expected uint8 images of shape (N, H, W, 3), got {images.dtype} {tuple(images.shape)}; "
                         "pass images as sampled or as cached")
    was_training = judge.training
    judge.eval()  # BatchNorm uses its running statistics, so a prediction does not depend on the batch
    device = next(judge.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = to_float(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device))
        out.append(torch.sigmoid(judge(_resize(x, judge.resolution)).float()).cpu().numpy())  # (B, 3, H, W) -> (B, 3, R, R) -> (B, A)
    judge.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, len(judge.attr_names)), dtype=np.float32)


def predict(judge: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """bool (N, A): which attributes the judge sees in uint8 (N, H, W, 3) images (probability > 0.5)."""
    return probabilities(judge, images, batch_size) > 0.5


def attribute_rates(judge: nn.Module, images: np.ndarray, batch_size: int = 256) -> dict[str, float]:
    """Fraction of the images the judge calls positive, per attribute name."""
    if len(images) == 0:
        raise ValueError("judge: no images to rate; pass at least one image")
    rates = predict(judge, images, batch_size).mean(axis=0)
    return {name: float(rate) for name, rate in zip(judge.attr_names, rates)}


def compare_rates(judge: nn.Module, samples: np.ndarray, real: np.ndarray,
                  batch_size: int = 256) -> list[tuple[str, float, float]]:
    """(attribute, % of real images, % of samples) per attribute, both as the judge sees them.

    Real images are first resized to the samples' size, so both columns reach the judge through the
    same resampling: CelebA faces taken down from 64 to 32 px lose a third of their smiles to a 64 px
    judge (47 % -> 32 %), a loss that would otherwise be blamed on a 32 px generator.
    """
    if real.shape[1:3] != samples.shape[1:3]:
        real = resize(real, samples.shape[1])
    real_rates = attribute_rates(judge, real, batch_size)
    sample_rates = attribute_rates(judge, samples, batch_size)
    return [(name, 100 * real_rates[name], 100 * sample_rates[name]) for name in judge.attr_names]


def resize(images: np.ndarray, size: int, batch_size: int = 256) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, size, size, 3) with the judge's antialiased bilinear filter."""
    out = []
    for start in range(0, len(images), batch_size):
        x = to_float(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])))
        out.append(to_uint8(_resize(x, size)))
    return np.concatenate(out)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, size, size); antialiasing matters when shrinking, and is harmless when enlarging."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def edit_success(judge: nn.Module, before: np.ndarray, after: np.ndarray, attribute: str, target: bool,
                 batch_size: int = 256) -> float:
    """Of the images that lacked the target value before the edit, the fraction that have it after.

    Images already at the target are left out: counting them would credit a no-op edit with the
    attribute's base rate (a "48 % success" for doing nothing to smiles).
    """
    if attribute not in judge.attr_names:
        raise ValueError(f"judge knows no attribute {attribute!r}; it knows {', '.join(judge.attr_names)}")
    if before.shape != after.shape:
        raise ValueError(f"edit_success: before {tuple(before.shape)} and after {tuple(after.shape)} differ; "
                         "pass the same images before and after the edit")
    i = judge.attr_names.index(attribute)
    needed = predict(judge, before, batch_size)[:, i] != target
    if not needed.any():
        raise ValueError(f"edit_success: all {len(before)} images already have {attribute}={target} before the edit; "
                         "pick images without it")
    reached = predict(judge, after[needed], batch_size)[:, i] == target
    return float(reached.mean())


def balanced_accuracy(predicted: np.ndarray, truth: np.ndarray) -> list[float | None]:
    """Per attribute, the mean of the hit rates on its positives and on its negatives (None when the held-out
    images hold only one of the two). A rare attribute's plain accuracy hides a judge that never says yes:
    9 % glasses give 91 % for always "no", but a balanced accuracy of 50 %."""
    rates = []
    for i in range(truth.shape[1]):
        yes, no = truth[:, i], ~truth[:, i]
        rates.append(float((predicted[yes, i].mean() + (~predicted[no, i]).mean()) / 2) if yes.any() and no.any() else None)
    return rates


def format_accuracy(report: dict) -> str:
    """The holdout accuracy table of a train_judge report, one attribute a line."""
    lines = [f"{'attribute':<22} {'accuracy':>8} {'majority':>8} {'gain':>6} {'balanced':>8}"]
    for name, row in report["attributes"].items():
        gain = row["accuracy"] - row["baseline"]
        balanced = row.get("balanced_accuracy")  # judges trained before it was recorded have none
        balanced = "-" if balanced is None else f"{100 * balanced:.1f}%"
        lines.append(f"{name:<22} {100 * row['accuracy']:7.1f}% {100 * row['baseline']:7.1f}% {100 * gain:+5.1f} {balanced:>8}")
    mean_gain = report["mean_accuracy"] - report["mean_baseline"]
    lines.append(f"{'mean':<22} {100 * report['mean_accuracy']:7.1f}% {100 * report['mean_baseline']:7.1f}% {100 * mean_gain:+5.1f}")
    lines.append(f"({report['holdout_images']} held-out images, {report['holdout_rule']}; majority = always the training "
                 "majority; balanced = mean of the hit rates on positives and negatives, 50 % for a constant answer)")
    return "\n".join(lines)


def format_rates(rows: list[tuple[str, float, float]]) -> str:
    """compare_rates rows as a table: attribute, % in the data, % in the samples, difference."""
    lines = [f"{'attribute':<22} {'data':>6} {'samples':>8} {'diff':>6}"]
    for name, real, samples in rows:
        lines.append(f"{name:<22} {real:5.1f}% {samples:7.1f}% {samples - real:+6.1f}")
    return "\n".join(lines)
