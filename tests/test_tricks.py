"""Each stabilisation trick pinned by a test that fails if the trick is wrong."""

import pytest
import torch
from torch import nn

from facegen import losses, models
from facegen.config import load_config
from facegen.devices import resolve_runtime
from facegen.sample import recompute_batchnorm
from facegen.steps import Optimizers, StepContext, gan_step
from facegen.train import ema_decay, update_ema

CPU = torch.device("cpu")


def test_beta_label_noise_has_the_beta_mean_and_lands_inside_each_target():
    noise = losses.parse_label_noise("beta(1,5)")
    real, fake = losses.d_targets(200_000, noise, torch.Generator().manual_seed(0), CPU)
    assert abs((1 - real).mean().item() - 1 / 6) < 2e-3 and abs(fake.mean().item() - 1 / 6) < 2e-3  # E[Beta(1,5)] = 1/6
    assert real.max() <= 1 and real.min() >= 0 and fake.min() >= 0 and fake.max() <= 1
    assert (1 - real).var().item() == pytest.approx(5 / 252, rel=0.05)  # Var[Beta(1,5)] = ab / ((a+b)^2 (a+b+1))
    again, _ = losses.d_targets(10, noise, torch.Generator().manual_seed(0), CPU)
    assert torch.equal(again, losses.d_targets(10, noise, torch.Generator().manual_seed(0), CPU)[0])  # seeded


def test_smoothing_and_flips():
    real, fake = losses.d_targets(1000, losses.parse_label_noise("0.1"), None, CPU)
    assert torch.all(real == 0.9) and torch.all(fake == 0)  # one-sided
    real, fake = losses.d_targets(100_000, losses.parse_label_noise("flip(0.05)"), torch.Generator().manual_seed(1), CPU)
    assert abs((real == 0).float().mean().item() - 0.05) < 0.005 and abs((fake == 1).float().mean().item() - 0.05) < 0.005
    real, fake = losses.d_targets(4, losses.LabelNoise(), None, CPU)
    assert torch.all(real == 1) and torch.all(fake == 0)


def test_label_noise_changes_the_d_loss():
    logits = torch.zeros(8)
    plain = losses.d_loss(logits + 3, logits - 3)
    noisy = losses.d_loss(logits + 3, logits - 3, "bce", losses.parse_label_noise("beta(1,5)"), torch.Generator().manual_seed(0))
    assert noisy > plain  # confident logits are punished once the targets are soft


def test_hinge_losses():
    assert losses.d_loss(torch.tensor([2.0]), torch.tensor([-2.0]), "hinge") == 0
    assert losses.d_loss(torch.tensor([0.0]), torch.tensor([0.0]), "hinge") == 2
    assert losses.g_loss(torch.tensor([1.0, 3.0]), "hinge") == -2


def test_instance_noise_schedule():
    assert losses.instance_noise_sigma(0.125, 0, 0) == 0.125 == losses.instance_noise_sigma(0.125, 10**6, 0)
    assert [losses.instance_noise_sigma(0.1, s, 100) for s in (0, 50, 100, 200)] == pytest.approx([0.1, 0.05, 0.0, 0.0])


class Recorder(nn.Module):
    """Wraps a net and keeps every input it saw."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seen = net, []

    def forward(self, x, y=None):
        self.seen.append(x.detach().clone())
        return self.net(x, y)


def _step(g_steps=1, sigma=0.0, label_noise="none", policy=(), loss=(), step=0):
    torch.manual_seed(0)
    nets = models.build("dcgan", resolution=32, base_channels=4)
    G, D = Recorder(nets["G"]), Recorder(nets["D"])
    opt = Optimizers({"D": torch.optim.Adam(D.parameters()), "G": torch.optim.Adam(G.parameters())}, resolve_runtime("cpu", "fp32").grad_scaler())
    steps = {"D": 0, "G": 0}
    opt.D.register_step_post_hook(lambda *_: steps.__setitem__("D", steps["D"] + 1))
    opt.G.register_step_post_hook(lambda *_: steps.__setitem__("G", steps["G"] + 1))
    x_real = torch.rand(4, 3, 32, 32) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    ctx = StepContext(load_config(overrides=list(loss)).loss, resolve_runtime("cpu", "fp32"), torch.Generator().manual_seed(1),
                      lambda: torch.randn(4, 100, generator=gen), label_noise=losses.parse_label_noise(label_noise),
                      g_steps=g_steps, sigma=sigma, policy=policy, step=step)
    gan_step({"G": G, "D": D}, opt, x_real, ctx)
    return G, D, x_real, steps


@pytest.mark.parametrize("g_steps", [1, 2, 3])
def test_g_steps_makes_exactly_that_many_g_updates_per_d_update(g_steps):
    G, D, _, steps = _step(g_steps=g_steps)
    assert steps == {"D": 1, "G": g_steps}
    assert len(G.seen) == g_steps  # one fresh batch of z per extra G update
    assert len(D.seen) == 2 + g_steps  # real and fake for D's update, then fakes for each G update


def test_instance_noise_reaches_real_and_fake_with_its_sigma():
    G, D, x_real, _ = _step(sigma=0.125)
    real_seen, fake_seen, fake_seen_by_g_update = D.seen
    assert (real_seen - x_real).std().item() == pytest.approx(0.125, rel=0.05)
    fake_noise = fake_seen_by_g_update - fake_seen  # the same fakes under two independent noise draws
    assert fake_noise.std().item() == pytest.approx(0.125 * 2**0.5, rel=0.05)
    _, D0, x_real0, _ = _step(sigma=0.0)
    assert torch.equal(D0.seen[0], x_real0)  # off means off


def test_r1_is_the_squared_input_gradient_and_d_descends_it():
    w = torch.randn(3 * 4 * 4, requires_grad=True)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = x.flatten(1) @ w  # D(x) = <w, x>: its gradient at every image is w
    penalty = losses.r1_penalty(logits, [x])
    assert penalty.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)
    (grad_w,) = torch.autograd.grad(penalty, w)
    assert torch.allclose(grad_w, 2 * w)  # the graph is kept: D's weights get the penalty's gradient
    scaled = losses.r1_penalty(x.flatten(1) @ w, [x], scale=1024.0)  # an fp16 loss scale cancels out
    assert scaled.item() == pytest.approx(penalty.item(), rel=1e-5)


def test_lazy_r1_changes_d_only_on_its_steps():
    def d_after(step, loss=()):
        return {k: v.clone() for k, v in _step(loss=loss, step=step)[1].net.state_dict().items()}
    r1 = ["loss.r1_gamma=10", "loss.r1_every=4"]
    plain, regularised, between = d_after(8), d_after(8, r1), d_after(9, r1)
    assert any(not torch.equal(plain[k], regularised[k]) for k in plain)  # step 8 of every 4th: penalised
    assert all(torch.equal(plain[k], between[k]) for k in plain)  # step 9: the plain update, bit for bit


def test_ema_follows_its_decay():
    ema, model = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        ema.weight.fill_(1.0)
        model.weight.fill_(0.0)
    for _ in range(10):
        update_ema(ema, model, 0.9)
    assert torch.allclose(ema.weight, torch.full((2, 2), 0.9**10))
    bn_ema, bn = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    bn(torch.randn(8, 2))
    update_ema(bn_ema, bn, 0.99)
    assert torch.equal(bn_ema.running_mean, bn.running_mean)  # statistics are copied, not averaged


def test_recomputed_batchnorm_statistics_are_those_of_the_generators_own_samples():
    G = models.build("dcgan", resolution=32, base_channels=4, dropout=0.5)["G"].train()
    norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    seen = []
    norms[0].register_forward_hook(lambda m, inputs, output: seen.append(inputs[0].detach()))
    rng = torch.get_rng_state()
    recompute_batchnorm(G, batches=3, batch_size=8)
    assert torch.equal(rng, torch.get_rng_state())  # the global RNG (and so an exact resume) is untouched
    x = torch.cat(seen)  # what the first norm saw: 3 batches of 8, each normalised by its own statistics
    assert len(seen) == 3 and torch.allclose(norms[0].running_mean, x.mean((0, 2, 3)), atol=1e-5)
    per_batch_var = torch.stack([b.var((0, 2, 3), unbiased=True) for b in seen]).mean(0)
    assert torch.allclose(norms[0].running_var, per_batch_var, atol=1e-5)  # the cumulative average over batches
    assert G.training and all(m.training and m.momentum == 0.1 for m in norms)  # modes and momentum restored
    first = [m.running_mean.clone() for m in norms]
    recompute_batchnorm(G, batches=3, batch_size=8)
    assert all(torch.equal(a, m.running_mean) for a, m in zip(first, norms))  # the same samples every time


def test_ema_decay_warms_up_then_holds():
    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 90) == pytest.approx(0.91)
    assert ema_decay(0.999, 10**6) == 0.999
    weight_of_init, weight = 1.0, 1.0
    for step in range(600):  # the initial weights' share after 600 warmed-up updates
        weight_of_init *= ema_decay(0.999, step)
        weight *= 0.999
    assert weight_of_init < 0.01 < 0.5 < weight


@pytest.mark.parametrize("override, message", [
    ("loss.instance_noise=-0.1", "loss.instance_noise = -0.1 must be >= 0"),
    ("loss.label_noise=beta(0,5)", "Beta parameters must be > 0"),
    ("loss.label_noise=beta(1,-5)", "Beta parameters must be > 0"),
    ("loss.label_noise=gauss(1)", "is not understood"),
    ("train.g_steps=0", "train.g_steps = 0 must be > 0"),
    ("train.ema=1.5", "train.ema = 1.5 must be a decay in [0, 1)"),
    ("train.ema_bn_batches=-1", "train.ema_bn_batches = -1 must be >= 0"),
    ("train.ema_bn_batches=8", "set train.ema too"),
    ("loss.r1_gamma=-1", "loss.r1_gamma = -1.0 must be >= 0"),
    ("loss.r1_every=0", "loss.r1_every = 0 must be > 0"),
    ("loss.kind=wasserstein", "loss.kind = 'wasserstein' is not valid"),
    ("model.family=judge", "model.family = 'judge' is not valid"),
])
def test_bad_trick_settings_fail_before_training(override, message):
    with pytest.raises(ValueError) as err:
        load_config(overrides=[override])
    assert message in str(err.value)


def test_label_noise_with_hinge_is_refused():
    with pytest.raises(ValueError, match="needs a BCE loss"):
        load_config(overrides=["loss.kind=hinge", "loss.label_noise=beta(1,5)"])
