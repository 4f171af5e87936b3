"""VAE and VAE-GAN: the KL and reconstruction terms, the reparameterisation, and the VAE-GAN's gradient routing."""

from __future__ import annotations

import pytest
import torch

from facegen import losses, models, steps
from facegen.cli import main
from facegen.config import load_config
from facegen.devices import resolve_runtime
from facegen.models.vae import reparameterize


def test_kl_of_the_standard_normal_posterior_is_zero_and_matches_torch():
    zeros = torch.zeros(5, 16)
    assert losses.kl_divergence(zeros, zeros).item() == 0.0
    mu, logvar = torch.randn(5, 16), torch.randn(5, 16)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
    assert losses.kl_divergence(mu, logvar).item() == pytest.approx(expected.item(), rel=1e-5)


def test_reconstruction_terms_are_summed_per_image():
    x = torch.zeros(2, 3, 4, 4)
    assert losses.reconstruction_loss(x + 0.5, x, "mse").item() == pytest.approx(0.25 * 48)
    assert losses.reconstruction_loss(x + 0.5, x, "l1").item() == pytest.approx(0.5 * 48)
    assert losses.reconstruction_loss(x, x, "pixel").item() == 0.0
    assert losses.reconstruction_loss(x + 0.999, x + 1, "bce").item() < losses.reconstruction_loss(x, x + 1, "bce").item()
    assert losses.kl_weight(2.0, 50, 100) == 1.0 and losses.kl_weight(2.0, 500, 100) == 2.0 and losses.kl_weight(2.0, 0) == 2.0


def test_gradients_reach_the_encoder_through_the_reparameterisation():
    torch.manual_seed(0)
    nets = models.build("vae", resolution=32, z_dim=8, base_channels=4)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    mu, logvar = nets["E"](x)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    loss = losses.reconstruction_loss(nets["G"](z), x) + losses.kl_divergence(mu, logvar)
    loss.backward()
    for name, p in nets["E"].named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # d z / d logvar is sigma * eps / 2: the noise enters, the path stays differentiable.
    mu, logvar = torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    z.sum().backward()
    eps = torch.randn(3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(mu.grad, torch.ones(3)) and torch.allclose(logvar.grad, 0.5 * eps)


def _vaegan_step(monkeypatch=None, **loss):
    torch.manual_seed(0)
    nets = models.build("vaegan", resolution=32, z_dim=8, base_channels=4)
    before = {role: {k: v.detach().clone() for k, v in net.named_parameters()} for role, net in nets.items()}
    runtime = resolve_runtime("cpu", "fp32")
    opt = steps.Optimizers({role: torch.optim.Adam(net.parameters(), 1e-3) for role, net in nets.items()}, runtime.grad_scaler())
    noise = torch.Generator().manual_seed(0)
    cfg = load_config(overrides=["model.family=vaegan", "loss.recon=dis_feature", *[f"loss.{k}={v}" for k, v in loss.items()]])
    ctx = steps.StepContext(cfg.loss, runtime, noise, lambda: torch.randn(4, 8, generator=noise))
    stats = steps.vaegan_step(nets, opt, torch.rand(4, 3, 32, 32) * 2 - 1, ctx)
    changed = {role: any(not torch.equal(p, before[role][k]) for k, p in net.named_parameters()) for role, net in nets.items()}
    return stats, changed


def test_vaegan_discriminator_learns_from_the_gan_loss_only(monkeypatch):
    _, changed = _vaegan_step()
    assert changed == {"E": True, "G": True, "D": True}
    # With D's own loss zeroed, nothing else may move D: neither the feature error nor the decoder's GAN loss.
    monkeypatch.setattr(losses, "d_loss", lambda real, fake, *args: 0.0 * (real.sum() + fake.sum()))
    _, changed = _vaegan_step()
    assert changed == {"E": True, "G": True, "D": False}


def test_vaegan_feature_error_puts_no_gradient_into_d():
    torch.manual_seed(0)
    D = models.build("vaegan", resolution=32, base_channels=4)["D"]
    x, x_tilde = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32, requires_grad=True)
    _, real_features = D(x)
    _, fake_features = D(x_tilde)
    error = losses.feature_loss(fake_features, real_features.detach())
    assert error.item() > 0 and real_features.shape == (4, 8, 8, 8)  # layer 2 of 3 at 32 px: 8 channels at 8x8
    grads = torch.autograd.grad(error, [x_tilde, *D.parameters()], allow_unused=True)
    assert grads[0].abs().sum() > 0  # it reaches the decoder's output ...
    # ... and the step never applies its D gradients: test_vaegan_discriminator_learns_from_the_gan_loss_only.


def test_equilibrium_gates_follow_larsens_rule():
    assert losses.equilibrium_gates(0.1, 0.7, 0.68, 0.35) == (False, True)  # D far ahead on reals: D rests
    assert losses.equilibrium_gates(0.7, 1.2, 0.68, 0.35) == (True, False)  # D far behind: no GAN term for G
    assert losses.equilibrium_gates(0.1, 1.2, 0.68, 0.35) == (True, True)  # never both off
    assert losses.equilibrium_gates(0.1, 1.2, 0.0, 0.35) == (True, True)  # off
    stats, changed = _vaegan_step(equilibrium=5.0, equilibrium_margin=0.1)  # D's loss far below 5: D rests
    assert stats["train_d"].item() == 0.0 and not changed["D"] and changed["G"]


def test_a_pixel_term_adds_to_the_feature_error():
    features_only, _ = _vaegan_step()
    with_pixels, _ = _vaegan_step(pixel_weight=2.0)
    # The same seeded batch and nets: the difference is 2 x the per-image pixel error, well above zero.
    assert with_pixels["recon"].item() > features_only["recon"].item() + 1.0


@pytest.mark.parametrize("setting, message", [
    ("loss.beta=-1", "loss.beta = -1.0 must be >= 0"),
    ("loss.gamma=-0.5", "loss.gamma = -0.5 must be >= 0"),
    ("loss.recon=ssim", "loss.recon = 'ssim' is not valid; choose one of: mse, l1, bce, pixel, dis_feature"),
    ("model.z_dist=uniform", "model.z_dist = 'uniform' does not apply to model.family = vaegan"),
    ("loss.pixel_weight=-1", "loss.pixel_weight = -1.0 must be >= 0"),
    ("loss.r1_gamma=1", "loss.r1_gamma = 1.0 does not apply to model.family = vaegan"),
    ("model.d_kernel=3", "model.d_kernel = 3 does not apply to model.family = vaegan, only to dcgan"),
])
def test_a_bad_vae_setting_is_one_line_before_training(setting, message, capsys, tmp_path):
    code = main(["train", "--preset", "vaegan-anime64", "--data", "synthetic:8", "--set", setting, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_feature_reconstruction_needs_a_discriminator():
    with pytest.raises(ValueError, match="loss.recon = dis_feature needs a discriminator"):
        load_config("vae64", overrides=["loss.recon=dis_feature"])
    with pytest.raises(ValueError, match="loss.pixel_weight .* needs loss.recon = dis_feature, not 'mse'"):
        load_config("vaegan-anime64", overrides=["loss.recon=mse", "loss.pixel_weight=1"])
    with pytest.raises(ValueError, match="loss.pixel_weight = 1.0 does not apply to model.family = vae"):
        load_config("vae64", overrides=["loss.pixel_weight=1"])
    with pytest.raises(ValueError, match="model.feature_layer = 1 is not a strided conv"):
        models.build("vaegan", resolution=32, feature_layer=1)


def test_vae_z_dim_defaults_to_128_and_the_gan_to_100():
    assert load_config(overrides=["model.family=vae"]).model.architecture()["z_dim"] == 128
    assert load_config().model.architecture()["z_dim"] == 100
