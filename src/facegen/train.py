"""The training loop: one function in paragraphs that never learns which family it trains (see steps.py)."""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facegen import checkpoint as ckpt
from facegen import distributed, encoding, evaluate, losses, models, report, steps
from facegen.ada import AdaptiveAugment
from facegen.augment import parse_policy
from facegen.config import Config, config_from_dict
from facegen.data import BatchLoader, FaceDataset, open_dataset
from facegen.devices import resolve_runtime
from facegen.files import RunLock, write_text_atomic
from facegen.images import auto_zoom, make_grid, save_image, to_float
from facegen.progress import TrainProgress
from facegen.sample import generate, labels_for_seeds, latents, recompute_batchnorm

PREVIEW_SEEDS = range(64)  # previews show the same faces as `facegen sample --seeds 0-63`
RUN_INFO = "run.json"  # how the run was made: preset, sweep settings, start time
BEST_CHECKPOINT = "best.safetensors"  # the lowest quick KID so far; not counted among the rolling checkpoints


def ema_decay(decay: float, step: int) -> float:
    """The decay at a step, warmed up as (1 + t) / (10 + t) so that the random initial weights do not
    dominate short runs (0.999 ** 600 would still give them 55 %)."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for weights; BatchNorm statistics are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def lr_factor(progress: float, decay: float) -> float:
    """The learning rates' multiplier when `progress` (0 to 1) of the budget is spent: 1, then over the last
    `decay` of it a straight line to 0. Budgeted training (Li et al. 2020) finds such a decay to zero worth
    much of a longer run; it anneals what the last steps add, where an EMA only averages it."""
    return 1.0 if decay == 0 else min(1.0, max(0.0, (1.0 - progress) / decay))


def load_run_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a facegen run (no config.json); pass the --out directory of an earlier train")
    return config_from_dict(json.loads(path.read_text()))


def train(cfg: Config, out: str | Path, resume: bool = False, progress: bool = True, origin: dict | None = None) -> Path:
    """Train cfg's model into the run directory `out`; with resume, continue from its newest checkpoint.

    origin (the preset, the sweep ...) is kept in out/run.json for tables of runs. A second process on the
    same run directory is refused while this one trains.
    """
    out = Path(out)
    world = distributed.init()
    with RunLock(out) if world.is_main else contextlib.nullcontext():
        return _train(cfg, out, world, resume, progress, origin)


def _train(cfg: Config, out: Path, world: distributed.World, resume: bool, progress: bool, origin: dict | None) -> Path:
    runtime = resolve_runtime(cfg.train.device if world.size == 1 else world.device, cfg.train.precision)
    newest = ckpt.latest(out)
    if resume and newest is None:
        raise ValueError(f"--resume: {out} has no checkpoint to resume from; drop --resume to start a new run there")
    if not resume and newest is not None:
        raise ValueError(f"{out} already holds a run; pass --resume to continue it or choose another --out")

    if cfg.train.sync_batchnorm and world.size > 1 and runtime.device.type != "cuda":
        raise ValueError("train.sync_batchnorm needs CUDA devices (torch refuses SyncBatchNorm on the CPU); set train.sync_batchnorm=false")

    # Data: rank 0 builds a missing cache while the others wait, then everyone opens it.
    if not world.is_main:
        world.barrier()
    dataset = open_dataset(cfg.data.source, cfg.data.resolution, cfg.data.crop, cfg.data.cache_dir,
                           progress=progress and world.is_main)
    if world.is_main:
        world.barrier()
    # Conditions: model.conditions checked against the data's label columns before anything is built or written.
    columns, condition_names = dataset.condition_columns(cfg.model.conditions) if cfg.model.conditions else ([], [])
    labels = dataset.labels[:, columns] if columns else None
    loader = BatchLoader(dataset.images, dataset.split_indices(cfg.data.split), cfg.train.batch_size,
                         cfg.train.seed, world.rank, world.size, cfg.data.mirror, labels)
    total_steps = cfg.train.steps or cfg.train.epochs * loader.steps_per_epoch
    budget_s = cfg.train.minutes * 60 if cfg.train.minutes else float("inf")

    # Models, optimizers, noise. Every network of the family trains; D at lr_d, the others at lr_g.
    torch.manual_seed(cfg.train.seed)
    architecture = {"resolution": dataset.resolution, **cfg.model.architecture(), **({"num_conditions": len(columns)} if columns else {})}
    nets = {role: runtime.prepare(net) for role, net in models.build(cfg.model.family, **architecture).items()}
    # A conditional G samples labels from its training faces' rows (sample.labels_for_seeds); checkpoints carry them.
    label_table = torch.from_numpy(labels[loader.indices]) if columns else None
    if columns:
        nets["G"].label_table, nets["G"].condition_names = label_table, condition_names
    opt = steps.Optimizers(
        {role: torch.optim.Adam(net.parameters(), **({"lr": cfg.train.lr_d, "betas": cfg.train.betas_d} if role == "D" else
                                                      {"lr": cfg.train.lr_g, "betas": cfg.train.betas_g}))
         for role, net in nets.items()},
        runtime.grad_scaler(),
    )
    # EMA copies of every network but D: an encoder is averaged with its decoder, since its latents fit the decoder it
    # trains with (the raw encoder into the EMA decoder reconstructs worse than either pair).
    averaged = {role: copy.deepcopy(net).requires_grad_(False) for role, net in nets.items() if role != "D"} if cfg.train.ema else {}
    # Adaptive augmentation of D's inputs: its p and controller state are buffers, saved with each checkpoint.
    ada = (AdaptiveAugment(cfg.data.ada_augment, cfg.data.ada_target, cfg.data.ada_interval, cfg.data.ada_kimg, cfg.data.ada_p)
           .to(runtime.device) if cfg.data.ada_target else None)
    noise = torch.Generator(runtime.device)  # reseeded every step from (seed, step, rank)
    fixed_z = latents(PREVIEW_SEEDS, nets["G"].z_dim, nets["G"].z_dist)
    start, seconds_before = 0, 0.0
    if resume:
        state = ckpt.load(newest)
        if (state.family, state.architecture) != (cfg.model.family, architecture):
            raise ValueError(f"{newest} holds a {state.family} model {state.architecture}, but the run's config builds a "
                             f"{cfg.model.family} model {architecture}; it was copied in from another run, move it away")
        for role, net in nets.items():
            net.load_state_dict(state.nets[role])
        for role, net in averaged.items():  # a checkpoint from before encoders were averaged starts E's copy from E
            net.load_state_dict(state.nets.get(ckpt.ema_role(role), state.nets[role]))
        for role, adam in opt.adam.items():
            adam.load_state_dict(state.state["optimizers"][role])
        if ada is not None and "ada" in state.state:
            ada.load_state_dict(state.state["ada"])
        torch.set_rng_state(state.state["rng"]["torch"])
        start, seconds_before = state.state["step"], state.state.get("train_seconds", 0.0)
    for adam in opt.adam.values():  # the rate before any decay (and after any rollbacks), saved with Adam's state
        for group in adam.param_groups:
            group.setdefault("initial_lr", group["lr"])
    if cfg.train.sync_batchnorm and world.size > 1:  # BatchNorm statistics over the global batch
        nets = {role: nn.SyncBatchNorm.convert_sync_batchnorm(net) for role, net in nets.items()}
    nets = {role: world.wrap(net) for role, net in nets.items()}
    update = steps.STEPS[cfg.model.family]
    label_noise, policy = losses.parse_label_noise(cfg.loss.label_noise), parse_policy(cfg.data.diffaugment)

    ema_bn_stale = True  # the EMA G's statistics were copied from G since they were last recomputed

    def sample_G() -> nn.Module:
        """The generator previews, samples and the quick KID use: the EMA copy when the run keeps one, with BatchNorm
        statistics of its own when train.ema_bn_batches asks for them."""
        nonlocal ema_bn_stale
        if "G" not in averaged:
            return distributed.unwrap(nets["G"])
        if cfg.train.ema_bn_batches and ema_bn_stale:
            recompute_batchnorm(averaged["G"], cfg.train.ema_bn_batches)
            ema_bn_stale = False
        return averaged["G"]

    # Run directory.
    metrics_path = out / "metrics.jsonl"
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob("checkpoints/.*.tmp*"):  # half-written by a process killed mid-save (we hold the lock)
            stale.unlink()
        write_text_atomic(out / "config.json", json.dumps(cfg.to_dict(), indent=1))
        if not resume:
            write_text_atomic(out / RUN_INFO, json.dumps({**(origin or {}), "started": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))
        if resume and metrics_path.exists():  # steps after the checkpoint are about to be redone
            truncate_metrics(metrics_path, start)

    def save_checkpoint(step: int, name: str | None = None) -> None:
        if not world.is_main:
            return
        state = {
            "step": step, "epoch": step // loader.steps_per_epoch, "fixed_z": fixed_z, "config": cfg.to_dict(),
            "train_seconds": seconds_before + time.perf_counter() - t_start,
            "optimizers": {role: adam.state_dict() for role, adam in opt.adam.items()},
            "rng": {"torch": torch.get_rng_state()},
            **({"ada": ada.state_dict()} if ada is not None else {}),
            **({"conditions": condition_names, "condition_labels": label_table} if columns else {}),
        }
        sample_G()  # the saved EMA G samples as previews do
        raw = {role: distributed.unwrap(net).state_dict() for role, net in nets.items()}
        raw.update({ckpt.ema_role(role): net.state_dict() for role, net in averaged.items()})
        path = out / "checkpoints" / (name or f"ckpt-{step:07d}.safetensors")
        ckpt.save(path, ckpt.Checkpoint(cfg.model.family, architecture, raw, state))
        for old in ckpt.all_checkpoints(out)[: -cfg.train.keep_checkpoints]:
            old.unlink()

    quick_kid = evaluate.QuickKID(dataset, cfg.train.kid_samples, out) if cfg.train.kid_every and world.is_main else None
    board = report.TensorBoard(out, purge_step=start if resume else None) if cfg.train.tensorboard and world.is_main else None
    # Encoder models also preview reconstructions of fixed held-out faces.
    recon_faces = np.asarray(dataset.images[preview_faces(dataset)]) if "E" in nets else None
    recon_labels = labels[preview_faces(dataset)] if "E" in nets and columns else None  # a conditional VAE's own labels

    def preview(step: int) -> None:
        if not world.is_main:
            return
        G = sample_G()
        grids = {"samples": make_grid(generate(G, fixed_z, labels=labels_for_seeds(G, PREVIEW_SEEDS)))}
        save_image(grids["samples"], out / "previews" / f"step-{step:07d}.png", auto_zoom(cfg.data.resolution))
        if recon_faces is not None:
            E = averaged["E"] if "E" in averaged else distributed.unwrap(nets["E"])  # the pair sample_G belongs to
            recon = encoding.reconstruct(E, sample_G(), recon_faces, labels=recon_labels)
            grids["reconstructions"] = encoding.pairs_grid(recon_faces, recon)
            save_image(grids["reconstructions"], out / "previews" / f"recon-{step:07d}.png", auto_zoom(cfg.data.resolution))
        if board:
            board.images(grids, step)
        report.plot_training(metrics_path, out / "training.png")

    # The last good state (in memory: the start, then each checkpoint) that a non-finite loss rolls back to.
    last_good, rollbacks = {}, 0

    def remember(step: int) -> None:
        last_good.update(copy.deepcopy({"step": step, "rng": torch.get_rng_state(),
                                        "nets": {role: net.state_dict() for role, net in nets.items()},
                                        "ema": {role: net.state_dict() for role, net in averaged.items()},
                                        "adam": {role: adam.state_dict() for role, adam in opt.adam.items()},
                                        "ada": ada.state_dict() if ada is not None else None}))

    def recover(failed_step: int) -> int:
        """Restore the last good state, scale every learning rate by nan_lr_factor and log it; the step to go on from."""
        nonlocal rollbacks
        rollbacks += 1
        if rollbacks > cfg.train.nan_retries:
            raise ValueError(f"training diverged: a non-finite loss at step {failed_step} after {cfg.train.nan_retries} rollbacks; "
                             f"lower the learning rates or raise train.nan_retries (the last good checkpoint is in {out / 'checkpoints'})")
        for role, net in nets.items():
            net.load_state_dict(last_good["nets"][role])
        for role, net in averaged.items():
            net.load_state_dict(last_good["ema"][role])
        if ada is not None:
            ada.load_state_dict(last_good["ada"])
        for role, adam in opt.adam.items():
            adam.load_state_dict(last_good["adam"][role])
            for group in adam.param_groups:
                group["lr"] *= cfg.train.nan_lr_factor
                group["initial_lr"] *= cfg.train.nan_lr_factor
        torch.set_rng_state(last_good["rng"])
        record = {"step": last_good["step"], "rollback_from": failed_step, "retry": rollbacks,
                  "lr_d": opt.adam["D"].param_groups[0]["lr"] if "D" in opt.adam else None, "lr_g": opt.adam["G"].param_groups[0]["lr"]}
        if world.is_main:
            truncate_metrics(metrics_path, last_good["step"], record)
        print(f"facegen: non-finite loss at step {failed_step}; rolled back to step {last_good['step']} with learning rates "
              f"x{cfg.train.nan_lr_factor} (rollback {rollbacks} of at most {cfg.train.nan_retries})", file=sys.stderr)
        last_good["adam"] = {role: copy.deepcopy(adam.state_dict()) for role, adam in opt.adam.items()}  # keep the new rates
        return last_good["step"]

    # The loop.
    remember(start)
    bar = TrainProgress(cfg.train.minutes, cfg.train.steps, cfg.train.epochs, loader.steps_per_epoch, start, seconds_before,
                        enabled=progress and world.is_main)
    images_per_step = cfg.train.batch_size * world.size
    t_start = t_log = time.perf_counter()

    def spent() -> float:
        """The fraction of the budget behind us: steps or the clock, whichever is further; ranks agree on the clock."""
        clock = world.max((seconds_before + time.perf_counter() - t_start) / budget_s) if budget_s < float("inf") else 0.0
        return max(step / total_steps, clock)

    step = start
    progress = spent()
    done = progress >= 1.0
    try:
        while not done:
            if cfg.train.lr_decay:
                for adam in opt.adam.values():
                    for group in adam.param_groups:
                        group["lr"] = group["initial_lr"] * lr_factor(progress, cfg.train.lr_decay)
            noise.manual_seed(step_seed(cfg.train.seed, step, world.rank))
            x_real = to_float(loader.batch(step).to(runtime.device, non_blocking=True))
            y_real = loader.batch_labels(step)
            ctx = steps.StepContext(
                cfg.loss, runtime, noise, lambda: latents_for_step(cfg.train.batch_size, nets["G"], noise, runtime.device),
                step=step, label_noise=label_noise, policy=policy, ada=ada, g_steps=cfg.train.g_steps, mixing=cfg.model.mixing,
                sigma=losses.instance_noise_sigma(cfg.loss.instance_noise, step, cfg.loss.instance_noise_anneal_steps),
                labels=None if y_real is None else y_real.to(runtime.device),
                draw_y=lambda: None if labels is None else loader.random_labels(cfg.train.batch_size, noise).to(runtime.device),
            )
            stats = update(nets, opt, x_real, ctx)
            for role, net in averaged.items():
                update_ema(net, distributed.unwrap(nets[role]), ema_decay(cfg.train.ema, step))
            ema_bn_stale = True

            # Non-finite guard: back to the last good state with smaller learning rates, a few times at most.
            if world.any(not finite(stats.values())):
                step = recover(step)
                continue
            step += 1
            bar.advance(step, seconds_before + time.perf_counter() - t_start)
            if ada is not None:  # every ada_interval steps, p follows D's confidence on the reals
                ada.update(step, images_per_step)
            # Stop at the step budget or the wall-clock budget, whichever comes first.
            progress = spent()
            done = progress >= 1.0

            # Log.
            if step % cfg.train.log_every == 0 or done:
                now = time.perf_counter()
                record = {"step": step, "epoch": step / loader.steps_per_epoch,
                          **{k: round(v.item(), 5) for k, v in stats.items()},
                          "img_per_s": round(images_per_step * (step - max(start, step - cfg.train.log_every)) / (now - t_log), 1),
                          **({"lr_factor": round(lr_factor(progress, cfg.train.lr_decay), 4)} if cfg.train.lr_decay else {}),
                          **({"ada_p": round(ada.p.item(), 5), "ada_rt": round(ada.rt.item(), 5)} if ada is not None else {})}
                t_log = now
                if world.is_main:
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    if board:
                        board.scalars(record)
                bar.set_postfix({k: record[k] for k in list(stats)[:3]}, img_s=record["img_per_s"])

            # Preview: every preview_every steps and at the end; also at each epoch end when epochs are longer than
            # that (the reports' grid per epoch), not after each of a small set's short epochs (a tenth of a 10-minute fast32 run).
            epoch_end = step % loader.steps_per_epoch == 0 and loader.steps_per_epoch >= cfg.train.preview_every
            if step % cfg.train.preview_every == 0 or epoch_end or done:
                preview(step)

            # Quick KID; the best checkpoint so far is kept apart from the rolling ones.
            if quick_kid and (step % cfg.train.kid_every == 0 or done):
                if quick_kid.measure(step, sample_G(), metrics_path, board):
                    save_checkpoint(step, BEST_CHECKPOINT)

            # Checkpoint (never of non-finite weights), and remember it as the state to roll back to.
            if step % cfg.train.checkpoint_every == 0 or done:
                if world.any(not finite(p for net in nets.values() for p in net.parameters())):
                    step, done = recover(step), False
                    continue
                save_checkpoint(step)
                remember(step)
    except KeyboardInterrupt:
        save_checkpoint(step)  # nothing trained is lost; --resume continues from here
        raise
    finally:
        bar.close()
        if board:
            board.close()

    elapsed = time.perf_counter() - t_start
    if world.is_main:
        stopped = " (wall-clock budget reached)" if step < total_steps else ""
        print(f"trained {step - start} steps in {elapsed:.1f} s ({images_per_step * (step - start) / max(elapsed, 1e-9):.1f} img/s){stopped}")
    world.close()
    return out


def finite(tensors) -> bool:
    """True when every element of every tensor (losses, weights) is finite: one synchronisation for the lot."""
    return bool(torch.stack([t.detach().isfinite().all() for t in tensors]).all())


def truncate_metrics(path: Path, last_step: int, *records: dict) -> None:
    """Keep the records up to last_step (the steps after it are about to be redone), then append `records`."""
    kept = [r for r in report.read_metrics(path) if r.get("step", 0) <= last_step]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in [*kept, *records]))


def preview_faces(dataset: FaceDataset, n: int = 16) -> np.ndarray:
    """Indices of n fixed faces to reconstruct in previews: held-out ones when the split has enough."""
    return dataset.spread_indices("holdout" if dataset.holdout.sum() >= n else "all", n)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of one rank's draws at one step: like its batch, a pure function of (seed, step, rank), so a
    resumed run (single-process or DDP) draws exactly what the uninterrupted run would have."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def latents_for_step(batch_size: int, G: nn.Module, noise: torch.Generator, device: torch.device) -> torch.Tensor:
    """Training latents from the run's own generator, in the prior the model was built with."""
    raw = distributed.unwrap(G)
    if raw.z_dist == "uniform":
        return torch.rand(batch_size, raw.z_dim, generator=noise, device=device).mul_(2).sub_(1)
    return torch.randn(batch_size, raw.z_dim, generator=noise, device=device)
