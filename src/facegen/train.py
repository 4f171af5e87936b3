"""The training loop: one function in paragraphs, and one small update step per model family."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from facegen import checkpoint as ckpt
from facegen import distributed, losses, models, report
from facegen.config import Config, LossConfig, config_from_dict
from facegen.data import BatchLoader, open_dataset
from facegen.devices import Runtime, resolve_runtime
from facegen.images import save_grid, to_float
from facegen.sample import generate, latents

PREVIEW_SEEDS = range(64)  # previews show the same faces as `facegen sample --seeds 0-63`


@dataclass
class Optimizers:
    D: torch.optim.Optimizer
    G: torch.optim.Optimizer
    scaler: torch.amp.GradScaler


def gan_step(G: nn.Module, D: nn.Module, opt: Optimizers, x_real: torch.Tensor, z: torch.Tensor,
             loss: LossConfig, runtime: Runtime) -> dict[str, torch.Tensor]:
    """One D update then one G update (Goodfellow et al. Alg. 1 with k = 1); returns detached statistics."""
    raw_D = D.module if isinstance(D, nn.parallel.DistributedDataParallel) else D

    # Update D.
    with runtime.autocast():
        x_fake = G(z)
        real_logits, fake_logits = D(x_real), D(x_fake.detach())
    loss_d = losses.d_loss(real_logits, fake_logits, loss.kind)
    opt.D.zero_grad(set_to_none=True)
    opt.scaler.scale(loss_d).backward()
    opt.scaler.step(opt.D)

    # Update G. D is frozen: its weight gradients are not needed, which saves a third of its backward
    # pass, and it runs unwrapped so that DDP does not wait for gradients that never come.
    raw_D.requires_grad_(False)
    with runtime.autocast():
        loss_g = losses.g_loss(raw_D(x_fake), loss.kind)
    opt.G.zero_grad(set_to_none=True)
    opt.scaler.scale(loss_g).backward()
    opt.scaler.step(opt.G)
    raw_D.requires_grad_(True)
    opt.scaler.update()

    real_logits, fake_logits = real_logits.detach().float(), fake_logits.detach().float()
    return {
        "loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
        "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean(),
        "acc_real": (real_logits > 0).float().mean(), "acc_fake": (fake_logits < 0).float().mean(),
    }


def load_run_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a facegen run (no config.json); pass the --out directory of an earlier train")
    return config_from_dict(json.loads(path.read_text()))


def train(cfg: Config, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train cfg's model into the run directory `out`; with resume, continue from its newest checkpoint."""
    out = Path(out)
    world = distributed.init()
    runtime = resolve_runtime(cfg.train.device if world.size == 1 else world.device, cfg.train.precision)
    newest = ckpt.latest(out)
    if resume and newest is None:
        raise ValueError(f"--resume: {out} has no checkpoint to resume from; drop --resume to start a new run there")
    if not resume and newest is not None:
        raise ValueError(f"{out} already holds a run; pass --resume to continue it or choose another --out")

    # Data.
    dataset = open_dataset(cfg.data.source, cfg.data.resolution, cfg.data.crop, cfg.data.cache_dir,
                           progress=progress and world.is_main)
    loader = BatchLoader(dataset.images, dataset.split_indices(cfg.data.split), cfg.train.batch_size,
                         cfg.train.seed, world.rank, world.size)
    total_steps = cfg.train.steps or cfg.train.epochs * loader.steps_per_epoch

    # Models, optimizers, noise.
    torch.manual_seed(cfg.train.seed)
    architecture = {"resolution": dataset.resolution, **cfg.model.architecture()}
    nets = {role: runtime.prepare(net) for role, net in models.build(cfg.model.family, **architecture).items()}
    G, D = nets["G"], nets["D"]
    opt = Optimizers(
        D=torch.optim.Adam(D.parameters(), lr=cfg.train.lr_d, betas=cfg.train.betas_d),
        G=torch.optim.Adam(G.parameters(), lr=cfg.train.lr_g, betas=cfg.train.betas_g),
        scaler=runtime.grad_scaler(),
    )
    noise = torch.Generator(runtime.device).manual_seed(cfg.train.seed + 1_000_003 * world.rank)
    fixed_z = latents(PREVIEW_SEEDS, G.z_dim, G.z_dist)
    start = 0
    if resume:
        state = ckpt.load(newest)
        for role, net in nets.items():
            net.load_state_dict(state.nets[role])
        opt.D.load_state_dict(state.state["optimizers"]["D"])
        opt.G.load_state_dict(state.state["optimizers"]["G"])
        noise.set_state(state.state["rng"]["noise"])
        torch.set_rng_state(state.state["rng"]["torch"])
        start = state.state["step"]
    G, D = world.wrap(G), world.wrap(D)

    # Run directory.
    metrics_path = out / "metrics.jsonl"
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        if resume and metrics_path.exists():  # steps after the checkpoint are about to be redone
            kept = [line for line in metrics_path.read_text().splitlines() if json.loads(line)["step"] <= start]
            metrics_path.write_text("".join(line + "\n" for line in kept))

    def save_checkpoint(step: int) -> None:
        if not world.is_main:
            return
        state = {
            "step": step, "epoch": step // loader.steps_per_epoch, "fixed_z": fixed_z, "config": cfg.to_dict(),
            "optimizers": {"D": opt.D.state_dict(), "G": opt.G.state_dict()},
            "rng": {"noise": noise.get_state(), "torch": torch.get_rng_state()},
        }
        raw = {role: distributed.unwrap(net).state_dict() for role, net in (("G", G), ("D", D))}
        ckpt.save(out / "checkpoints" / f"ckpt-{step:07d}.safetensors", ckpt.Checkpoint(cfg.model.family, architecture, raw, state))
        for old in ckpt.all_checkpoints(out)[: -cfg.train.keep_checkpoints]:
            old.unlink()

    def preview(step: int) -> None:
        if world.is_main:
            save_grid(generate(distributed.unwrap(G), fixed_z), out / "previews" / f"step-{step:07d}.png")
            report.plot_training(metrics_path, out / "training.png")

    # The loop.
    bar = tqdm(total=total_steps, initial=start, desc="train", unit="step", disable=not (progress and world.is_main))
    images_per_step = cfg.train.batch_size * world.size
    t_start = t_log = time.perf_counter()
    step = start
    try:
        while step < total_steps:
            x_real = to_float(loader.batch(step).to(runtime.device, non_blocking=True))
            z = latents_for_step(cfg.train.batch_size, G, noise, runtime.device)
            stats = gan_step(G, D, opt, x_real, z, cfg.loss, runtime)
            step += 1
            bar.update()

            # Log.
            if step % cfg.train.log_every == 0 or step == total_steps:
                now = time.perf_counter()
                record = {"step": step, "epoch": step / loader.steps_per_epoch,
                          **{k: round(v.item(), 5) for k, v in stats.items()},
                          "img_per_s": round(images_per_step * (step - max(start, step - cfg.train.log_every)) / (now - t_log), 1)}
                t_log = now
                if world.is_main:
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps(record) + "\n")
                bar.set_postfix(loss_d=record["loss_d"], loss_g=record["loss_g"], img_s=record["img_per_s"])

            # Preview: every preview_every steps, at each epoch end and at the end.
            if step % cfg.train.preview_every == 0 or step % loader.steps_per_epoch == 0 or step == total_steps:
                preview(step)

            # Checkpoint.
            if step % cfg.train.checkpoint_every == 0 or step == total_steps:
                save_checkpoint(step)
    except KeyboardInterrupt:
        save_checkpoint(step)  # nothing trained is lost; --resume continues from here
        raise
    finally:
        bar.close()

    elapsed = time.perf_counter() - t_start
    if world.is_main:
        print(f"trained {step - start} steps in {elapsed:.1f} s ({images_per_step * (step - start) / max(elapsed, 1e-9):.1f} img/s)")
    world.close()
    return out


def latents_for_step(batch_size: int, G: nn.Module, noise: torch.Generator, device: torch.device) -> torch.Tensor:
    """Training latents from the run's own generator, in the prior the model was built with."""
    raw = distributed.unwrap(G)
    if raw.z_dist == "uniform":
        return torch.rand(batch_size, raw.z_dim, generator=noise, device=device).mul_(2).sub_(1)
    return torch.randn(batch_size, raw.z_dim, generator=noise, device=device)
