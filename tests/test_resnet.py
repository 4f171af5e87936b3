import numpy as np
import pytest
import torch
from conftest import top_singular_values

from facegen import latent, models
from facegen.config import load_config
from facegen.models import resnet
from facegen.train import train


@pytest.mark.parametrize("resolution", models.SUPPORTED_RESOLUTIONS)
def test_residual_nets_make_and_judge_images_at_every_resolution(resolution):
    nets = models.build("resnet", resolution=resolution, base_channels=4)
    G, D = nets["G"], nets["D"]
    assert (G.resolution, G.z_dim, G.z_dist) == (resolution, 128, "normal")  # read by sampling
    x = G(torch.randn(3, 128))
    assert x.shape == (3, 3, resolution, resolution) and x.abs().max() <= 1
    base, _ = models.split_resolution(resolution)
    assert D.features(x).shape[-2:] == (base, base) and D(x).shape == (3,)


def test_each_logit_is_its_samples_own():
    """No BatchNorm in D: a sample's logit does not depend on the rest of its batch, even in training mode."""
    torch.manual_seed(0)
    D = resnet.build(32, base_channels=4, spectral_norm=False)["D"].train()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(D(x)[:1], D(x[:1]))


def test_the_shortcut_carries_the_input_past_the_convolutions():
    """With both 3x3 convs of a block zeroed, what is left is the 1x1 shortcut of the resized input."""
    up, down = resnet.UpBlock(4, 2), resnet.DownBlock(4, 2, first=False)
    for block in (up, down):
        for conv in (block.conv1, block.conv2):
            torch.nn.init.zeros_(conv.weight)
            torch.nn.init.zeros_(conv.bias)
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(up(x), up.shortcut(torch.nn.functional.interpolate(x, scale_factor=2.0)))
    torch.testing.assert_close(down(x), torch.nn.functional.avg_pool2d(down.shortcut(x), 2))


def test_spectral_norm_wraps_every_weight_of_d_and_checkpoints_rebuild_it():
    torch.manual_seed(0)
    D = resnet.build(32, base_channels=4, spectral_norm=True)["D"].train()
    for _ in range(5):  # one power iteration per forward pass in train mode
        D(torch.randn(4, 3, 32, 32))
    assert all(abs(s - 1) < 0.05 for s in top_singular_values(D))
    resnet.build(32, base_channels=4, spectral_norm=True)["D"].load_state_dict(D.state_dict())


@pytest.mark.parametrize(("setting", "message"), [
    ("model.dense=true", "model.dense = True does not apply to model.family = resnet, only to dcgan, msggan"),
    ("model.d_kernel=3", "model.d_kernel = 3 does not apply to model.family = resnet, only to dcgan"),
    ("model.g_activation=leaky_relu", "model.g_activation = 'leaky_relu' does not apply to model.family = resnet"),
])
def test_settings_of_other_families_are_refused(setting, message):
    with pytest.raises(ValueError, match=message):
        load_config("fast32", overrides=["model.family=resnet", setting])


@pytest.fixture(scope="module")
def resnet_run(faces, tmp_path_factory):
    overrides = [f"data.source={faces}", "model.family=resnet", "model.base_channels=4", "model.z_dim=8",
                 "model.spectral_norm=true", "train.batch_size=4", "train.steps=3", "train.ema_bn_batches=2"]
    return train(load_config("fast32", overrides=overrides), tmp_path_factory.mktemp("runs") / "resnet", progress=False)


def test_latent_tools_work_from_a_resnet_checkpoint(resnet_run):
    model = latent.open_model(resnet_run)
    assert set(latent.sefa_directions(model, k=2)) == {"sefa0", "sefa1"}  # from G's dense projection of z
    z = model.latents_of_seeds([3])
    features = latent.d_features(model.D, torch.zeros(1, 3, 32, 32))
    assert features is not None and features.shape[-2:] == (4, 4)  # the projection's perceptual term is D's own
    found = latent.project(model, model.images(z), steps=5, starts=1)
    assert found.shape == z.shape and np.isfinite(found.numpy()).all()
