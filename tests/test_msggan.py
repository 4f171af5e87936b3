import pytest
import torch
import torch.nn.functional as F
from conftest import top_singular_values

from facegen import models
from facegen.models import dcgan, msggan, resnet


def _scales(resolution: int) -> list[int]:
    base, depth = models.split_resolution(resolution)
    return [base * 2**i for i in range(depth + 1)]


@pytest.mark.parametrize("resolution", models.SUPPORTED_RESOLUTIONS)
def test_generator_emits_every_scale_and_discriminator_takes_a_list_or_a_tensor(resolution):
    nets = models.build("msggan", resolution=resolution, base_channels=4)
    G, D = nets["G"], nets["D"]
    assert (G.resolution, G.z_dim, G.z_dist) == (resolution, 100, "normal")  # read by sampling
    images = G(torch.randn(3, 100))
    assert [tuple(x.shape) for x in images] == [(3, 3, s, s) for s in _scales(resolution)]
    assert all(x.abs().max() <= 1 for x in images)  # tanh at every scale
    assert D(images).shape == (3,)
    assert D(images[-1]).shape == (3,)


def _eval_nets(resolution=32, **kwargs):
    torch.manual_seed(0)
    nets = msggan.build(resolution, base_channels=4, **kwargs)
    return nets["G"].eval(), nets["D"].eval()


@pytest.mark.parametrize("scale", range(4))
def test_discriminator_uses_every_scale(scale):
    G, D = _eval_nets(32)
    images = [x.detach().requires_grad_(True) for x in G(torch.randn(2, 100))]
    D(images).sum().backward()
    assert images[scale].grad.abs().sum() > 0
    perturbed = [x.detach().clone() for x in images]
    perturbed[scale] += 0.5 * torch.randn_like(perturbed[scale])
    assert not torch.allclose(D(perturbed), D([x.detach() for x in images]))


@pytest.mark.parametrize("resolution", [32, 56])
def test_a_real_image_becomes_its_average_pooled_pyramid(resolution):
    _, D = _eval_nets(resolution)
    x = torch.rand(2, 3, resolution, resolution) * 2 - 1
    by_hand = [F.avg_pool2d(x, resolution // s) for s in _scales(resolution)]
    assert torch.allclose(D(x), D(by_hand), atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(msggan.pyramid(x), by_hand))


def test_dense_head_and_dropout_are_supported():
    G = msggan.Generator(56, base_channels=4, dense=True, dropout=0.5, g_activation="leaky_relu")
    D = msggan.Discriminator(56, base_channels=4, dense=True, dropout=0.5)
    assert isinstance(G.blocks[0][0], torch.nn.Linear) and isinstance(D.stages[-1][-1], torch.nn.Linear)
    assert sum(isinstance(m, torch.nn.Dropout) for m in G.modules()) == 4  # one per block, 7..56 px
    assert D(G(torch.randn(2, 100))).shape == (2,)


@pytest.mark.parametrize("family", [dcgan, msggan])
@pytest.mark.parametrize("dense", [False, True])
def test_spectral_norm_makes_every_weight_1_lipschitz(family, dense):
    torch.manual_seed(0)
    D = family.build(32, base_channels=4, dense=dense, spectral_norm=True)["D"].train()
    for _ in range(5):  # one power iteration per forward pass in train mode
        D(torch.randn(4, 3, 32, 32))
    assert all(abs(sigma - 1) < 0.05 for sigma in top_singular_values(D))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())  # BatchNorm kept as is
    # A checkpoint rebuilds the same model from its arguments: the state dict loads into a fresh one.
    family.build(32, base_channels=4, dense=dense, spectral_norm=True)["D"].load_state_dict(D.state_dict())


def test_spectral_norm_is_off_by_default():
    for family in (dcgan, msggan, resnet):
        D = family.build(32, base_channels=4)["D"]
        assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in D.modules())


def test_unsupported_resolution_and_wrong_inputs_fail_clearly():
    with pytest.raises(ValueError, match="resolution 48 is not supported"):
        models.build("msggan", resolution=48)
    with pytest.raises(ValueError, match="resolution 48 is not supported"):
        msggan.Discriminator(48)
    _, D = _eval_nets(32)
    with pytest.raises(ValueError, match=r"takes images of sizes \[4, 8, 16, 32\]"):
        D(msggan.pyramid(torch.zeros(1, 3, 64, 64)))
    with pytest.raises(ValueError, match="coarsest first"):
        D(msggan.pyramid(torch.zeros(1, 3, 32, 32))[::-1])
