"""The style-based family: its layers against their definitions, mixing, truncation, training and resume."""

import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli

from facegen import checkpoint as ckpt
from facegen import models, report
from facegen.config import load_config
from facegen.devices import resolve_runtime
from facegen.models.stylegan import Generator, ModulatedConv, modulated_conv2d
from facegen.sample import latents, sample_seeds
from facegen.steps import StepContext, mixing_latents
from facegen.train import train

TINY = ["model.family=stylegan", "model.channel_base=64", "model.channel_max=8", "model.z_dim=8", "model.w_dim=8",
        "model.mapping_layers=2", "train.batch_size=4", "data.split=all", "data.resolution=32", "train.precision=fp32"]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_unit_styles_without_demodulation_are_a_plain_convolution():
    x, weight = torch.randn(3, 5, 8, 8, generator=_gen(0)), torch.randn(7, 5, 3, 3, generator=_gen(1))
    out = modulated_conv2d(x, weight, torch.ones(3, 5), demodulate=False)
    assert torch.allclose(out, F.conv2d(x, weight, padding=1), atol=1e-5)


def test_demodulation_gives_unit_output_variance_for_unit_variance_input():
    x = torch.randn(4, 64, 32, 32, generator=_gen(0))
    weight, styles = torch.randn(16, 64, 3, 3, generator=_gen(1)), torch.rand(4, 64, generator=_gen(2)) * 3
    out = modulated_conv2d(x, weight, styles)[:, :, 1:-1, 1:-1]  # the border sees zero padding
    assert out.var().item() == pytest.approx(1.0, rel=0.05)
    assert modulated_conv2d(x, weight, styles, demodulate=False).var().item() > 5  # without it: far from 1


def test_the_grouped_convolution_equals_a_loop_over_samples():
    x, weight, styles = torch.randn(4, 5, 8, 8, generator=_gen(0)), torch.randn(6, 5, 3, 3, generator=_gen(1)), torch.randn(4, 5, generator=_gen(2))
    grouped = modulated_conv2d(x, weight, styles)
    for i in range(4):
        w = weight * styles[i][None, :, None, None]
        w = w / w.square().sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
        assert torch.allclose(grouped[i : i + 1], F.conv2d(x[i : i + 1], w, padding=1), atol=1e-5)


@pytest.mark.parametrize("demodulate", [True, False])
def test_the_training_form_equals_the_grouped_convolution(demodulate):
    x, weight, styles = torch.randn(4, 5, 8, 8, generator=_gen(0)), torch.randn(6, 5, 3, 3, generator=_gen(1)), torch.randn(4, 5, generator=_gen(2))
    grouped = modulated_conv2d(x, weight, styles, demodulate)
    assert torch.allclose(modulated_conv2d(x, weight, styles, demodulate, grouped=False), grouped, atol=1e-5)


@pytest.mark.parametrize("resolution", models.SUPPORTED_RESOLUTIONS)
def test_every_supported_resolution_builds_and_runs(resolution):
    nets = models.build("stylegan", resolution=resolution, z_dim=8, w_dim=8, mapping_layers=1, channel_base=256, channel_max=8)
    G, D = nets["G"].eval(), nets["D"]
    images = G(torch.randn(2, 8))
    assert images.shape == (2, 3, resolution, resolution)
    assert D(images).shape == (2,)
    assert G.num_ws == 2 * len(G.synthesis.to_rgb)  # one conv at the base, two per doubling, and the last toRGB's


def test_channels_follow_channel_base_and_channel_max_as_in_the_paper():
    G = Generator(resolution=64, z_dim=8, w_dim=8, mapping_layers=1, channel_base=1024, channel_max=64)
    widths = [conv.weight.shape[0] for conv in G.synthesis.convs]
    assert widths == [64, 64, 64, 64, 64, 32, 32, 16, 16]  # 4 and 8 px capped at 64; 1024 / 32, 1024 / 64


def test_truncation_zero_gives_the_same_face_for_every_seed_and_one_changes_nothing():
    G = Generator(resolution=32, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8).eval()
    G.mapping.w_avg.normal_(generator=_gen(3))
    faces = sample_seeds(G, range(4), truncation=0.0)
    assert all((face == faces[0]).all() for face in faces)
    assert (sample_seeds(G, range(4), truncation=1.0) == sample_seeds(G, range(4))).all()
    assert not (sample_seeds(G, range(4), truncation=0.5) == sample_seeds(G, range(4))).all()


def test_sampling_is_a_function_of_the_seed_alone():
    G = Generator(resolution=32, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8).eval()
    with torch.no_grad():
        for conv in G.synthesis.convs:
            conv.noise_strength.fill_(0.5)  # the fixed noise maps matter
    assert (sample_seeds(G, [5, 9], batch_size=1) == sample_seeds(G, [9, 5, 7], batch_size=3)[[1, 0]]).all()


def test_mixing_draws_a_second_latent_for_the_asked_share_of_the_batch():
    noise = _gen(0)
    ctx = StepContext(load_config().loss, resolve_runtime("cpu", "fp32"), noise, lambda: torch.randn(4000, 8, generator=noise),
                      mixing=0.9)
    z, z_other, cutoff = mixing_latents(4000, 6, ctx)
    assert not torch.equal(z, z_other)
    mixed = cutoff < 6
    assert mixed.float().mean().item() == pytest.approx(0.9, abs=0.02)
    assert cutoff[mixed].min() == 1 and cutoff[mixed].max() == 5
    G = Generator(resolution=32, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8)
    w, w2 = torch.randn(2, 8), torch.randn(2, 8)
    ws = G.mix(w, w2, torch.tensor([2, G.num_ws]))
    assert torch.equal(ws[0, :2], w[0].expand(2, -1)) and torch.equal(ws[0, 2:], w2[0].expand(G.num_ws - 2, -1))
    assert torch.equal(ws[1], w[1].expand(G.num_ws, -1))
    ctx.mixing = 0.0
    assert mixing_latents(4, 6, ctx)[1:] == (None, None)


def test_the_noise_is_fresh_in_training_and_fixed_for_sampling():
    layer = ModulatedConv(4, 4, 8, 8)
    with torch.no_grad():
        layer.noise_strength.fill_(1.0)
    x, w = torch.randn(2, 4, 8, 8), torch.randn(2, 8)
    assert not torch.equal(layer.train()(x, w), layer(x, w))
    assert torch.equal(layer.eval()(x, w), layer(x, w))


@pytest.fixture(scope="module")
def style_runs(celeba_dir, tmp_path_factory):
    """A 6-step style run with R1, path length and ADA, straight and resumed from step 3."""
    root = tmp_path_factory.mktemp("style")
    extra = ["loss.r1_gamma=1", "loss.r1_every=2", "loss.pl_weight=2", "loss.pl_every=2", "data.ada_target=0.6",
             "data.ada_p=0.5", "train.ema=0.9", "train.log_every=1", "train.checkpoint_every=3"]

    def run(name, steps, resume=False):
        cfg = load_config(overrides=[f"data.source={celeba_dir}", *TINY, *extra, f"train.steps={steps}"])
        return train(cfg, root / name, resume=resume, progress=False)

    straight = run("straight", 6)
    run("resumed", 3)
    return straight, run("resumed", 6, resume=True)


def test_a_style_run_trains_with_every_regulariser_and_tracks_its_means(style_runs):
    straight, _ = style_runs
    records = [r for r in report.read_metrics(straight / "metrics.jsonl") if "loss_d" in r]
    assert len(records) == 6 and all("path_length" in r for r in records if r["step"] % 2 == 1)  # steps 0, 2, 4
    G = ckpt.load(straight).nets["G"]
    assert G["mapping.w_avg"].abs().sum() > 0 and G["path_length_mean"] > 0


def test_the_tracked_means_and_weights_survive_resume_exactly(style_runs):
    (a, b) = (ckpt.load(run) for run in style_runs)
    for role in a.nets:
        for name, value in a.nets[role].items():
            assert torch.equal(value, b.nets[role][name]), f"{role}.{name}"
    assert torch.equal(a.state["ada"]["p"], b.state["ada"]["p"])


def test_a_style_run_samples_with_truncation_from_the_cli(style_runs, capsys, tmp_path):
    straight, _ = style_runs
    code, out, err = run_cli(capsys, "sample", str(straight), "--n", "3", "--truncation", "0.7", "--out", str(tmp_path))
    assert code == 0, err
    assert len(list(tmp_path.glob("*.png"))) == 3


def test_truncation_on_a_model_without_a_mean_w_is_one_line(celeba_dir, tmp_path, capsys):
    run = train(load_config("dcgan32", overrides=[f"data.source={celeba_dir}", "model.base_channels=4", "train.batch_size=4",
                                                  "data.split=all", "train.steps=1"]), tmp_path / "run", progress=False)
    code, out, err = run_cli(capsys, "sample", str(run), "--truncation", "0.7")
    assert code != 0 and "only a style model" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("setting, words", [
    ("model.mixing=-0.1", "model.mixing"),
    ("model.mapping_layers=0", "model.mapping_layers"),
    ("model.channel_max=0", "model.channel_max"),
    ("loss.pl_every=0", "loss.pl_every"),
])
def test_a_bad_style_setting_is_one_line_before_training(celeba_dir, tmp_path, capsys, setting, words):
    sets = [arg for key in [*TINY, setting] for arg in ("--set", key)]
    code, out, err = run_cli(capsys, "train", "--data", str(celeba_dir), *sets, "--out", str(tmp_path / "run"))
    assert code != 0 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_style_settings_on_another_family_are_refused():
    with pytest.raises(ValueError, match="does not apply to model.family = dcgan"):
        load_config("dcgan32", overrides=["model.mapping_layers=4"])
    with pytest.raises(ValueError, match="does not apply to model.family = stylegan"):
        load_config(overrides=["model.family=stylegan", "model.base_channels=32"])


def test_the_style_generator_samples_from_latents_of_its_own_prior():
    G = Generator(resolution=32, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8)
    assert (G.z_dim, G.z_dist) == (8, "normal") and latents([0], G.z_dim, G.z_dist).shape == (1, 8)


# Editing in W: the latent tools ask the model for its edit space.


def test_an_edit_in_w_and_an_edit_in_z_go_through_the_same_public_function(style_runs, celeba_dir, tmp_path):
    from facegen import latent

    dcgan = train(load_config("dcgan32", overrides=[f"data.source={celeba_dir}", "model.base_channels=4", "train.batch_size=4",
                                                    "data.split=all", "train.steps=1"]), tmp_path / "dcgan", progress=False)
    for run, space, dim in ((style_runs[0], "w", 8), (dcgan, "z", 100)):
        model = latent.open_model(run)
        start = model.latents_of_seeds(range(4))
        direction = latent.direction_from_seeds(model, "picked", [0, 1])
        edited = latent.add(start, direction, 2.0, sphere=model.spherical)
        assert model.space == space and start.shape == (4, dim) and direction.vector.shape == (dim,)
        assert torch.allclose(edited - start, 2.0 * direction.spread * direction.vector.expand(4, -1), atol=1e-5)
        assert not (model.images(edited) == model.images(start)).all()
    style = latent.open_model(style_runs[0])
    w = style.latents_of_seeds([0])
    G = style.G
    assert torch.allclose(w, G.mapping(latents([0], G.z_dim)), atol=1e-6)  # z mapped once, not edited in z


def test_a_w_plus_projection_lowers_its_loss_and_edits_move_every_layer_alike(style_runs):
    from facegen import latent
    from facegen.latent.photos import _distance

    model = latent.open_model(style_runs[0])
    photos = model.images(model.latents_of_seeds([7, 8]))  # faces the model can make
    target = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 127.5 - 1
    start = model.G.to_edit_space(torch.zeros(1, model.G.z_dim), truncation=0.0).expand(2, -1)

    def distance(w):
        with torch.no_grad():
            return _distance(model.D, model.G.from_edit_space(w), target, model.D.features(target), 0.1).sum().item()

    w_plus = latent.project(model, photos, steps=30)
    assert w_plus.shape == (2, model.layers, 8)
    assert distance(w_plus) < distance(start)
    direction = latent.direction_from_seeds(model, "picked", [0, 1])
    moved = latent.add(w_plus, direction, 1.0, sphere=False) - w_plus
    assert torch.allclose(moved, moved[:, :1].expand_as(moved)) and moved.abs().sum() > 0


def test_the_latent_commands_work_in_w_for_a_style_run(style_runs, capsys, tmp_path):
    run = style_runs[0]
    code, _, err = run_cli(capsys, "directions", str(run), "--from-seeds", "picked=0,1,2", "--sefa", "2", "--quiet")
    assert code == 0, err
    code, _, err = run_cli(capsys, "edit", str(run), "--seeds", "0-3", "--add", "picked=2", "--walk", "sefa0", "--out", str(tmp_path / "e"))
    assert code == 0, err
    assert (tmp_path / "e" / "walk-sefa0.png").is_file() and (tmp_path / "e" / "edits.png").is_file()
    code, _, err = run_cli(capsys, "interpolate", str(run), "--seeds", "0,1", "--out", str(tmp_path / "i.png"))
    assert code == 0, err
    assert (tmp_path / "i.png").is_file()
    code, _, err = run_cli(capsys, "interpolate", str(run), "--seeds", "0,1", "--slerp", "--out", str(tmp_path / "s.png"))
    assert code != 0 and "lerp is natural" in err and len(err.strip().splitlines()) == 1


def test_a_style_run_s_encoder_targets_w(style_runs):
    from facegen import latent

    path = latent.train_encoder(style_runs[0], steps=2, batch_size=4, progress=False)
    E = ckpt.load(path).build(("E",))["E"]
    model = latent.open_model(style_runs[0])
    mu, _ = E(torch.from_numpy(model.images(model.latents_of_seeds([0]))).permute(0, 3, 1, 2).float() / 127.5 - 1)
    assert mu.shape == (1, model.G.w_dim)
    path.unlink()  # the other tests project without it


def test_a_style_mixing_grid_takes_coarse_layers_from_the_rows_and_fine_from_the_columns(style_runs, capsys, tmp_path):
    from facegen import latent

    model = latent.open_model(style_runs[0])
    grid = latent.style_mix(model, [0, 1], [2, 3, 4], cutoff=3)
    assert grid.shape == (3 * 4, 32, 32, 3) and (grid[0] == 255).all()
    assert (grid[1:4] == model.images(model.latents_of_seeds([2, 3, 4]))).all()  # the top row: the columns' faces
    w = model.latents_of_seeds([1, 3])
    ws = torch.cat([w[:1].expand(3, -1), w[1:].expand(model.layers - 3, -1)])[None]  # row seed 1's coarse, column seed 3's fine
    assert (grid[2 * 4 + 2] == model.images(ws)[0]).all()
    code, _, err = run_cli(capsys, "mix", str(style_runs[0]), "--rows", "0-1", "--columns", "2-4", "--out", str(tmp_path / "m.png"))
    assert code == 0, err
    code, _, err = run_cli(capsys, "mix", str(style_runs[0]), "--rows", "0", "--columns", "1", "--cutoff", "99", "--out", str(tmp_path / "x.png"))
    assert code != 0 and "--cutoff 99" in err and len(err.strip().splitlines()) == 1
