"""Run configuration: nested frozen dataclasses, filled from a preset or TOML file and `--set` overrides.

Every field carries its default's reason on its line. Unknown keys and wrong types are errors that
list what is valid, so a typo never silently trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from facegen import models
from facegen.losses import LOSS_KINDS, RECON_KINDS, parse_label_noise
from facegen.models import SUPPORTED_RESOLUTIONS
from facegen.models.dcgan import D_KERNELS

SPLITS = ("train", "holdout", "all")
Z_DISTS = ("normal", "uniform")
ACTIVATIONS = ("relu", "leaky_relu")
FAMILIES = ("dcgan", "msggan", "resnet", "stylegan", "vae", "vaegan")
VAE_FAMILIES = models.ENCODER_FAMILIES
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} = {value!r} is not valid; choose one of: {', '.join(map(str, choices))}")


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} = {value} must be {'>= 0' if allow_zero else '> 0'}")


@dataclass(frozen=True)
class DataConfig:
    source: str = "synthetic:10000"  # offline default: procedurally drawn faces with true labels
    resolution: int = 64  # the canonical DCGAN size; a base of 4 or 7 doubled
    crop: int | None = None  # centre crop in px of a 178-wide aligned face (scaled for smaller copies); None = largest square
    split: str = "train"  # train on all but the held-out 10 %, which evaluation keeps unseen
    cache_dir: str | None = None  # None: $FACEGEN_CACHE, else ~/.cache/facegen
    diffaugment: str = ""  # DiffAugment policy for D's inputs (Zhao et al. 2020), e.g. "color,translation,cutout"
    mirror: bool = False  # x-flip a random half of each real batch (StyleGAN2-ADA's --mirror): twice the faces to learn from
    ada_target: float = 0.0  # adaptive augmentation (Karras et al. 2020): the E[sign(D(real))] that p is steered to, 0.6 in the paper; 0 = off
    ada_augment: str = "bgc"  # ADA's transform groups: b(lit: flips, quarter turns, integer shifts), g(eometric), c(olour); the paper's default
    ada_interval: int = 4  # steps between adjustments of p (the paper's 4)
    ada_kimg: float = 500.0  # thousands of images over which p can go from 0 to 1 (the paper's 500)
    ada_p: float = 0.0  # p at the start of training

    def __post_init__(self) -> None:
        from facegen.ada import parse_groups
        from facegen.augment import parse_policy

        parse_policy(self.diffaugment)
        parse_groups(self.ada_augment)
        if not 0.0 <= self.ada_target < 1.0:
            raise ValueError(f"data.ada_target = {self.ada_target} must be in [0, 1): the mean sign of D's outputs on reals to steer p by, "
                             "e.g. 0.6 (0 turns ADA off)")
        if self.ada_interval < 1:
            raise ValueError(f"data.ada_interval = {self.ada_interval} must be a whole number of steps >= 1, e.g. 4")
        _positive("data.ada_kimg", self.ada_kimg)
        if not 0.0 <= self.ada_p <= 1.0:
            raise ValueError(f"data.ada_p = {self.ada_p} must be a probability in [0, 1], e.g. 0")
        if not self.ada_target:
            changed = [f"data.{name}" for name in ("ada_augment", "ada_interval", "ada_kimg", "ada_p")
                       if getattr(self, name) != FIELD_DEFAULTS["data", name]]
            if changed:
                raise ValueError(f"{', '.join(changed)} tune adaptive augmentation, which is off; set data.ada_target too, e.g. 0.6")
        if self.resolution not in SUPPORTED_RESOLUTIONS:
            valid = ", ".join(map(str, SUPPORTED_RESOLUTIONS))
            raise ValueError(f"data.resolution = {self.resolution} is not supported; use one of {valid} (4 or 7 doubled)")
        if self.crop is not None:
            _positive("data.crop", self.crop)
        _choice("data.split", self.split, SPLITS)


@dataclass(frozen=True)
class ModelConfig:
    family: str = "dcgan"  # dcgan; msggan (Karnewar & Wang 2019); resnet (SNGAN-like); stylegan (Karras et al. 2020); vae; vaegan (Larsen)
    z_dim: int | None = None  # None: the family's default, 100 for DCGAN/MSG-GAN (Radford et al.), 128 for resnet and VAEs, 512 for stylegan
    z_dist: str = "normal"  # normal N(0, 1) or uniform U(-1, 1), the paper's choice
    base_channels: int = 64  # channels of G's last and D's first block, doubled per level (ngf = ndf = 64)
    d_base_channels: int | None = None  # dcgan: D's own first-block width (D costs about 70 % of a step); None = base_channels
    d_kernel: int | None = None  # dcgan: D's stride-2 kernel, 4 (Radford et al.; None) or 3, 9/16 of the multiply-adds
    g_activation: str = "relu"  # the paper's G; the 56 px report uses leaky_relu
    dense: bool = False  # the 56 px report: dense projection of z in G and a dense head in D
    dropout: float = 0.0  # Dropout after every block of both nets; 0.5 in the 56 px report
    spectral_norm: bool = False  # spectral normalisation of every D layer (Miyato et al. 2018)
    feature_layer: int | None = None  # vaegan: D's conv whose pre-BatchNorm output measures reconstructions; None: the 8x8 one (Larsen)
    w_dim: int | None = None  # stylegan: width of w and of the mapping network; None = 512 (the paper)
    mapping_layers: int | None = None  # stylegan: depth of the mapping network z -> w; None = 8 (the paper)
    channel_base: int | None = None  # stylegan: a map of r px has min(channel_base / r, channel_max) channels; None = 32768 (config F)
    channel_max: int | None = None  # stylegan: None = 512 (config F)
    mixing: float = 0.9  # stylegan: share of training fakes whose later layers take a second latent's w (style mixing, the paper's 0.9)
    conditions: tuple[str, ...] = ()  # attributes of the data's labels the model learns from, e.g. ["Smiling", "Male"], or "all"; none: unconditional

    def __post_init__(self) -> None:
        _choice("model.family", self.family, FAMILIES)
        if self.z_dim is not None:
            _positive("model.z_dim", self.z_dim)
        _choice("model.z_dist", self.z_dist, Z_DISTS)
        _positive("model.base_channels", self.base_channels)
        if self.d_base_channels is not None:
            _positive("model.d_base_channels", self.d_base_channels)
        if self.d_kernel is not None:
            _choice("model.d_kernel", self.d_kernel, D_KERNELS)
        _choice("model.g_activation", self.g_activation, ACTIVATIONS)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout = {self.dropout} must be in [0, 1)")
        for name in ("w_dim", "mapping_layers", "channel_base", "channel_max"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"model.{name} = {getattr(self, name)} must be at least 1 (leave it out for the paper's value)")
        if "all" in self.conditions and len(self.conditions) > 1:
            raise ValueError(f"model.conditions = {list(self.conditions)}: \"all\" means every attribute of the data; give it alone")
        if len(set(self.conditions)) < len(self.conditions):
            raise ValueError(f"model.conditions = {list(self.conditions)} names an attribute twice; name each once")
        if not 0.0 <= self.mixing <= 1.0:
            raise ValueError(f"model.mixing = {self.mixing} must be a share of the batch in [0, 1], e.g. 0.9 (0 turns mixing off)")

    def architecture(self) -> dict[str, Any]:
        """The family's constructor arguments: the keys it takes, None filled in with its own default."""
        defaults = models.parameters(self.family)
        values = dataclasses.asdict(self)
        return {k: default if values[k] is None else values[k] for k, default in defaults.items() if k in values}


@dataclass(frozen=True)
class LossConfig:
    kind: str = "bce"  # bce: non-saturating G loss (the paper's practice); minimax: log(1 - D(G(z))); hinge
    label_noise: str = "none"  # D's targets: beta(a,b) (1,5 in the 32 px report), smooth(p), flip(p) or none
    instance_noise: float = 0.0  # sigma of Gaussian noise on D's real and fake inputs; 0.125 in the 32 px report
    instance_noise_anneal_steps: int = 0  # anneal sigma linearly to 0 over this many steps; 0 keeps it constant
    recon: str = "mse"  # VAEs: per-image sum of mse, l1 or bce over pixels ("pixel" = mse); dis_feature: D's features (vaegan)
    beta: float = 1.0  # weight of the KL term against the per-image reconstruction sum (docs/vae.md: what 1 means)
    kl_warmup_steps: int = 0  # KL weight rises linearly from 0 to beta over this many steps; 0 = beta from the start
    gamma: float = 1.0  # vaegan: weight of the reconstruction error against the GAN loss in the decoder's update (Larsen)
    equilibrium: float = 0.0  # vaegan: Larsen's gating around this D loss (0.68 in his code); 0 = off
    equilibrium_margin: float = 0.35  # vaegan: skip D's update below equilibrium - margin, G's GAN term above + margin
    pixel_weight: float = 0.0  # vaegan with dis_feature: add this x the per-image pixel MSE sum to the feature error
    r1_gamma: float = 0.0  # gamma of the R1 penalty gamma/2 * E|grad D(x_real)|^2 in D's loss (Mescheder et al. 2018); 0 = off
    r1_every: int = 16  # lazy R1 (Karras et al. 2020): the penalty on every r1_every-th D step, weighted by r1_every
    pl_weight: float = 0.0  # stylegan: weight of the path-length regulariser (Karras et al. 2020; 2 in the paper); 0 = off
    pl_every: int = 4  # stylegan: lazy path-length regularisation, on every pl_every-th G step, weighted by pl_every

    def __post_init__(self) -> None:
        _choice("loss.kind", self.kind, LOSS_KINDS)
        if parse_label_noise(self.label_noise).kind != "none" and self.kind == "hinge":
            raise ValueError(f"loss.label_noise = {self.label_noise!r} needs a BCE loss; set loss.kind=bce or minimax, or drop the label noise")
        _positive("loss.instance_noise", self.instance_noise, allow_zero=True)
        _positive("loss.instance_noise_anneal_steps", self.instance_noise_anneal_steps, allow_zero=True)
        _choice("loss.recon", self.recon, RECON_KINDS)
        for name in ("beta", "kl_warmup_steps", "gamma", "equilibrium", "equilibrium_margin", "pixel_weight", "r1_gamma", "pl_weight"):
            _positive(f"loss.{name}", getattr(self, name), allow_zero=True)
        _positive("loss.r1_every", self.r1_every)
        _positive("loss.pl_every", self.pl_every)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 128  # Radford et al.
    epochs: int = 5  # passes over the split; ignored when steps is set
    steps: int | None = None  # total optimizer steps of D; overrides epochs
    minutes: float | None = None  # wall-clock budget of training (summed over resumes); stops at whichever of this and steps/epochs comes first
    lr_decay: float = 0.0  # both learning rates fall linearly to 0 over this last fraction of the budget (steps or minutes); 0 = constant
    lr_d: float = 2e-4  # Radford et al.
    lr_g: float = 2e-4  # Radford et al.
    betas_d: tuple[float, float] = (0.5, 0.999)  # beta1 0.5 steadies training (Radford et al.)
    betas_g: tuple[float, float] = (0.5, 0.999)  # G's Adam betas, as D's by default (Radford et al.)
    g_steps: int = 1  # G updates per D update; 2 "balances" a too-strong D in the 32 px report
    ema: float = 0.0  # decay of an exponential moving average of G used for samples (e.g. 0.999); 0 = off
    ema_bn_batches: int = 0  # the EMA G's BatchNorm statistics from this many batches of its own samples at each preview and checkpoint; 0 = copied
    seed: int = 0  # ties init, shuffling, noise and previews to one number
    log_every: int = 10  # steps between metrics.jsonl records
    preview_every: int = 500  # steps between preview grids; one also ends each epoch longer than this, and the run
    checkpoint_every: int = 1000  # steps between checkpoints; one is also written at the end
    keep_checkpoints: int = 3  # older checkpoints are deleted
    kid_every: int = 0  # steps between quick KID checks against the held-out split (0 = off); the best is kept
    kid_samples: int = 500  # samples (and held-out images) per quick KID: a trend, not a final figure
    sync_batchnorm: bool = False  # under torchrun: BatchNorm statistics over the global batch (CUDA only)
    tensorboard: bool = False  # also write TensorBoard events (losses, KID, previews) into the run (facegen[tensorboard])
    nan_retries: int = 3  # a non-finite loss or weight rolls back to the last good state this many times, then stops
    nan_lr_factor: float = 0.5  # each rollback multiplies every learning rate by this
    device: str = "auto"  # auto: cuda, else mps, else cpu
    precision: str = "auto"  # auto: bf16 where the hardware has it, fp32 elsewhere (fp16 + GradScaler on CUDA if asked)

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "log_every", "preview_every", "checkpoint_every", "keep_checkpoints", "kid_samples"):
            _positive(f"train.{name}", getattr(self, name))
        _positive("train.kid_every", self.kid_every, allow_zero=True)
        _positive("train.nan_retries", self.nan_retries, allow_zero=True)
        if not 0.0 < self.nan_lr_factor <= 1.0:
            raise ValueError(f"train.nan_lr_factor = {self.nan_lr_factor} must be in (0, 1], e.g. 0.5 (1 keeps the learning rates)")
        if self.steps is not None:
            _positive("train.steps", self.steps)
        if self.minutes is not None:
            _positive("train.minutes", self.minutes)
        _positive("train.g_steps", self.g_steps)
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"train.ema = {self.ema} must be a decay in [0, 1), e.g. 0.999 (0 turns the EMA off)")
        _positive("train.ema_bn_batches", self.ema_bn_batches, allow_zero=True)
        if self.ema_bn_batches and not self.ema:
            raise ValueError("train.ema_bn_batches recomputes the EMA generator's statistics; set train.ema too, e.g. 0.999")
        if not 0.0 <= self.lr_decay <= 1.0:
            raise ValueError(f"train.lr_decay = {self.lr_decay} must be a fraction of the budget in [0, 1], e.g. 0.3 (0 keeps the learning rates)")
        _positive("train.lr_d", self.lr_d)
        _positive("train.lr_g", self.lr_g)
        for name in ("betas_d", "betas_g"):
            if not all(0.0 <= b < 1.0 for b in getattr(self, name)):
                raise ValueError(f"train.{name} = {list(getattr(self, name))} must be two numbers in [0, 1)")
        _choice("train.precision", self.precision, PRECISIONS)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        for (section, name), families in FAMILY_ONLY.items():
            value = getattr(getattr(self, section), name)
            if self.model.family not in families and value != FIELD_DEFAULTS[section, name]:
                raise ValueError(f"{section}.{name} = {value!r} does not apply to model.family = {self.model.family}, only to "
                                 f"{', '.join(families)}; drop the setting or change the family")
        if self.loss.recon == "dis_feature" and self.model.family != "vaegan":
            raise ValueError("loss.recon = dis_feature needs a discriminator; use model.family=vaegan, or mse, l1 or bce")
        if self.loss.pixel_weight and self.loss.recon != "dis_feature":
            raise ValueError(f"loss.pixel_weight adds a pixel term to the feature error; it needs loss.recon = dis_feature, "
                             f"not {self.loss.recon!r}")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = typing.get_type_hints(Config)
FIELD_DEFAULTS = {(section, f.name): f.default for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
GANS = ("dcgan", "msggan", "resnet", "stylegan", "vaegan")  # the families with a discriminator
GAN_STEP = ("dcgan", "msggan", "resnet")  # the families trained by steps.gan_step alone (no encoder)
STEP_MODEL_KEYS = ("mixing", "conditions")  # [model] keys the training loop and steps read, not the networks' constructor
# Settings that only some families use: a non-default value for another family is an error, not silently ignored.
FAMILY_ONLY: dict[tuple[str, str], tuple[str, ...]] = {
    ("model", "z_dist"): GAN_STEP, ("model", "dense"): ("dcgan", "msggan"), ("model", "dropout"): ("dcgan", "msggan"),
    ("model", "g_activation"): ("dcgan", "msggan", "vae", "vaegan"),
    ("model", "spectral_norm"): ("dcgan", "msggan", "resnet", "vaegan"), ("model", "feature_layer"): ("vaegan",),
    ("model", "d_base_channels"): ("dcgan",), ("model", "d_kernel"): ("dcgan",),
    ("model", "base_channels"): tuple(f for f in FAMILIES if f != "stylegan"),
    **{("model", name): ("stylegan",) for name in ("w_dim", "mapping_layers", "channel_base", "channel_max", "mixing")},
    ("loss", "kind"): GANS, ("loss", "label_noise"): GANS,
    ("loss", "instance_noise"): (*GAN_STEP, "stylegan"), ("loss", "instance_noise_anneal_steps"): (*GAN_STEP, "stylegan"),
    ("loss", "recon"): VAE_FAMILIES, ("loss", "beta"): VAE_FAMILIES, ("loss", "kl_warmup_steps"): VAE_FAMILIES,
    ("loss", "gamma"): ("vaegan",), ("loss", "equilibrium"): ("vaegan",), ("loss", "equilibrium_margin"): ("vaegan",),
    ("loss", "pixel_weight"): ("vaegan",), ("loss", "r1_gamma"): (*GAN_STEP, "stylegan"), ("loss", "r1_every"): (*GAN_STEP, "stylegan"),
    ("loss", "pl_weight"): ("stylegan",), ("loss", "pl_every"): ("stylegan",),
    ("train", "g_steps"): GAN_STEP, ("data", "diffaugment"): GANS, ("data", "ada_target"): GANS,
    ("train", "lr_d"): GANS, ("train", "betas_d"): GANS,
}


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files("facegen.presets").iterdir() if p.name.endswith(".toml"))


def read_preset(name: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    path = resources.files("facegen.presets") / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}; available presets: {', '.join(preset_names())}")
    return with_base_preset(tomllib.loads(path.read_text()), f"preset {name!r}", (*chain, name))


def with_base_preset(tree: dict[str, Any], origin: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """`extends = "fast32"` at the top of a preset or TOML file: that preset's settings, then this file's, key by key.

    One recipe lives in one file; its variants (fast64, the demo, a user's own tweaks) name only what they change.
    """
    tree = dict(tree)
    base = tree.pop("extends", None)
    if base is None:
        return tree
    if not isinstance(base, str):
        raise ValueError(f"{origin}: extends = {base!r} must name one preset, e.g. extends = \"fast32\"")
    if base in chain:
        raise ValueError(f"{origin} extends {base!r}, which leads back to it ({' -> '.join((*chain, base))}); break the cycle")
    if base not in preset_names():
        raise ValueError(f"{origin} extends unknown preset {base!r}; available presets: {', '.join(preset_names())}")
    merged = read_preset(base, chain)
    for section, values in tree.items():
        below = merged.get(section)
        merged[section] = {**below, **values} if isinstance(below, dict) and isinstance(values, dict) else values
    return merged


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist; pass a TOML file or use --preset NAME")
    if path.suffix.lower() not in (".toml", ".json"):
        raise ValueError(f"config file {path} is not a TOML file (.toml) or a run's config.json; pass one of those or use --preset NAME")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not UTF-8 text; save it as UTF-8") from None
    try:
        tree = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"config file {path} is not valid {path.suffix.lstrip('.').upper()}: {err}") from None
    if not isinstance(tree, dict):
        raise ValueError(f"config file {path} holds a {type(tree).__name__}, not a table of sections like a run's config.json")
    return with_base_preset(tree, f"config file {path}")


def parse_override(text: str) -> tuple[str, str, str]:
    """'train.lr_d=4e-5' -> ('train', 'lr_d', '4e-5')."""
    key, sep, value = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot:
        raise ValueError(f"--set {text!r} must look like section.key=value, e.g. --set train.lr_d=4e-5")
    return section, name, value.strip()


def load_config(
    preset: str | None = None, path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> Config:
    """Defaults, then a preset or file, then `--set` overrides, validated into a Config."""
    if preset and path:
        raise ValueError("give either --preset or --config, not both")
    tree = read_preset(preset) if preset else read_config_file(path) if path else {}
    return config_from_dict(tree, overrides)


def config_from_dict(tree: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A validated Config from nested dicts (a TOML file, a saved config.json) and `--set` overrides."""
    tree = {section: dict(values) if isinstance(values, dict) else values for section, values in tree.items()}
    for text in overrides:
        section, name, value = parse_override(text)
        tree.setdefault(section, {})[name] = _parse_cli_value(value)
    unknown = sorted(set(tree) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown config section {unknown[0]!r}; valid sections: {', '.join(SECTIONS)}")
    return Config(**{section: _build_section(section, cls, tree.get(section, {})) for section, cls in SECTIONS.items()})


def _build_section(section: str, cls: type, values: dict[str, Any]) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"[{section}] must be a table of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ValueError(f"unknown config key '{section}.{unknown[0]}'; valid keys in [{section}]: {', '.join(hints)}")
    return cls(**{name: _coerce(f"{section}.{name}", value, hints[name]) for name, value in values.items()})


def _parse_cli_value(text: str) -> Any:
    """A TOML literal when it is one (4e-5, true, [0.5, 0.9]); otherwise the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check value against a field's type hint, converting only where no information is lost."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):  # X | None
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(name, value, next(a for a in args if a is not type(None)))
    if typing.get_origin(hint) is tuple and args[-1] is Ellipsis:  # names: a list, or a comma-separated string
        names = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if isinstance(names, (list, tuple)) and all(isinstance(v, str) for v in names):
            return tuple(names)
        raise ValueError(f"{name} expects a list of names like [\"Smiling\", \"Male\"] (or \"all\"), got {value!r}")
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(_coerce(name, v, a) for v, a in zip(value, args))
        raise ValueError(f"{name} expects a list of {len(args)} numbers like [0.5, 0.999], got {value!r}")
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{name} expects a finite number, got {value!r}")
        return float(value)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # e.g. loss.label_noise = 0.1
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ValueError(f"{name} expects {hint.__name__}, got {value!r} ({type(value).__name__})")
