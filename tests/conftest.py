"""Shared tiny fixtures: every test runs offline, on CPU, against data it writes itself."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ATTRS = ["Eyeglasses", "Male", "Smiling"]


@pytest.fixture(autouse=True, scope="session")
def _isolated(tmp_path_factory):
    """Caches go to a per-session temp folder and nothing reaches the network. Session-scoped, so that it is
    in force before any module fixture trains a run (a function-scoped one came too late for those)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEGEN_CACHE", str(tmp_path_factory.getbasetemp() / "facegen-cache"))
        patch.setenv("FACEGEN_OFFLINE", "1")
        yield


def write_celeba(root: Path, n: int = 24, size: tuple[int, int] = (89, 109), seed: int = 0) -> Path:
    """A CelebA-layout folder of n smooth random images (a downsampled copy's aspect) with 3 attributes."""
    rng = np.random.default_rng(seed)
    (root / "img_align_celeba").mkdir(parents=True)
    rows = []
    for i in range(1, n + 1):
        colour = rng.integers(0, 256, 3)
        image = np.clip(colour + rng.normal(0, 30, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "img_align_celeba" / f"{i:06d}.jpg", quality=90)
        rows.append(f"{i:06d}.jpg " + " ".join(rng.choice(["1", "-1"], len(ATTRS))))
    (root / "list_attr_celeba.txt").write_text(f"{n}\n{' '.join(ATTRS)} \n" + "\n".join(rows) + "\n")
    return root


def write_mnist(root: Path, n: int = 16, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    header = b"\0\0\x08\x03" + b"".join(int(d).to_bytes(4, "big") for d in (n, 28, 28))
    (root / "train-images-idx3-ubyte").write_bytes(header + images.tobytes())
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    (root / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + n.to_bytes(4, "big") + labels.tobytes())
    return root


def write_cifar10(root: Path, n: int = 16, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, n).tolist()}
    (root / "data_batch_1").write_bytes(pickle.dumps(batch))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return root


@pytest.fixture(scope="session")
def celeba_dir(tmp_path_factory) -> Path:
    return write_celeba(tmp_path_factory.mktemp("celeba"))


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`facegen ARGV...` in-process: (exit code, stdout, stderr)."""
    from facegen.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="session")
def faces(tmp_path_factory) -> Path:
    """80 labelled CelebA-layout images: a held-out split of a few, enough for boundaries and mixtures."""
    return write_celeba(tmp_path_factory.mktemp("faces"), n=80)


@pytest.fixture(scope="session")
def vae_run(faces, tmp_path_factory) -> Path:
    """A 3-step 32 px VAE with z_dim 8 on `faces` (quick KID at its last step), shared by the encoder and latent-tool tests."""
    from facegen.config import load_config
    from facegen.train import train

    overrides = [f"data.source={faces}", "model.base_channels=4", "train.batch_size=4", "data.resolution=32", "model.z_dim=8"]
    cfg = load_config("vae64", overrides=[*overrides, "train.steps=3", "train.kid_every=3", "train.kid_samples=4"])
    return train(cfg, tmp_path_factory.mktemp("runs") / "vae", progress=False)


def top_singular_values(D: torch.nn.Module) -> list[float]:
    """The spectral norm of every conv and linear weight of D, after checking each is wrapped in spectral_norm."""
    wrapped = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert wrapped and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in wrapped)
    return [torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item() for m in wrapped]
