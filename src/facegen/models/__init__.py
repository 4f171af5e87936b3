"""Model families as a plain dict, and the resolution rule they share."""

from __future__ import annotations

import inspect
import math

from torch import nn

SUPPORTED_RESOLUTIONS = (32, 56, 64, 112, 128)  # a 4x4 or 7x7 base doubled 3 to 5 times


def split_resolution(resolution: int) -> tuple[int, int]:
    """64 -> (4, 4): the base size of the first feature map and how many times it doubles."""
    if resolution not in SUPPORTED_RESOLUTIONS:
        valid = ", ".join(map(str, SUPPORTED_RESOLUTIONS))
        raise ValueError(f"resolution {resolution} is not supported; use one of {valid} (4 or 7 doubled)")
    base = 7 if resolution % 7 == 0 else 4
    return base, int(math.log2(resolution // base))


from facegen.models import dcgan, judge, msggan, resnet, stylegan, vae, vaegan  # noqa: E402  (they need split_resolution)

FAMILIES = {"dcgan": dcgan.build, "encoder": vae.build_encoder, "judge": judge.build, "msggan": msggan.build,
            "resnet": resnet.build, "stylegan": stylegan.build, "vae": vae.build, "vaegan": vaegan.build}
ENCODER_FAMILIES = ("vae", "vaegan")  # the families with an encoder E: reconstructions, latent plots, a GMM prior


def parameters(family: str) -> dict[str, object]:
    """The family's constructor arguments with their defaults (resolution, which has none, as None)."""
    signature = inspect.signature(FAMILIES[family])
    return {name: None if p.default is inspect.Parameter.empty else p.default for name, p in signature.parameters.items()}


def build(family: str, **architecture) -> dict[str, nn.Module]:
    """The family's networks by role ('G', 'D', ...), freshly initialised from the global torch seed."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known families: {', '.join(FAMILIES)}")
    return FAMILIES[family](**architecture)
