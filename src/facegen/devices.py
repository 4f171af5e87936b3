"""Device, precision and memory layout chosen per hardware, overridable from the config.

bf16 autocast is used only where the CPU executes bf16 natively (avx512_bf16 or AMX): elsewhere
oneDNN emulates it and a DCGAN step runs about 3x slower than fp32 (measured on an AVX-512 Xeon
without bf16). Losses are always computed in fp32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype; None means plain fp32
    channels_last: bool

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """fp16 gradients need loss scaling; for every other precision this scaler is a pass-through."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.channels_last else module


def resolve_runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    """'auto' picks CUDA, then MPS, then CPU, and the fastest precision the hardware runs natively."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device = {device} but no CUDA device is visible; use train.device=auto or cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"train.device = {device} but MPS is not available here; use train.device=auto or cpu")
    if precision == "auto":
        if dev.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if dev.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and dev.type != "cuda":
        raise ValueError(f"train.precision = fp16 needs a CUDA device (this is {dev.type}); use bf16 or fp32")
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return Runtime(dev, amp, channels_last=dev.type in ("cpu", "cuda"))
