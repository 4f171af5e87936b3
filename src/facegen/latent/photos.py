"""Real photos in a model's latent space: prepared as its data was, encoded by a VAE, projected into a GAN, and the
encoder a GAN can be given for a fast start."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facegen import checkpoint as ckpt
from facegen import data
from facegen.devices import resolve_runtime
from facegen.images import to_float
from facegen.latent.model import ENCODER_FILE, LatentModel, open_model
from facegen.sample import latents

PROJECTION_SEEDS = 10**9  # projection starts draw prior seeds from here, apart from the seeds people sample


def load_photos(model: LatentModel, paths: Sequence[str | Path]) -> np.ndarray:
    """uint8 (N, R, R, 3): photos prepared with the run's own crop and resolution, as its training data was."""
    return data.load_photos(paths, model.resolution, model.crop)


def d_features(D: nn.Module | None, x: torch.Tensor) -> torch.Tensor | None:
    """The run's own discriminator's last feature map before its head (B, C, base, base): a perceptual
    distance learned from the same faces, with nothing downloaded. None for D-less or multi-scale models
    (a D without a `features` method)."""
    return D.features(x) if hasattr(D, "features") else None


def _frozen(model: LatentModel) -> tuple[nn.Module, nn.Module | None]:
    G, D = model.G.eval(), model.D.eval() if model.D is not None else None
    for net in (G, D):
        if net is not None:
            net.requires_grad_(False)
    return G, D


def _distance(D: nn.Module | None, x: torch.Tensor, target: torch.Tensor, target_features: torch.Tensor | None,
              feature_weight: float) -> torch.Tensor:
    """(B,): pixel MSE plus feature_weight * (1 - cosine) of D's features, a projection's distance to its photos."""
    loss = (x - target).pow(2).flatten(1).mean(1)
    if target_features is not None and feature_weight:
        loss = loss + feature_weight * (1 - F.cosine_similarity(d_features(D, x).flatten(1), target_features.flatten(1)))
    return loss


def project(model: LatentModel, images: np.ndarray, steps: int = 200, starts: int = 4, lr: float = 0.05,
            feature_weight: float = 0.1, init: torch.Tensor | None = None, seed: int = 0,
            labels: torch.Tensor | None = None) -> torch.Tensor:
    """Latents whose images match uint8 photos: Adam on z from several starts (or from `init`), minimising the
    pixel MSE plus feature_weight * (1 - cosine) of D's features and a weak pull to the prior; the best start wins.
    A conditional model draws each photo with its labels (N, K). A model with per-layer latents (a style model) is
    projected into W+ instead (`project_w_plus`), where the labels are already part of w."""
    if model.layers:
        return project_w_plus(model, images, steps, feature_weight=feature_weight, init=init, seed=seed)
    G, D = _frozen(model)
    target = to_float(torch.from_numpy(np.ascontiguousarray(images)))
    n = len(target)
    if init is not None:
        z0 = init.detach().float()[None]
    else:  # start s of photo i: prior seed PROJECTION_SEEDS + (seed * starts + s) * N + i, away from sampling's seeds
        first = PROJECTION_SEEDS + seed * starts * n
        z0 = torch.stack([latents(range(first + s * n, first + (s + 1) * n), G.z_dim, G.z_dist) for s in range(starts)])
    z = z0.reshape(-1, G.z_dim).clone().requires_grad_(True)  # (starts * N, z_dim), start-major
    target = target.repeat(len(z0), 1, 1, 1)
    y = None if labels is None else labels.float().repeat(len(z0), 1)
    with torch.no_grad():
        target_features = d_features(D, target)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        loss = _distance(D, G(z, y), target, target_features, feature_weight)
        opt.zero_grad(set_to_none=True)
        (loss.sum() + 1e-3 * z.pow(2).mean(1).sum()).backward()
        opt.step()
    with torch.no_grad():
        final = _distance(D, G(z, y), target, target_features, feature_weight).reshape(len(z0), n)
    best = final.argmin(dim=0)
    return z.detach().reshape(len(z0), n, -1)[best, torch.arange(n)]


def noise_regulariser(noises: list[torch.Tensor]) -> torch.Tensor:
    """StyleGAN2's projector term: the squared autocorrelation of each noise map at a one-pixel shift, down to 8x8, so
    that the optimised noise stays noise and cannot paint the photo in by itself."""
    total = torch.zeros(())
    for noise in noises:
        while True:
            total = total + (noise * noise.roll(1, dims=3)).mean().square() + (noise * noise.roll(1, dims=2)).mean().square()
            if noise.shape[-1] <= 8:
                break
            noise = F.avg_pool2d(noise, 2)
    return total


def project_w_plus(model: LatentModel, images: np.ndarray, steps: int = 200, lr: float = 0.05, feature_weight: float = 0.1,
                   noise_weight: float = 1e5, init: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """W+ latents (N, layers, w_dim) of uint8 photos: one w per layer, starting from the tracked mean w (or `init`, one
    w a photo), optimised by Adam with per-photo noise maps beside them (kept at zero mean and unit variance, held to
    noise by `noise_regulariser`), against the same distance as `project` (Karras et al. 2020, appendix D)."""
    G, D = _frozen(model)
    target = to_float(torch.from_numpy(np.ascontiguousarray(images)))
    n = len(target)
    start = init.detach().float() if init is not None else G.to_edit_space(torch.zeros(1, G.z_dim), truncation=0.0)  # the mean w
    w = start.expand(n, -1)[:, None].repeat(1, model.layers, 1).requires_grad_(True)  # (N, layers, w_dim)
    draws = torch.Generator().manual_seed(PROJECTION_SEEDS + seed)
    noises = [torch.randn(n, 1, size, size, generator=draws).requires_grad_(True) for size in G.noise_sizes()]
    with torch.no_grad():
        target_features = d_features(D, target)
    opt = torch.optim.Adam([w, *noises], lr=lr)
    for _ in range(steps):
        loss = _distance(D, G.from_edit_space(w, noises), target, target_features, feature_weight).sum()
        opt.zero_grad(set_to_none=True)
        (loss + noise_weight * noise_regulariser(noises)).backward()
        opt.step()
        with torch.no_grad():
            for noise in noises:
                noise.sub_(noise.mean(dim=(2, 3), keepdim=True)).div_(noise.std(dim=(2, 3), keepdim=True) + 1e-8)
    return w.detach()


def photo_latents(model: LatentModel, images: np.ndarray, steps: int | None = None,
                  labels: torch.Tensor | None = None) -> tuple[torch.Tensor, str]:
    """The latents of photos, and how they were found: the encoder's mean (refined by `steps` of
    optimisation when asked), else projection into the GAN (from its trained encoder when it has one). A conditional
    model needs the photos' labels (N, K): `photo_labels` reads them."""
    from facegen.encoding import encode

    if model.condition_names and labels is None:
        raise ValueError(f"photos of a conditional model ({', '.join(model.condition_names)}) need their labels: edit them with "
                         "facegen edit RUN --images PHOTO --judge DIR (the judge reads them), or --holdout N (the data's own)")
    if model.E is not None:
        mu = torch.from_numpy(encode(model.E, images, labels=None if labels is None else labels.numpy()))
        if not steps:
            return mu, "encoder mean"
        return project(model, images, steps, init=mu, labels=labels), f"encoder mean + {steps} optimisation steps"
    how = "from the mean w into W+" if model.layers else "4 random starts"
    return project(model, images, steps or 200, labels=labels), f"projection ({steps or 200} Adam steps, {how})"


def photo_labels(model: LatentModel, images: np.ndarray, names: Sequence[str], judge_path: str | Path | None = None
                 ) -> tuple[torch.Tensor, str]:
    """A conditional model's labels of photos (N, K) of +1 / -1, and where they came from: the run's data's label file
    when every photo is one of its images (matched by file name), else the attribute judge's reading (p >= 0.5)."""
    rows, attr_names = _label_file_rows(model)
    if rows and all(Path(name).name in rows for name in names):
        columns = [attr_names.index(c) for c in model.condition_names]
        return torch.tensor(np.stack([rows[Path(name).name][columns] for name in names]), dtype=torch.float32), "the data's label file"
    if judge_path is None:
        raise ValueError(f"photos of a conditional model ({', '.join(model.condition_names)}) need their labels, and these are not "
                         "images of the run's data: add --judge DIR (made by facegen judge train) to read them from the photos")
    from facegen.judge import load_judge, probabilities

    judge, _ = load_judge(judge_path)
    missing = [c for c in model.condition_names if c not in judge.attr_names]
    if missing:
        raise ValueError(f"the judge {judge_path} does not read {', '.join(missing)}, which the model is conditioned on; "
                         "train a judge on the same labels (facegen judge train SOURCE)")
    p = probabilities(judge, images)[:, [judge.attr_names.index(c) for c in model.condition_names]]
    return torch.from_numpy(np.where(p >= 0.5, 1.0, -1.0)).float(), f"the judge {judge_path}"


def _label_file_rows(model: LatentModel) -> tuple[dict[str, np.ndarray], list[str]]:
    """{file name: +1/-1 row} of the run's data source's label file, and its attribute names; empty without one."""
    from facegen.data.sources import resolve_source

    config = model.checkpoint.state["config"]["data"]
    try:
        raw = resolve_source(config["source"], data.cache_root(config["cache_dir"]), progress=False)
    except ValueError:  # the data moved or is gone: the judge reads the photos instead
        return {}, []
    if raw.labels is None or raw.files is None:
        return {}, []
    return {Path(raw.file_name(i)).name: raw.labels[i] for i in range(len(raw))}, raw.attr_names


def train_encoder(run: str | Path, steps: int = 2000, batch_size: int = 64, lr: float = 2e-4, pixel_weight: float = 1.0,
                  seed: int = 0, progress: bool = True) -> Path:
    """An encoder for a GAN into its edit space (z, or a style model's w), trained on its own samples (z -> latent ->
    image -> E -> latent, MSE there) plus a pixel term on real faces (x -> E -> G -> x): the start that makes projection
    fast. Saved as RUN/encoder.safetensors."""
    from tqdm import tqdm

    from facegen.data import BatchLoader
    from facegen.models import vae

    model = open_model(run)
    if "E" in model.checkpoint.nets:
        raise ValueError(f"{model.checkpoint.path} is a {model.checkpoint.family} model with its own encoder; train-encoder is for GANs")
    architecture = {"resolution": model.resolution, "z_dim": model.latents_of_seeds([0]).shape[1],  # the edit space's size
                    "base_channels": model.checkpoint.architecture.get("base_channels", 64)}
    torch.manual_seed(seed)
    runtime = resolve_runtime()  # the training loop's device, precision and layout: bf16 halves the time on such CPUs
    E = runtime.prepare(vae.build_encoder(**architecture)["E"])
    G = runtime.prepare(model.G).eval().requires_grad_(False)
    dataset = model.checkpoint.dataset(progress=progress)
    loader = BatchLoader(dataset.images, dataset.split_indices("train"), batch_size, seed)
    opt, scaler = torch.optim.Adam(E.parameters(), lr=lr, betas=(0.5, 0.999)), runtime.grad_scaler()
    noise = torch.Generator().manual_seed(seed)
    for step in tqdm(range(steps), desc="train-encoder", disable=not progress):
        z = torch.randn(batch_size, G.z_dim, generator=noise)
        if G.z_dist == "uniform":
            z = torch.rand(batch_size, G.z_dim, generator=noise) * 2 - 1
        z, x_real = z.to(runtime.device), to_float(loader.batch(step)).to(runtime.device)
        with runtime.autocast():
            with torch.no_grad():
                target = G.to_edit_space(z)
                x_fake = G.from_edit_space(target)
            latent_of_fake, x_again = E(x_fake)[0], G.from_edit_space(E(x_real)[0])
        loss = F.mse_loss(latent_of_fake.float(), target.float()) + pixel_weight * F.mse_loss(x_again.float(), x_real)  # in fp32
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    state = {"step": steps, "generator": model.checkpoint.path.name, "config": model.checkpoint.state["config"],
             "train": {"steps": steps, "batch_size": batch_size, "lr": lr, "pixel_weight": pixel_weight, "seed": seed}}
    E = E.cpu().to(memory_format=torch.contiguous_format)  # saved as the loader builds it
    return ckpt.save(model.run_dir / ENCODER_FILE, ckpt.Checkpoint("encoder", architecture, {"E": E.state_dict()}, state))
