import pytest
import torch

from facegen import models
from facegen.models.dcgan import Discriminator, Generator


@pytest.mark.parametrize("resolution", models.SUPPORTED_RESOLUTIONS)
def test_every_resolution_round_trips_shapes(resolution):
    nets = models.build("dcgan", resolution=resolution, base_channels=4)
    x = nets["G"](torch.randn(3, 100))
    assert x.shape == (3, 3, resolution, resolution)
    assert x.abs().max() <= 1  # tanh output
    assert nets["D"](x).shape == (3,)


def test_depth_and_channels_follow_the_resolution():
    convs = [m for m in Generator(64).modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]  # the canonical 64 px generator
    convs = [m for m in Discriminator(64).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert Generator(56).net[0][1].kernel_size == (7, 7)  # 56 px grows from a 7x7 base


def test_discriminator_can_be_narrower_than_the_generator():
    nets = models.build("dcgan", resolution=32, base_channels=8, d_base_channels=4)
    assert [m.out_channels for m in nets["D"].modules() if isinstance(m, torch.nn.Conv2d)] == [4, 8, 16, 1]
    assert [m.out_channels for m in nets["G"].modules() if isinstance(m, torch.nn.ConvTranspose2d)] == [32, 16, 8, 3]
    same = models.build("dcgan", resolution=32, base_channels=8)["D"]
    assert [m.out_channels for m in same.modules() if isinstance(m, torch.nn.Conv2d)] == [8, 16, 32, 1]  # None: G's widths


def test_discriminator_kernel_3_halves_each_size_like_kernel_4():
    x = torch.randn(2, 3, 32, 32)
    for k in (3, 4):
        D = Discriminator(32, base_channels=4, kernel_size=k)
        strided = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
        assert [m.kernel_size for m in strided] == [(k, k)] * 3  # 32 -> 16 -> 8 -> 4, then the 4x4 head
        assert D(x).shape == (2,)
    assert models.build("dcgan", resolution=64, base_channels=4, d_kernel=3)["D"](torch.randn(2, 3, 64, 64)).shape == (2,)
    with pytest.raises(ValueError, match="model.d_kernel = 5: D's stride-2 convs take kernel 4"):
        Discriminator(32, kernel_size=5)


def test_dense_variant_projects_to_base_by_base_by_1024_with_dropout():
    G = Generator(56, base_channels=256, dense=True, dropout=0.5, g_activation="leaky_relu")
    assert isinstance(G.net[0][0], torch.nn.Linear) and G.net[0][0].out_features == 7 * 7 * 1024
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in G.modules())
    D = Discriminator(56, base_channels=8, dense=True, dropout=0.5)
    assert isinstance(D.net[-1], torch.nn.Linear)
    for net in (G, D):
        assert sum(isinstance(m, torch.nn.Dropout) for m in net.modules()) == 3  # one per block


@pytest.mark.parametrize("dense", [False, True])
def test_discriminator_features_are_what_its_head_reads(dense):
    """The photo projection's perceptual distance: D's last feature map, of which the logit is a linear function."""
    torch.manual_seed(0)
    D = Discriminator(32, base_channels=4, dense=dense, dropout=0.3 if dense else 0.0).eval()
    x = torch.randn(2, 3, 32, 32)
    features = D.features(x)
    assert features.shape == (2, 16, 4, 4)
    head = D.net[-1] if dense else D.net[-2]
    assert torch.allclose(head(features.flatten(1) if dense else features).flatten(), D(x), atol=1e-6)


def test_init_is_normal_with_std_0_02():
    torch.manual_seed(0)
    G = Generator(64)
    weights = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    bn = torch.cat([m.weight for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(weights.std().item() - 0.02) < 1e-3 and abs(weights.mean().item()) < 1e-3
    assert abs(bn.mean().item() - 1) < 0.01


def test_unsupported_resolution_lists_the_valid_ones():
    with pytest.raises(ValueError, match="resolution 48 is not supported; use one of 32, 56, 64, 112, 128"):
        models.build("dcgan", resolution=48)
    with pytest.raises(ValueError, match="unknown model family 'biggan'"):
        models.build("biggan", resolution=64)
