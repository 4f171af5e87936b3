import json

import pytest
import torch
from conftest import write_cifar10, write_mnist

from facegen import checkpoint as ckpt
from facegen.config import load_config, preset_names
from facegen.sample import recompute_batchnorm
from facegen.train import lr_factor, train

TINY = ["model.base_channels=4", "train.batch_size=4", "data.split=all"]
TINY_STYLE = ["model.channel_base=64", "model.channel_max=8", "model.w_dim=8", "model.z_dim=8", "model.mapping_layers=1",
              "train.batch_size=4", "data.split=all"]


@pytest.fixture(scope="module")
def sources(celeba_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    return {"dcgan-mnist": write_mnist(root / "mnist"), "dcgan-cifar10": write_cifar10(root / "cifar"), "default": celeba_dir,
            **dict.fromkeys(("fast32-cond", "vae64-cond"), "synthetic:64")}  # every CelebA attribute, as the presets ask


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_trains_two_steps(preset, sources, tmp_path):
    source = sources.get(preset, sources["default"])
    tiny = TINY_STYLE if load_config(preset).model.family == "stylegan" else TINY
    cfg = load_config(preset, overrides=[f"data.source={source}", *tiny, "train.steps=2"])
    out = train(cfg, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 2
    gan_keys, vae_keys = {"loss_d", "loss_g", "d_real", "d_fake", "acc_real", "acc_fake"}, {"recon", "kl"}
    expected = {"dcgan": gan_keys, "msggan": gan_keys, "stylegan": gan_keys, "vae": vae_keys | {"loss"},
                "vaegan": gan_keys | vae_keys}[cfg.model.family]
    assert expected | {"img_per_s", "epoch"} <= set(records[-1])
    loaded = ckpt.load(out)
    assert loaded.architecture["resolution"] == cfg.data.resolution and loaded.state["step"] == 2
    assert (out / "training.png").is_file() and list((out / "previews").glob("*.png"))
    assert json.loads((out / "config.json").read_text())["train"]["steps"] == 2


@pytest.mark.parametrize("preset", ["dcgan32", "dcgan56-dense", "vae64", "vaegan64"])  # dcgan56-dense draws dropout from the global RNG
def test_resume_continues_weight_for_weight(preset, celeba_dir, tmp_path):
    overrides = [f"data.source={celeba_dir}", *TINY, "train.checkpoint_every=10", "train.log_every=5"]
    straight = train(load_config(preset, overrides=[*overrides, "train.steps=20"]), tmp_path / "a", progress=False)
    train(load_config(preset, overrides=[*overrides, "train.steps=10"]), tmp_path / "b", progress=False)
    resumed = train(load_config(preset, overrides=[*overrides, "train.steps=20"]), tmp_path / "b", resume=True, progress=False)
    a, b = ckpt.load(straight), ckpt.load(resumed)
    assert set(a.nets) == set(b.nets)
    for role in a.nets:
        for key, value in a.nets[role].items():
            assert torch.equal(value, b.nets[role][key]), f"{role}.{key}"
    assert a.state["optimizers"]["G"]["state"][0]["exp_avg"].equal(b.state["optimizers"]["G"]["state"][0]["exp_avg"])
    steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20]  # no duplicated records after the resume


def test_a_finished_run_is_not_overwritten(celeba_dir, tmp_path):
    cfg = load_config("dcgan32", overrides=[f"data.source={celeba_dir}", *TINY, "train.steps=1"])
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="no checkpoint to resume from"):
        train(cfg, tmp_path / "fresh", resume=True, progress=False)


TRICKS = {
    "two G steps": ["train.g_steps=2"],
    "instance noise": ["loss.instance_noise=0.125", "loss.instance_noise_anneal_steps=10"],
    "Beta label noise": ["loss.label_noise=beta(1,5)"],
    "MSG-GAN + everything": ["model.family=msggan", "data.diffaugment=color,translation,cutout", "loss.instance_noise=0.1",
                             "loss.label_noise=flip(0.05)", "train.ema=0.9", "model.spectral_norm=true", "loss.r1_gamma=1", "loss.r1_every=2"],
    "ResNet + SN + hinge + R1 + EMA statistics": ["model.family=resnet", "model.spectral_norm=true", "loss.kind=hinge", "loss.r1_gamma=1",
                                                  "loss.r1_every=2", "train.ema=0.9", "train.ema_bn_batches=2"],
    "hinge + SN + EMA + DiffAugment": ["loss.kind=hinge", "model.spectral_norm=true", "train.ema=0.9", "data.diffaugment=translation"],
    "EMA with its own BatchNorm statistics": ["train.ema=0.9", "train.ema_bn_batches=2"],
    "lazy R1 + DiffAugment": ["loss.r1_gamma=1", "loss.r1_every=2", "data.diffaugment=translation"],
    "VAE + EMA + KL warm-up": ["model.family=vae", "model.z_dim=8", "train.ema=0.9", "loss.kl_warmup_steps=3", "loss.recon=l1"],
    "VAE-GAN + EMA + gating + label noise": ["model.family=vaegan", "model.z_dim=8", "loss.recon=dis_feature", "train.ema=0.9",
                                             "loss.equilibrium=0.68", "loss.label_noise=beta(1,5)", "model.spectral_norm=true"],
    "VAE-GAN + pixel term + DiffAugment": ["model.family=vaegan", "model.z_dim=8", "loss.recon=dis_feature", "loss.pixel_weight=1",
                                           "data.diffaugment=color,translation,cutout"],
}


@pytest.mark.parametrize("tricks", TRICKS.values(), ids=TRICKS.keys())
def test_tricks_combine_train_and_resume_exactly(tricks, celeba_dir, tmp_path):
    overrides = [f"data.source={celeba_dir}", *TINY, "train.checkpoint_every=2", *tricks]
    straight = train(load_config("dcgan32", overrides=[*overrides, "train.steps=4"]), tmp_path / "a", progress=False)
    train(load_config("dcgan32", overrides=[*overrides, "train.steps=2"]), tmp_path / "b", progress=False)
    resumed = train(load_config("dcgan32", overrides=[*overrides, "train.steps=4"]), tmp_path / "b", resume=True, progress=False)
    a, b = ckpt.load(straight), ckpt.load(resumed)
    for role in a.nets:
        for key, value in a.nets[role].items():
            assert torch.equal(value, b.nets[role][key]), f"{role}.{key}"


def test_ema_generator_is_saved_and_sampled(celeba_dir, tmp_path):
    cfg = load_config("dcgan32", overrides=[f"data.source={celeba_dir}", *TINY, "train.steps=3", "train.ema=0.5"])
    out = train(cfg, tmp_path / "run", progress=False)
    G, loaded = ckpt.load_generator(out)
    assert set(loaded.nets) == {"G", "D", "G_ema"}
    assert torch.equal(G.state_dict()["net.0.2.weight"], loaded.nets["G_ema"]["net.0.2.weight"])
    assert not torch.equal(loaded.nets["G"]["net.0.2.weight"], loaded.nets["G_ema"]["net.0.2.weight"])


def test_the_saved_ema_generator_carries_batchnorm_statistics_of_its_own_samples(celeba_dir, tmp_path):
    overrides = [f"data.source={celeba_dir}", *TINY, "train.steps=3", "train.ema=0.5"]
    G, loaded = ckpt.load_generator(train(load_config("dcgan32", overrides=[*overrides, "train.ema_bn_batches=2"]), tmp_path / "a",
                                          progress=False))
    key = "net.0.2.running_mean"
    assert not torch.equal(loaded.nets["G"][key], loaded.nets["G_ema"][key])
    recompute_batchnorm(G, batches=2)
    torch.testing.assert_close(G.state_dict()[key], loaded.nets["G_ema"][key])  # equal up to the training run's memory layout
    copied = ckpt.load(train(load_config("dcgan32", overrides=overrides), tmp_path / "b", progress=False))
    assert torch.equal(copied.nets["G"][key], copied.nets["G_ema"][key])  # off: G's statistics, copied


def test_an_encoder_is_averaged_with_its_decoder_and_old_runs_keep_their_trained_pair(celeba_dir, tmp_path):
    overrides = [f"data.source={celeba_dir}", *TINY, "model.family=vaegan", "model.z_dim=8", "train.ema=0.5",
                 "train.checkpoint_every=2"]
    out = train(load_config("dcgan32", overrides=[*overrides, "train.steps=2"]), tmp_path / "run", progress=False)
    loaded = ckpt.load(ckpt.latest(out))
    assert set(loaded.nets) == {"E", "G", "D", "E_ema", "G_ema"}
    E, G, _ = ckpt.load_autoencoder(out)  # the averaged pair
    assert all(torch.equal(v, loaded.nets["E_ema"][k]) for k, v in E.state_dict().items())
    assert all(torch.equal(v, loaded.nets["G_ema"][k]) for k, v in G.state_dict().items())

    # A checkpoint from before encoders were averaged (G_ema only): reconstructions use the trained pair, and
    # resuming starts E's average from E.
    del loaded.nets["E_ema"]
    ckpt.save(loaded.path, loaded)
    E, G, _ = ckpt.load_autoencoder(out)
    assert all(torch.equal(v, loaded.nets["E"][k]) for k, v in E.state_dict().items())
    assert all(torch.equal(v, loaded.nets["G"][k]) for k, v in G.state_dict().items())
    resumed = ckpt.load(train(load_config("dcgan32", overrides=[*overrides, "train.steps=3"]), out, resume=True, progress=False))
    assert "E_ema" in resumed.nets and resumed.state["step"] == 3


def test_encoder_models_preview_reconstructions(celeba_dir, tmp_path):
    cfg = load_config("vae64", overrides=[f"data.source={celeba_dir}", *TINY, "train.steps=2"])
    out = train(cfg, tmp_path / "run", progress=False)
    assert (out / "previews" / "recon-0000002.png").is_file() and (out / "previews" / "step-0000002.png").is_file()
    assert set(ckpt.load(out).nets) == {"E", "G"}


@pytest.mark.parametrize("preview_every, expected", [(8, [8, 13]), (5, [5, 6, 10, 12, 13])])
def test_previews_end_epochs_only_when_epochs_are_longer_than_preview_every(preview_every, expected, celeba_dir, tmp_path):
    """24 faces in batches of 4: 6-step epochs, so a preview each 8 steps skips the epoch ends and one each 5 keeps them."""
    overrides = [f"data.source={celeba_dir}", *TINY, "train.steps=13", f"train.preview_every={preview_every}"]
    out = train(load_config("dcgan32", overrides=overrides), tmp_path / "run", progress=False)
    assert sorted(int(p.stem.split("-")[1]) for p in (out / "previews").glob("step-*.png")) == expected


def test_lr_decay_falls_linearly_to_zero_over_the_last_fraction_of_the_budget(celeba_dir, tmp_path):
    assert [lr_factor(p, 0.5) for p in (0.0, 0.5, 0.75, 1.0)] == [1.0, 1.0, 0.5, 0.0] and lr_factor(0.9, 0.0) == 1.0
    overrides = [f"data.source={celeba_dir}", *TINY, "train.steps=10", "train.log_every=1", "train.lr_decay=0.5", "train.lr_g=1e-3"]
    out = train(load_config("dcgan32", overrides=overrides), tmp_path / "run", progress=False)
    factors = [json.loads(line)["lr_factor"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert factors == pytest.approx([1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0])  # after step s, for step s + 1
    group = ckpt.load(out).state["optimizers"]["G"]["param_groups"][0]
    assert group["initial_lr"] == 1e-3 and group["lr"] == pytest.approx(0.2e-3)  # the rate of the last step, 9 of 10


def test_wall_clock_budget_stops_cleanly_and_counts_across_resumes(celeba_dir, tmp_path, capsys):
    overrides = [f"data.source={celeba_dir}", *TINY, "train.steps=100000", "train.checkpoint_every=100000"]
    out = train(load_config("dcgan32", overrides=[*overrides, "train.minutes=0.02"]), tmp_path / "run", progress=False)
    first = ckpt.load(out).state
    assert 0 < first["step"] < 100000 and first["train_seconds"] >= 1.2
    assert "wall-clock budget reached" in capsys.readouterr().out
    assert list((out / "previews").glob("*.png"))  # the final preview is drawn too
    # The budget is the run's, not the process's: resuming with the same budget trains at most a step more.
    resumed = train(load_config("dcgan32", overrides=[*overrides, "train.minutes=0.02"]), out, resume=True, progress=False)
    assert ckpt.load(resumed).state["step"] <= first["step"] + 1


def _tensorboard_events(folder):
    """(tag, step, kind) of every summary in a run's TensorBoard event files (TFRecord: length, crc, event, crc)."""
    import struct

    from tensorboardX.proto import event_pb2

    found = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + length])
            found += [(v.tag, event.step, v.WhichOneof("value")) for v in event.summary.value]
            i += 12 + length + 4
    return found


def test_tensorboard_events_mirror_the_metrics_and_previews(faces, tmp_path):
    pytest.importorskip("tensorboardX")
    overrides = [f"data.source={faces}", *TINY, "data.resolution=32", "train.steps=3", "train.log_every=1",
                 "train.tensorboard=true", "train.kid_every=3", "train.kid_samples=4"]
    out = train(load_config("dcgan32", overrides=overrides), tmp_path / "run", progress=False)
    events = _tensorboard_events(out / "tensorboard")
    assert {(tag, step) for tag, step, kind in events if kind == "simple_value" and tag == "loss_d"} == {("loss_d", s) for s in (1, 2, 3)}
    assert ("kid", 3, "simple_value") in events
    assert ("samples", 3, "image") in events


def test_tensorboard_without_its_library_is_one_line_before_training(celeba_dir, tmp_path, monkeypatch, capsys):
    from conftest import run_cli

    monkeypatch.setitem(__import__("sys").modules, "tensorboardX", None)  # as if not installed
    code, _, err = run_cli(capsys, "train", "--preset", "dcgan32", "--data", str(celeba_dir), "--set", "train.tensorboard=true",
                           "--set", "model.base_channels=4", "--set", "train.batch_size=4", "--set", "data.split=all",
                           "--steps", "1", "--out", str(tmp_path / "run"), "--quiet")
    assert code == 2 and "pip install 'facegen[tensorboard]'" in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "run").glob("checkpoints/*"))
