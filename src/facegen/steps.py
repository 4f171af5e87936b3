"""One update step per model family, all with one signature, chosen by `STEPS[family]`.

A step takes the networks and optimizers by role ('E', 'G', 'D'), one batch of real images and the
step's context, updates the networks and returns detached statistics for the log. The training loop
never learns which family it trains.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facegen import distributed, losses
from facegen.ada import AdaptiveAugment
from facegen.augment import diff_augment
from facegen.config import LossConfig
from facegen.devices import Runtime
from facegen.models.msggan import pyramid
from facegen.models.vae import reparameterize


@dataclass
class Optimizers:
    adam: dict[str, torch.optim.Optimizer]  # one per trained role: 'D' with lr_d, the others with lr_g
    scaler: torch.amp.GradScaler  # loss scaling for fp16; a pass-through otherwise

    def __getattr__(self, role: str) -> torch.optim.Optimizer:  # opt.G, opt.D, opt.E
        try:
            return self.__dict__["adam"][role]
        except KeyError:
            raise AttributeError(role) from None


@dataclass
class StepContext:
    """What a step needs besides the networks: the loss settings and this step's noise, all seeded per step."""

    loss: LossConfig
    runtime: Runtime
    noise: torch.Generator  # reseeded every step from (seed, step, rank)
    draw_z: Callable[[], torch.Tensor]  # a batch of prior latents from `noise`
    step: int = 0
    label_noise: losses.LabelNoise = losses.LabelNoise()
    policy: tuple[str, ...] = ()  # DiffAugment
    ada: AdaptiveAugment | None = None  # adaptive augmentation; its p and the signs of D(real) it counts live in its buffers
    sigma: float = 0.0  # instance noise at this step
    g_steps: int = 1
    mixing: float = 0.0  # stylegan: the share of fakes that are style-mixed
    labels: torch.Tensor | None = None  # the real batch's attribute labels (B, K) of a conditional model; None otherwise
    draw_y: Callable[[], torch.Tensor | None] = lambda: None  # labels for a batch of fakes: training faces' rows, from `noise`


Images = torch.Tensor | list[torch.Tensor]  # one batch, or MSG-GAN's scales from coarsest to finest
Stats = dict[str, torch.Tensor]


def _detach(x: Images) -> Images:
    return [s.detach() for s in x] if isinstance(x, list) else x.detach()


def _as_leaves(x: Images) -> Images:
    """Detached copies whose gradient can be asked for (R1 differentiates D at the reals)."""
    return [s.detach().requires_grad_() for s in x] if isinstance(x, list) else x.detach().requires_grad_()


def d_view(x: Images, ctx: StepContext) -> Images:
    """What D sees of a batch: ADA, then DiffAugment (each one draw per sample, shared by its scales), then
    instance noise of the same sigma at every scale; the same for real and fake."""
    if ctx.ada is not None:
        x = ctx.ada(x, ctx.noise)
    if ctx.policy:
        x = diff_augment(x, ctx.policy, ctx.noise)
    if isinstance(x, list):
        return [losses.add_instance_noise(scale, ctx.sigma, ctx.noise) for scale in x]
    return losses.add_instance_noise(x, ctx.sigma, ctx.noise)


def _observe(ctx: StepContext, real_logits: torch.Tensor) -> None:
    """ADA's controller counts the signs of D's outputs on the reals it was shown."""
    if ctx.ada is not None:
        ctx.ada.observe(real_logits)


def _d_stats(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> Stats:
    real_logits, fake_logits = real_logits.detach().float(), fake_logits.detach().float()
    return {"d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean(),
            "acc_real": (real_logits > 0).float().mean(), "acc_fake": (fake_logits < 0).float().mean()}


def _join(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """Two batches of labels as one (None for an unconditional model)."""
    return None if a is None else torch.cat([a, b])


def _update_d(D: nn.Module, opt: Optimizers, x_real: torch.Tensor, x_fake: Images, ctx: StepContext,
              y_fake: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """One update of D on reals (with their labels) and (detached) fakes (with theirs): (the adversarial loss, real
    logits, fake logits).

    A multi-scale G's fakes are a pyramid, so the reals become one the same way. On a lazy R1 step, D's
    gradient is taken at the reals as D saw them (augmented, as in StyleGAN2-ADA).
    """
    r1 = ctx.loss.r1_gamma > 0 and ctx.step % ctx.loss.r1_every == 0
    with ctx.runtime.autocast():
        if isinstance(x_fake, list):
            x_real = pyramid(x_real)
        seen_real = d_view(x_real, ctx)
        if r1:
            seen_real = _as_leaves(seen_real)
        real_logits = D(seen_real, ctx.labels)
        fake_logits = D(d_view(_detach(x_fake), ctx), y_fake)
    _observe(ctx, real_logits)
    loss_d = losses.d_loss(real_logits, fake_logits, ctx.loss.kind, ctx.label_noise, ctx.noise)
    regularised = loss_d  # the logged loss_d stays the adversarial one, comparable across steps
    if r1:
        inputs = seen_real if isinstance(seen_real, list) else [seen_real]
        penalty = losses.r1_penalty(real_logits, inputs, opt.scaler.get_scale())  # 1.0 unless fp16 scales
        regularised = loss_d + ctx.loss.r1_gamma / 2 * ctx.loss.r1_every * penalty
    opt.D.zero_grad(set_to_none=True)
    opt.scaler.scale(regularised).backward()
    opt.scaler.step(opt.D)
    return loss_d, real_logits, fake_logits


def _update(adam: torch.optim.Optimizer, opt: Optimizers, loss: torch.Tensor) -> None:
    adam.zero_grad(set_to_none=True)
    opt.scaler.scale(loss).backward()
    opt.scaler.step(adam)


def gan_step(nets: dict[str, nn.Module], opt: Optimizers, x_real: torch.Tensor, ctx: StepContext) -> Stats:
    """DCGAN, MSG-GAN and ResNet: one D update, then g_steps G updates (Goodfellow et al. Alg. 1)."""
    G, D = nets["G"], nets["D"]
    raw_D = distributed.unwrap(D)
    y_fake = ctx.draw_y()
    with ctx.runtime.autocast():
        x_fake = G(ctx.draw_z(), y_fake)
    loss_d, real_logits, fake_logits = _update_d(D, opt, x_real, x_fake, ctx, y_fake)

    # Update G; the first update reuses the fakes D just saw. D is frozen: its weight gradients are
    # not needed (a third of its backward pass saved), and it runs unwrapped so that DDP does not
    # wait for gradients that never come.
    raw_D.requires_grad_(False)
    for i in range(ctx.g_steps):
        with ctx.runtime.autocast():
            if i:
                y_fake = ctx.draw_y()
                x_fake = G(ctx.draw_z(), y_fake)
            loss_g = losses.g_loss(raw_D(d_view(x_fake, ctx), y_fake), ctx.loss.kind)
        _update(opt.G, opt, loss_g)
        opt.scaler.update()  # fp16's loss scaler allows one step per optimizer between its updates
    raw_D.requires_grad_(True)
    return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), **_d_stats(real_logits, fake_logits)}


def mixing_latents(batch_size: int, num_ws: int, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """z, and for style mixing a second z and each sample's cutoff layer: a share ctx.mixing of the batch switches to
    the second latent's w at a layer drawn from 1 to num_ws - 1, the rest never (cutoff num_ws)."""
    z = ctx.draw_z()
    if not ctx.mixing:
        return z, None, None
    z_other = ctx.draw_z()
    device = ctx.noise.device
    mixed = torch.rand(batch_size, generator=ctx.noise, device=device) < ctx.mixing
    cutoff = torch.randint(1, num_ws, (batch_size,), generator=ctx.noise, device=device)
    return z, z_other, torch.where(mixed, cutoff, num_ws).to(z.device)


def style_step(nets: dict[str, nn.Module], opt: Optimizers, x_real: torch.Tensor, ctx: StepContext) -> Stats:
    """StyleGAN2: one D update (lazy R1 as for every GAN), one G update on style-mixed fakes, and on every
    pl_every-th step a separate lazy path-length update of G (Karras et al. 2020, section 3.2)."""
    G, D = nets["G"], nets["D"]
    raw_G, raw_D = distributed.unwrap(G), distributed.unwrap(D)
    y_fake = ctx.draw_y()
    z, z_other, cutoff = mixing_latents(len(x_real), raw_G.num_ws, ctx)
    with ctx.runtime.autocast():
        x_fake = G(z, y_fake, z_other, cutoff, track_w=True)
    loss_d, real_logits, fake_logits = _update_d(D, opt, x_real, x_fake, ctx, y_fake)

    # Update G on the fakes D just saw, D frozen and unwrapped (see gan_step).
    raw_D.requires_grad_(False)
    with ctx.runtime.autocast():
        loss_g = losses.g_loss(raw_D(d_view(x_fake, ctx), y_fake), ctx.loss.kind)
    _update(opt.G, opt, loss_g)
    raw_D.requires_grad_(True)
    stats = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), **_d_stats(real_logits, fake_logits)}

    # Path length: |J_w^T y| for random image-space y should be the same everywhere in W; half a batch, as in the paper.
    # Its own G update, so the loss scaler (fp16) is brought up to date first: it allows one step per optimizer.
    if ctx.loss.pl_weight and ctx.step % ctx.loss.pl_every == 0:
        opt.scaler.update()
        half = max(1, len(x_real) // 2)
        with ctx.runtime.autocast():
            images, ws = G(ctx.draw_z()[:half], None if y_fake is None else y_fake[:half], return_ws=True)
        y = torch.randn(images.shape, generator=ctx.noise, device=ctx.noise.device).to(images) / math.sqrt(images[0, 0].numel())
        (grad,) = torch.autograd.grad((images.float() * y.float()).sum(), ws, create_graph=True)
        lengths = grad.float().square().sum(dim=2).mean(dim=1).sqrt()  # (B,)
        mean = raw_G.path_length_mean
        mean.lerp_(lengths.detach().mean(), 0.01)
        penalty = (lengths - mean).square().mean()
        _update(opt.G, opt, penalty * ctx.loss.pl_weight * ctx.loss.pl_every)
        stats["path_length"] = lengths.detach().mean()
    opt.scaler.update()
    return stats


def vae_step(nets: dict[str, nn.Module], opt: Optimizers, x_real: torch.Tensor, ctx: StepContext) -> Stats:
    """VAE: encode, sample z by reparameterisation, decode; minimise reconstruction + beta * KL."""
    with ctx.runtime.autocast():
        mu, logvar = nets["E"](x_real, ctx.labels)  # a conditional VAE: q(z | x, y) and p(x | z, y)
        x_hat = nets["G"](reparameterize(mu, logvar, ctx.noise), ctx.labels)
    recon = losses.reconstruction_loss(x_hat, x_real, ctx.loss.recon)
    kl = losses.kl_divergence(mu, logvar)
    loss = recon + losses.kl_weight(ctx.loss.beta, ctx.step, ctx.loss.kl_warmup_steps) * kl
    for adam in opt.adam.values():
        adam.zero_grad(set_to_none=True)
    opt.scaler.scale(loss).backward()
    for adam in opt.adam.values():
        opt.scaler.step(adam)
    opt.scaler.update()
    return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}


def vaegan_step(nets: dict[str, nn.Module], opt: Optimizers, x_real: torch.Tensor, ctx: StepContext) -> Stats:
    """VAE-GAN (Larsen et al. 2016, Alg. 1): three losses over one forward pass, each for its own networks.

    E minimises beta * KL + recon (D's feature error, plus loss.pixel_weight x the pixel error when
    set); G minimises gamma * recon + the non-saturating GAN loss on its
    reconstructions and prior samples; D minimises the GAN loss only, so the reconstruction error never
    trains D. Every gradient is taken before any optimizer steps (stepping D first would change the graph
    E's and G's gradients come from). Gradients are averaged across DDP ranks by hand: three losses over
    shared activations do not fit DDP's one backward per forward.
    """
    raw = {role: distributed.unwrap(nets[role]) for role in ("E", "G", "D")}
    E, G, D = raw["E"], raw["G"], raw["D"]
    with ctx.runtime.autocast():
        y_fake = ctx.draw_y()
        mu, logvar = E(x_real, ctx.labels)
        x_tilde = G(reparameterize(mu, logvar, ctx.noise), ctx.labels)  # reconstructions, with the faces' own labels
        x_prior = G(ctx.draw_z(), y_fake)  # samples from the prior
        # A face and its reconstruction get the same augmentation draw, so the feature error compares like with like.
        seen_real, seen_tilde = d_view([x_real, x_tilde], ctx)
        seen_prior = d_view(x_prior, ctx)
        real_logits, real_features = D(seen_real, ctx.labels)
        # (2B, ...): reconstructions, then samples
        fake_logits, fake_features = D(torch.cat([seen_tilde, seen_prior]), _join(ctx.labels, y_fake))
    _observe(ctx, real_logits)
    kl = losses.kl_divergence(mu, logvar)
    if ctx.loss.recon == "dis_feature":
        recon = losses.feature_loss(fake_features[: len(x_real)], real_features.detach())
        if ctx.loss.pixel_weight:
            recon = recon + ctx.loss.pixel_weight * losses.reconstruction_loss(x_tilde, x_real, "mse")
    else:
        recon = losses.reconstruction_loss(x_tilde, x_real, ctx.loss.recon)
    loss_d = losses.d_loss(real_logits, fake_logits, ctx.loss.kind, ctx.label_noise, ctx.noise)
    loss_g = losses.g_loss(fake_logits, ctx.loss.kind)
    train_d, train_g = losses.equilibrium_gates(
        *_bce_parts(real_logits, fake_logits, ctx.loss.equilibrium), ctx.loss.equilibrium, ctx.loss.equilibrium_margin)

    # Every gradient first, each loss restricted to its own networks' parameters.
    scale = opt.scaler.scale
    encoder_loss = losses.kl_weight(ctx.loss.beta, ctx.step, ctx.loss.kl_warmup_steps) * kl + recon
    decoder_loss = ctx.loss.gamma * recon + (loss_g if train_g else 0.0)
    updates = {"E": scale(encoder_loss), "G": scale(decoder_loss), **({"D": scale(loss_d)} if train_d else {})}
    for i, (role, loss) in enumerate(updates.items()):
        params = [p for p in raw[role].parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, retain_graph=i < len(updates) - 1)
        for p, g in zip(params, grads):
            p.grad = g
        distributed.average_gradients(params)

    # Then every step.
    for role in updates:
        opt.scaler.step(opt.adam[role])
        opt.adam[role].zero_grad(set_to_none=True)
    opt.scaler.update()
    return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "recon": recon.detach(), "kl": kl.detach(),
            "train_d": torch.tensor(float(train_d)), "train_g": torch.tensor(float(train_g)),
            **_d_stats(real_logits, fake_logits)}


def _bce_parts(real_logits: torch.Tensor, fake_logits: torch.Tensor, equilibrium: float) -> tuple[float, float]:
    """D's BCE on reals and on fakes, read only when the equilibrium gates need them (it syncs the device)."""
    if equilibrium <= 0:
        return 0.0, 0.0
    real = F.binary_cross_entropy_with_logits(real_logits.detach().float(), torch.ones_like(real_logits, dtype=torch.float32))
    fake = F.binary_cross_entropy_with_logits(fake_logits.detach().float(), torch.zeros_like(fake_logits, dtype=torch.float32))
    return real.item(), fake.item()


STEPS: dict[str, Callable[[dict[str, nn.Module], Optimizers, torch.Tensor, StepContext], Stats]] = {
    "dcgan": gan_step, "msggan": gan_step, "resnet": gan_step, "stylegan": style_step, "vae": vae_step, "vaegan": vaegan_step,
}
