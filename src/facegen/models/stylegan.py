"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", config F), sized by
`channel_base` / `channel_max` so that one file serves a 2-core laptop and a GPU.

G maps z through an MLP to w (equalised learning rate, its lr 0.01x), then synthesises from a learned
constant with modulated 3x3 convolutions (weight demodulation), per-pixel noise with learned strengths and
skip toRGB outputs summed over the scales. D is residual, with a minibatch standard deviation before its
head. Up- and down-sampling are bilinear (x2 bilinear down-sampling is 2x2 averaging); the paper's FIR
filters are left out. A feature map of r px has min(channel_base / r, channel_max) channels, as in the paper
(config F: 32768 and 512).

The tracked mean of w (truncation's centre) and the path-length mean are buffers, so checkpoints carry them;
so is each layer's fixed noise, which sampling uses so that a face depends on its z alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facegen.models import split_resolution
from facegen.models.conditioning import Projection

LRELU_GAIN = math.sqrt(2)  # keeps unit variance through leaky ReLU(0.2), as in the paper's code
W_AVG_BETA = 0.995  # decay of the tracked mean of w, per training batch


def channels_at(size: int, channel_base: int, channel_max: int) -> int:
    return max(1, min(channel_base // size, channel_max))


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _downsample(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)  # bilinear x0.5 without antialiasing samples between pixels: the same 2x2 mean


class EqualLinear(nn.Module):
    """A linear layer with the equalised learning rate: N(0, 1) / lr_mul weights scaled at run time, so that Adam
    moves every layer at the same relative speed; lr_mul 0.01 slows the mapping network as the paper does."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.gain, self.lr_mul, self.activation = lr_mul / math.sqrt(in_features), lr_mul, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.gain, self.bias * self.lr_mul)
        return _lrelu(x) if self.activation else x


class EqualConv2d(nn.Module):
    """D's convolution with the equalised learning rate; `down` halves the map first (a cheap low-pass + stride)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True, activation: bool = True,
                 down: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.activation, self.down = activation, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = _downsample(x)
        x = F.conv2d(x, self.weight * self.gain, self.bias, padding=self.weight.shape[-1] // 2)
        return _lrelu(x) if self.activation else x


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class MappingNetwork(nn.Module):
    """z (B, z_dim) -> w (B, w_dim): z normalised to unit second moment, then `layers` equalised-lr layers. A conditional
    network joins an embedding of the labels y (B, K), normalised alike, to z at its input (StyleGAN2-ADA's way)."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float = 0.01, num_conditions: int = 0) -> None:
        super().__init__()
        self.embed = EqualLinear(num_conditions, z_dim) if num_conditions else None
        widths = [z_dim * (2 if num_conditions else 1)] + [w_dim] * layers
        self.net = nn.Sequential(*(EqualLinear(a, b, lr_mul=lr_mul, activation=True) for a, b in zip(widths, widths[1:])))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = _normalise(z)
        if self.embed is not None:  # (B, z_dim) -> (B, 2 z_dim)
            z = torch.cat([z, _normalise(self.embed(y.to(z.dtype)))], dim=1)
        return self.net(z)

    @torch.no_grad()
    def track(self, w: torch.Tensor) -> None:
        """Move the tracked mean of w toward a training batch's (truncation pulls samples toward it)."""
        self.w_avg.lerp_(w.detach().float().mean(dim=0), 1 - W_AVG_BETA)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     padding: int = 1, grouped: bool = True) -> torch.Tensor:
    """Each sample's own convolution: the weight (O, I, k, k) scaled per input channel by its style (B, I) and, with
    demodulation, rescaled to unit norm per output channel; all samples in one grouped convolution.

    grouped=False computes the same thing as the paper's code does while training: the input scaled by the styles,
    one plain convolution over the batch, the output scaled by the demodulation coefficients."""
    B, I, H, W = x.shape  # noqa: E741  (I: input channels, as in the paper's notation)
    if not grouped:
        out = F.conv2d(x * styles[:, :, None, None].to(x.dtype), weight.to(x.dtype), padding=padding)
        if demodulate:  # sum over I, k, k of (w s)^2 = s^2 . (sum over k, k of w^2)
            scale = torch.rsqrt(styles.float().square() @ weight.float().square().sum(dim=(2, 3)).T + 1e-8)  # (B, O)
            out = out * scale[:, :, None, None].to(out.dtype)
        return out
    w = weight[None] * styles[:, None, :, None, None]  # (B, O, I, k, k)
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    out = F.conv2d(x.reshape(1, B * I, H, W), w.reshape(-1, I, *weight.shape[2:]).to(x.dtype), padding=padding, groups=B)
    return out.reshape(B, -1, *out.shape[2:])  # (B, O, H, W)


class ModulatedConv(nn.Module):
    """A synthesis layer: (up-sample,) modulated conv from w's style, per-pixel noise, bias, leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, size: int, up: bool = False) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)  # styles start at 1: plain convolutions
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(size, size))  # the noise of eval mode, fixed per model
        self.gain, self.up = 1 / math.sqrt(in_channels * 9), up

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.up:  # (B, C, S, S) -> (B, C, 2S, 2S)
            x = _upsample(x)
        # Training uses the scaled-input form (the paper's code does too): 1.5x the img/s of the grouped convolution on a
        # 2-core CPU (benchmarks/style_speed.py); sampling and projection use the grouped one. Both compute the same.
        x = modulated_conv2d(x, self.weight * self.gain, self.affine(w), grouped=not self.training)
        # Given noise (a photo's projection optimises its own); else fresh noise while training (from the global RNG,
        # which checkpoints carry) and the fixed map when sampling.
        if noise is None:
            noise = torch.randn(len(x), 1, *x.shape[2:], device=x.device, dtype=x.dtype) if self.training else self.noise_const
        x = x + noise * self.noise_strength + self.bias[None, :, None, None]
        return _lrelu(x)


class ToRGB(nn.Module):
    """(B, C, S, S) -> (B, 3, S, S): a modulated 1x1 convolution without demodulation, and a bias."""

    def __init__(self, in_channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(3, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(3))
        self.gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.gain
        return modulated_conv2d(x, self.weight, styles, demodulate=False, padding=0, grouped=not self.training) + self.bias[None, :, None, None]


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> image (B, 3, R, R): a learned constant, then per scale two modulated convs (one at the
    base) and a toRGB whose output is added to the up-sampled image so far. Layer i reads ws[:, i]; a block's toRGB
    reads the w of the next block's first conv, as in the paper's code (num_ws = convs + 1)."""

    def __init__(self, resolution: int, w_dim: int, channel_base: int, channel_max: int) -> None:
        super().__init__()
        base, depth = split_resolution(resolution)
        sizes = [base * 2**i for i in range(depth + 1)]
        self.const = nn.Parameter(torch.randn(channels_at(base, channel_base, channel_max), base, base))
        self.convs, self.to_rgb = nn.ModuleList(), nn.ModuleList()
        for i, size in enumerate(sizes):
            c_out = channels_at(size, channel_base, channel_max)
            if i:  # (B, C, S/2, S/2) -> (B, C', S, S)
                self.convs.append(ModulatedConv(channels_at(size // 2, channel_base, channel_max), c_out, w_dim, size, up=True))
            self.convs.append(ModulatedConv(c_out, c_out, w_dim, size))
            self.to_rgb.append(ToRGB(c_out, w_dim))
        self.num_ws = len(self.convs) + 1

    def forward(self, ws: torch.Tensor, noises: list[torch.Tensor] | None = None) -> torch.Tensor:
        """noises: one (B, 1, S, S) map per conv layer in place of the layers' own (see ModulatedConv)."""
        x = self.const[None].expand(len(ws), -1, -1, -1)  # (B, C, base, base)
        image, layer = None, 0
        for i, to_rgb in enumerate(self.to_rgb):
            for _ in range(1 if i == 0 else 2):
                x = self.convs[layer](x, ws[:, layer], None if noises is None else noises[layer])
                layer += 1
            rgb = to_rgb(x, ws[:, layer])
            image = rgb if image is None else _upsample(image) + rgb
        return image


class Generator(nn.Module):
    """z (B, z_dim) -> image (B, 3, R, R), about [-1, 1] (no tanh, as in the paper). Edits and walks happen in w."""

    edit_space = "w"  # what the latent tools move: w, where attributes are more disentangled and lerp is natural

    def __init__(self, resolution: int = 32, z_dim: int = 512, w_dim: int = 512, mapping_layers: int = 8,
                 channel_base: int = 32768, channel_max: int = 512, num_conditions: int = 0) -> None:
        super().__init__()
        self.resolution, self.z_dim, self.z_dist, self.w_dim = resolution, z_dim, "normal", w_dim  # read by sampling
        self.num_conditions = num_conditions
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, num_conditions=num_conditions)
        self.synthesis = SynthesisNetwork(resolution, w_dim, channel_base, channel_max)
        self.num_ws = self.synthesis.num_ws
        self.register_buffer("path_length_mean", torch.zeros(()))  # the path-length regulariser's running target

    def to_edit_space(self, z: torch.Tensor, y: torch.Tensor | None = None, truncation: float = 1.0) -> torch.Tensor:
        """z (B, z_dim) (and labels y) -> w (B, w_dim), pulled toward the tracked mean of w by truncation < 1."""
        w = self.mapping(z, y)
        return self.mapping.w_avg.lerp(w, truncation) if truncation != 1 else w

    def from_edit_space(self, w: torch.Tensor, noises: list[torch.Tensor] | None = None) -> torch.Tensor:
        """w (B, w_dim), the same at every layer, or W+ (B, num_ws, w_dim), one per layer -> images; `noises` as the
        synthesis network takes them."""
        ws = w[:, None].expand(-1, self.num_ws, -1) if w.dim() == 2 else w
        return self.synthesis(ws, noises)

    def noise_sizes(self) -> list[int]:
        """The side of each conv layer's noise map, in layer order."""
        return [conv.noise_const.shape[-1] for conv in self.synthesis.convs]

    def style_weights(self) -> torch.Tensor:
        """(sum of the layers' input channels, w_dim): every affine map from w to a layer's styles, stacked; SeFa's
        closed-form directions in W are their top eigenvectors (Shen & Zhou 2021, section 3.2)."""
        layers = [*self.synthesis.convs, *self.synthesis.to_rgb]
        return torch.cat([layer.affine.weight * layer.affine.gain for layer in layers])

    def mix(self, w: torch.Tensor, w_other: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
        """Style mixing: sample i reads w[i] before layer cutoff[i] and w_other[i] from it on -> ws (B, num_ws, w_dim)."""
        layers = torch.arange(self.num_ws, device=w.device)[None, :, None]  # (1, num_ws, 1)
        return torch.where(layers < cutoff[:, None, None], w[:, None], w_other[:, None])

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, z_other: torch.Tensor | None = None,
                cutoff: torch.Tensor | None = None, truncation: float = 1.0, track_w: bool = False,
                return_ws: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Images of z (with labels y); with z_other and cutoff (B,), style-mixed as in training (a cutoff of num_ws: no
        mixing), both latents mapped with the sample's labels.

        Training calls it through DDP's wrapper, so what a step needs comes from here: track_w moves the tracked mean
        of w, return_ws also returns the per-layer ws (B, num_ws, w_dim) that the path-length term differentiates by.
        """
        w = self.to_edit_space(z, y, truncation)
        if track_w:
            self.mapping.track(w)
        ws = w[:, None].expand(-1, self.num_ws, -1) if z_other is None else self.mix(w, self.to_edit_space(z_other, y, truncation), cutoff)
        images = self.synthesis(ws)
        return (images, ws) if return_ws else images


class Discriminator(nn.Module):
    """Image (B, 3, R, R) -> logits (B,): fromRGB, residual blocks that halve the map, then at the base a minibatch
    standard deviation channel, a 3x3 conv and two dense layers."""

    def __init__(self, resolution: int = 32, channel_base: int = 32768, channel_max: int = 512, mbstd_group: int = 4,
                 num_conditions: int = 0) -> None:
        super().__init__()
        base, depth = split_resolution(resolution)
        sizes = [resolution // 2**i for i in range(depth + 1)]  # R, R/2, ..., base
        self.from_rgb = EqualConv2d(3, channels_at(resolution, channel_base, channel_max), 1)
        self.blocks = nn.ModuleList()
        for size in sizes[:-1]:  # (B, C, S, S) -> (B, C', S/2, S/2)
            c_in, c_out = channels_at(size, channel_base, channel_max), channels_at(size // 2, channel_base, channel_max)
            self.blocks.append(nn.ModuleDict({
                "conv0": EqualConv2d(c_in, c_in, 3), "conv1": EqualConv2d(c_in, c_out, 3, down=True),
                "skip": EqualConv2d(c_in, c_out, 1, bias=False, activation=False, down=True)}))
        c = channels_at(base, channel_base, channel_max)
        self.mbstd_group = mbstd_group
        self.conv = EqualConv2d(c + 1, c, 3)
        self.fc = EqualLinear(c * base * base, c, activation=True)
        self.out = EqualLinear(c, 1)
        self.projection = Projection(num_conditions, c) if num_conditions else None  # on the last dense features

    def _minibatch_std(self, x: torch.Tensor) -> torch.Tensor:
        """One more channel: the standard deviation of the features over a group of samples (ones the batch divides
        into), averaged, so that D can see a batch without variety."""
        B, C, H, W = x.shape
        group = math.gcd(min(self.mbstd_group, B), B)
        y = x.float().reshape(group, -1, C, H, W)  # (G, B/G, C, H, W)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/G,)
        y = y.reshape(-1, 1, 1, 1).repeat(group, 1, H, W).to(x.dtype)  # (B, 1, H, W)
        return torch.cat([x, y], dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The residual blocks' base feature map (B, C, base, base), each sample's own (the batch statistic comes
        after it): the projection's perceptual distance."""
        x = self.from_rgb(x)
        for block in self.blocks:  # (B, C, S, S) -> (B, C', S/2, S/2)
            x = (block["skip"](x) + block["conv1"](block["conv0"](x))) * math.sqrt(0.5)
        return x

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv(self._minibatch_std(self.features(x)))  # (B, C + 1, base, base) -> (B, C, base, base)
        h = self.fc(x.flatten(1))  # (B, C)
        logits = self.out(h).squeeze(1)
        return logits if self.projection is None else logits + self.projection(h, y)


def build(resolution: int, z_dim: int = 512, w_dim: int = 512, mapping_layers: int = 8, channel_base: int = 32768,
          channel_max: int = 512, num_conditions: int = 0) -> dict[str, nn.Module]:
    return {"G": Generator(resolution, z_dim, w_dim, mapping_layers, channel_base, channel_max, num_conditions),
            "D": Discriminator(resolution, channel_base, channel_max, num_conditions=num_conditions)}
