import dataclasses

import pytest

from facegen import models
from facegen.config import FAMILIES, FAMILY_ONLY, STEP_MODEL_KEYS, Config, ModelConfig, config_from_dict, load_config, preset_names, with_base_preset


def test_defaults_are_the_canonical_recipe():
    cfg = Config()
    settings = (cfg.data.resolution, cfg.model.architecture()["z_dim"], cfg.train.batch_size, cfg.train.lr_d, cfg.train.betas_d)
    assert settings == (64, 100, 128, 2e-4, (0.5, 0.999))


def test_every_preset_loads():
    names = preset_names()
    assert {"dcgan32", "dcgan56-dense", "dcgan64", "dcgan112", "dcgan-mnist", "dcgan-cifar10", "demo"} <= set(names)
    for name in names:
        load_config(name)


def test_presets_hold_the_reports_numbers():
    dense = load_config("dcgan56-dense")
    assert (dense.data.resolution, dense.model.dense, dense.model.dropout, dense.train.lr_g, dense.train.betas_g[0]) == (56, True, 0.5, 2.5e-4, 0.45)
    assert dense.model.base_channels * 4 == 1024  # 7x7x1024 after the dense projection
    big = load_config("dcgan112")
    assert (big.train.lr_d, big.train.lr_g, big.model.z_dist, big.train.batch_size, big.train.epochs) == (4e-5, 2e-4, "uniform", 64, 20)


def test_set_overrides_parse_by_field_type():
    cfg = load_config("dcgan32", overrides=["train.lr_d=4e-5", "train.steps=7", "model.dense=true",
                                            "train.betas_g=[0.45, 0.9]", "data.crop=108", "model.z_dist=uniform"])
    assert cfg.train.lr_d == 4e-5 and cfg.train.steps == 7 and cfg.model.dense is True
    assert cfg.train.betas_g == (0.45, 0.9) and cfg.data.crop == 108 and cfg.model.z_dist == "uniform"
    assert load_config(overrides=["data.crop=108", "data.crop=none"]).data.crop is None
    assert load_config(overrides=["train.lr_g=1"]).train.lr_g == 1.0  # an int is a fine float


@pytest.mark.parametrize("override, message", [
    ("train.lrd=1e-4", "unknown config key 'train.lrd'; valid keys in [train]: batch_size"),
    ("trian.lr_d=1e-4", "unknown config section 'trian'"),
    ("train.batch_size=abc", "train.batch_size expects int, got 'abc'"),
    ("train.batch_size=1.5", "train.batch_size expects int"),
    ("model.dense=3", "model.dense expects bool"),
    ("data.resolution=48", "data.resolution = 48 is not supported; use one of 32, 56, 64, 112, 128"),
    ("model.z_dist=cauchy", "model.z_dist = 'cauchy' is not valid; choose one of: normal, uniform"),
    ("model.d_kernel=5", "model.d_kernel = 5 is not valid; choose one of: 3, 4"),
    ("train.betas_d=[0.5]", "train.betas_d expects a list of 2 numbers"),
    ("train.lr_d=-1", "train.lr_d = -1.0 must be > 0"),
    ("train.lr_decay=1.5", "train.lr_decay = 1.5 must be a fraction of the budget in [0, 1]"),
    ("lr_d=1", "must look like section.key=value"),
])
def test_bad_settings_name_the_problem(override, message):
    with pytest.raises(ValueError, match=None) as err:
        load_config(overrides=[override])
    assert message in str(err.value)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown preset 'dcgan99'; available presets: .*dcgan32"):
        load_config("dcgan99")


def test_saved_config_round_trips():
    cfg = load_config("dcgan112", overrides=["train.steps=3"])
    assert config_from_dict(cfg.to_dict()) == cfg


def test_config_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[train]\nbatch_size = 32\n")
    assert load_config(path=path).train.batch_size == 32
    path.write_text("[train\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(path=path)
    with pytest.raises(ValueError, match="does not exist"):
        load_config(path=tmp_path / "absent.toml")


def test_a_preset_extends_another_and_names_only_what_it_changes():
    fast32, fast64, demo = load_config("fast32"), load_config("fast64"), load_config("demo")
    assert (fast64.data.resolution, fast64.train.batch_size) == (64, 32)
    assert dataclasses.replace(fast64.train, batch_size=64) == fast32.train
    assert (fast32.model.z_dim, fast64.model) == (64, dataclasses.replace(fast32.model, z_dim=100))  # z 64: measured at 32 px only
    assert demo.data.source == "synthetic:10000" and demo.train.minutes == 2.75 and demo.train.lr_g == fast32.train.lr_g == 5e-4
    assert load_config("vae64").data.crop == 140 and load_config("vae64").model == load_config("vae-anime64").model


def test_a_config_file_can_extend_a_preset(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('extends = "fast32"\n[train]\nlr_g = 1e-3\n')
    cfg = load_config(path=path, overrides=["train.minutes=3"])
    assert (cfg.train.lr_g, cfg.train.lr_d, cfg.train.ema, cfg.train.minutes, cfg.model.base_channels) == (1e-3, 5e-4, 0.999, 3.0, 32)


@pytest.mark.parametrize("base, message", [
    ("fast99", "config file mine.toml extends unknown preset 'fast99'; available presets: "),
    (3, "config file mine.toml: extends = 3 must name one preset"),
])
def test_bad_extends_names_the_problem(base, message):
    with pytest.raises(ValueError) as err:
        with_base_preset({"extends": base}, "config file mine.toml")
    assert message in str(err.value)


def test_presets_cannot_extend_in_a_cycle():
    # As if fast32 said `extends = "demo"`: demo extends fast32, which is already on the way.
    with pytest.raises(ValueError, match=r"preset 'demo' extends 'fast32', which leads back to it \(fast32 -> demo -> fast32\)"):
        with_base_preset({"extends": "demo"}, "preset 'fast32'", ("fast32",))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_model_key_a_family_does_not_take_is_refused_not_ignored(family):
    """A model key outside the family's constructor would be dropped silently; FAMILY_ONLY must name it (but for the
    keys the family's update step reads)."""
    taken = models.parameters(family)
    for field in dataclasses.fields(ModelConfig):
        if field.name != "family" and field.name not in taken and field.name not in STEP_MODEL_KEYS:
            assert family not in FAMILY_ONLY[("model", field.name)], field.name
