"""Checkpoints that rebuild their model by themselves and never unpickle anything.

A checkpoint is one safetensors file: every tensor (weights, optimizer moments, RNG states, the
fixed preview noise) is a named tensor, and everything else (family, constructor arguments, step,
optimizer hyper-parameters) is JSON in the file's metadata. Writes go to a temporary file that is
renamed into place, so a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import collections
import copy
import errno
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from facegen import files, models
from facegen.data import FaceDataset, open_dataset

FORMAT = "facegen-checkpoint"
VERSION = 1
PATTERN = re.compile(r"ckpt-(\d+)\.safetensors")


@dataclass
class Checkpoint:
    family: str
    architecture: dict[str, Any]  # constructor arguments, resolution included
    nets: dict[str, dict[str, torch.Tensor]]  # role ('G', 'D', 'E', 'G_ema', 'E_ema') -> state dict
    state: dict[str, Any] = field(default_factory=dict)  # step, epoch, optimizers, rng, fixed_z, config ...
    path: Path | None = None

    def dataset(self, source: str | None = None, progress: bool = True) -> FaceDataset:
        """The run's training data (or another source) prepared at the run's resolution and crop."""
        data = self.state["config"]["data"]
        return open_dataset(source or data["source"], self.architecture["resolution"], data["crop"], data["cache_dir"], progress=progress)

    def build(self, roles: tuple[str, ...] | None = None) -> dict[str, nn.Module]:
        """The networks with their weights loaded, in eval mode."""
        built = models.build(self.family, **self.architecture)
        built.update({ema_role(role): copy.deepcopy(net) for role, net in list(built.items()) if ema_role(role) in self.nets})
        out = {}
        for role in roles or tuple(self.nets):
            if role not in self.nets:
                raise ValueError(f"checkpoint {self.path} has no {role!r} network (it has {', '.join(self.nets)})")
            try:
                built[role].load_state_dict(self.nets[role])
            except RuntimeError as err:
                first = (str(err).strip().splitlines()[1] if "\n" in str(err) else str(err)).strip()
                first = first if len(first) < 160 else first[:150] + " ..."
                raise ValueError(
                    f"checkpoint {self.path} does not match its recorded {self.family} model: {first}; "
                    "it was written by another model or version"
                ) from None
            out[role] = built[role].eval()
            if role.startswith("G") and "condition_labels" in self.state:  # a conditional G samples its data's label rows
                out[role].label_table, out[role].condition_names = self.state["condition_labels"], self.state["conditions"]
        return out


def _split(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move the tensors of a nested dict/list into `tensors`, leaving JSON with {'__tensor__': name} in their place."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _split(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        return {k: _join(v, tensors) for k, v in obj["__dict__"]}  # keys keep their type (optimizer states use ints)
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def save(path: str | Path, checkpoint: Checkpoint) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split({"nets": checkpoint.nets, "state": checkpoint.state}, "t", tensors)
    header = {"format": FORMAT, "version": VERSION, "family": checkpoint.family, "architecture": checkpoint.architecture}
    metadata = {"facegen": json.dumps(header), "skeleton": json.dumps(skeleton)}
    data = safetensors.torch.save(tensors, metadata=metadata)
    try:
        files.write_bytes_atomic(path, data)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise ValueError(f"no room to write {path.name} in {path.parent} ({os.strerror(err.errno)}; it needs "
                             f"{len(data) / 1e6:.1f} MB): the earlier checkpoints there are intact; free space and --resume") from None
        raise
    return path


def _read(path: Path, with_tensors: bool) -> tuple[dict, dict[str, torch.Tensor]]:
    """A checkpoint file's header and skeleton (and its tensors), or a one-line error for a foreign file."""
    try:
        with safetensors.safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
    except Exception:  # noqa: BLE001  (safetensors raises several types for foreign files)
        raise ValueError(f"{path} is not a readable safetensors file (damaged, truncated or another format); "
                         "pass a run directory or an intact ckpt-*.safetensors") from None
    header = json.loads(metadata.get("facegen", "{}"))
    if header.get("format") != FORMAT:
        raise ValueError(f"{path} is a safetensors file but not a facegen checkpoint (no facegen metadata); it belongs to another program")
    if header["version"] > VERSION:
        raise ValueError(f"{path} has checkpoint format {header['version']}, newer than this facegen ({VERSION}); upgrade facegen")
    return {**header, "skeleton": json.loads(metadata["skeleton"])}, tensors


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint file or the newest one of a run directory."""
    path = resolve(path)
    header, tensors = _read(path, with_tensors=True)
    if header["family"] not in models.FAMILIES:
        raise ValueError(f"{path} holds a {header['family']!r} model, which this facegen does not know ({', '.join(models.FAMILIES)})")
    body = _join(header["skeleton"], tensors)
    return Checkpoint(header["family"], header["architecture"], body["nets"], body["state"], path)


def read_state(path: str | Path) -> dict[str, Any]:
    """A checkpoint's plain state (step, train_seconds, config ...) from its metadata alone, tensors left as None:
    cheap enough to read for every run of a table."""
    header, _ = _read(resolve(path), with_tensors=False)
    return _join(header["skeleton"], collections.defaultdict(lambda: None))["state"]


def resolve(path: str | Path) -> Path:
    """A checkpoint file as given, or the newest checkpoint of a run directory."""
    path = Path(path)
    if path.is_dir():
        newest = latest(path)
        if newest is None:
            raise ValueError(f"run directory {path} has no checkpoints yet (looked in {path / 'checkpoints'}); train it first")
        return newest
    if not path.is_file():
        raise ValueError(f"{path} does not exist; pass a run directory or a checkpoint file")
    return path


def all_checkpoints(run_dir: Path) -> list[Path]:
    """A run's checkpoints, oldest first."""
    found = [p for p in (run_dir / "checkpoints").glob("ckpt-*.safetensors") if PATTERN.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(PATTERN.fullmatch(p.name)[1]))


def latest(run_dir: Path) -> Path | None:
    found = all_checkpoints(Path(run_dir))
    return found[-1] if found else None


def ema_role(role: str) -> str:
    """Where a network's EMA copy is kept: 'G' -> 'G_ema'."""
    return f"{role}_ema"


def autoencoder_roles(checkpoint: Checkpoint) -> tuple[str, str]:
    """The encoder and decoder to use together: both EMA copies when the run kept them, else the trained pair.
    An encoder's latents fit the decoder it trained with: runs from before encoders were averaged hold only
    G_ema, and their raw encoder into G_ema reconstructed worse than the raw pair (held-out MSE 0.0275 vs 0.0222)."""
    return ("E_ema", "G_ema") if {"E_ema", "G_ema"} <= set(checkpoint.nets) else ("E", "G")


def load_generator(path: str | Path) -> tuple[nn.Module, Checkpoint]:
    """The generator to sample from (the EMA copy when the run kept one), in eval mode."""
    checkpoint = load(path)
    role = "G_ema" if "G_ema" in checkpoint.nets else "G"
    if role not in checkpoint.nets:
        raise ValueError(f"{checkpoint.path} has no generator (it holds {', '.join(checkpoint.nets)}); pass a generator checkpoint")
    return checkpoint.build((role,))[role], checkpoint


def load_autoencoder(path: str | Path) -> tuple[nn.Module, nn.Module, Checkpoint]:
    """Encoder and decoder of a VAE or VAE-GAN run (a pair: see autoencoder_roles), in eval mode."""
    checkpoint = load(path)
    if "E" not in checkpoint.nets:
        raise ValueError(f"{checkpoint.path} holds a {checkpoint.family} model, which has no encoder; "
                         f"this needs a run of a family with one ({', '.join(models.ENCODER_FAMILIES)})")
    e_role, g_role = autoencoder_roles(checkpoint)
    nets = checkpoint.build((e_role, g_role))
    return nets[e_role], nets[g_role], checkpoint
