"""DDP through torchrun: 2 CPU processes over gloo on the tiny CelebA fixture (about 30 s on 2 cores).

Each rank's final weights and the images it trained on are observed from outside the package: a
driver script, written here, runs the `facegen` CLI under torchrun with spies on the training step
and the checkpoint writer, then dumps what it saw to rank{r}.pt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from facegen import checkpoint as ckpt
from facegen.data import BatchLoader, open_dataset

TINY = ["model.base_channels=4", "train.batch_size=4", "data.split=all", "data.resolution=32", "train.log_every=1"]
BATCH, WORLD, STEPS = 4, 2, 4  # 24 fixture images: 3 steps per epoch, so step 3 starts a new epoch

DRIVER = '''
import os, sys
from pathlib import Path

import torch

import facegen.train as T
from facegen import distributed, steps
from facegen.ada import AdaptiveAugment
from facegen.cli import main
from facegen.images import to_uint8

seen = {"x": [], "checkpoints": 0, "previews": 0, "ada": []}
update_steps, save_checkpoint, save_image = dict(steps.STEPS), T.ckpt.save, T.save_image

def spy(family):
    def spy_step(nets, opt, x_real, ctx):
        seen["nets"] = {role: distributed.unwrap(net) for role, net in nets.items()}
        seen["x"].append(torch.from_numpy(to_uint8(x_real)))
        return update_steps[family](nets, opt, x_real, ctx)
    return spy_step

def spy_save(*args, **kwargs):
    seen["checkpoints"] += 1
    return save_checkpoint(*args, **kwargs)

def spy_image(*args, **kwargs):
    seen["previews"] += 1
    return save_image(*args, **kwargs)

def spy_ada(adjust):
    def spy_update(self, step, images_per_step):
        adjust(self, step, images_per_step)
        seen["ada"].append((self.p.item(), self.rt.item()))
    return spy_update

def opposite_on_rank1(observe):
    def observe_opposite(self, real_logits):  # rank 0's D always sure of its reals, rank 1's never
        observe(self, torch.ones_like(real_logits) * (-1 if os.environ["RANK"] == "1" else 1))
    return observe_opposite

AdaptiveAugment.update = spy_ada(AdaptiveAugment.update)
if os.environ.get("ADA_OPPOSITE_RANKS"):
    AdaptiveAugment.observe = opposite_on_rank1(AdaptiveAugment.observe)
steps.STEPS.update({family: spy(family) for family in update_steps})
T.ckpt.save, T.save_image = spy_save, spy_image
code = main(sys.argv[1:])
dump = {**{role: net.state_dict() for role, net in seen["nets"].items()}, "x": seen["x"],
        "checkpoints": seen["checkpoints"], "previews": seen["previews"], "ada": seen["ada"]}
torch.save(dump, Path(os.environ["DUMP_DIR"]) / f"rank{os.environ['RANK']}.pt")
sys.exit(code)
'''


def torchrun(target: list[str], args: list[str], cache: Path, **env: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone` (a free port, so concurrent runs don't collide) with 2 single-threaded CPU ranks."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD), *target, *args]
    env = {**os.environ, "FACEGEN_CACHE": str(cache), "FACEGEN_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-4000:]}"
    return result


def train_args(source: Path, out: Path, steps: int) -> list[str]:
    overrides = [arg for key in TINY for arg in ("--set", key)]
    return ["train", "--data", str(source), *overrides, "--steps", str(steps), "--out", str(out), "--quiet"]


@pytest.fixture(scope="module")
def cache(celeba_dir, tmp_path_factory) -> Path:
    """conftest's FACEGEN_CACHE, built once here rather than once per rank."""
    root = tmp_path_factory.getbasetemp() / "facegen-cache"
    open_dataset(str(celeba_dir), 32, cache_dir=root, progress=False)  # one build, not one per rank
    return root


@pytest.fixture(scope="module")
def straight(celeba_dir, cache, tmp_path_factory) -> Path:
    """A 4-step DDP run of the CLI through the driver; rank{r}.pt sit next to the run directory."""
    root = tmp_path_factory.mktemp("ddp")
    (root / "driver.py").write_text(textwrap.dedent(DRIVER))
    torchrun([str(root / "driver.py")], train_args(celeba_dir, root / "run", STEPS), cache, DUMP_DIR=str(root))
    return root


@pytest.fixture(scope="module")
def resumed(celeba_dir, cache, tmp_path_factory) -> Path:
    """The same run as `straight`, stopped after 2 steps and resumed to 4, with `-m facegen` itself."""
    out = tmp_path_factory.mktemp("ddp-resume") / "run"
    torchrun(["-m", "facegen"], train_args(celeba_dir, out, 2), cache)
    torchrun(["-m", "facegen"], ["train", "--resume", "--steps", str(STEPS), "--out", str(out), "--quiet"], cache)
    return out


def test_ranks_see_disjoint_shards_and_end_with_equal_weights(straight, celeba_dir, cache):
    ranks = [torch.load(straight / f"rank{r}.pt") for r in range(WORLD)]

    # Weights: DDP averaged the gradients, so every parameter is bit-identical across ranks. (BatchNorm
    # running statistics are not compared: DDP broadcasts rank 0's at each forward, and the last forward
    # leaves each rank's own; only rank 0's are saved.)
    _equal_across_ranks(ranks, ("G", "D"))

    # Data: each rank trained on exactly the batches its own BatchLoader shard deals out.
    dataset = open_dataset(str(celeba_dir), 32, cache_dir=cache, progress=False)
    index_of = {image.tobytes(): i for i, image in enumerate(dataset.images)}
    assert len(index_of) == len(dataset.images), "fixture images must be distinct to identify batches"
    seen = [[sorted(index_of[image.numpy().tobytes()] for image in x) for x in rank["x"]] for rank in ranks]
    for r in range(WORLD):
        loader = BatchLoader(dataset.images, dataset.split_indices("all"), BATCH, seed=0, rank=r, world_size=WORLD)
        expected = [sorted(index_of[image.tobytes()] for image in loader.batch(step).numpy()) for step in range(STEPS)]
        assert seen[r] == expected, f"rank {r} did not train on its BatchLoader shard"
    for step in range(STEPS):
        assert not set(seen[0][step]) & set(seen[1][step]), f"both ranks saw the same image at step {step}"
    first_epoch = [i for r in range(WORLD) for step in range(3) for i in seen[r][step]]
    assert sorted(first_epoch) == list(range(len(dataset.images))), "epoch 0 must cover every image exactly once"

    # Outputs: only rank 0 writes, and what it wrote is its own state.
    assert [rank["checkpoints"] for rank in ranks] == [1, 0]
    assert ranks[0]["previews"] > 0 and ranks[1]["previews"] == 0
    run = straight / "run"
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert [p.name for p in ckpt.all_checkpoints(run)] == ["ckpt-0000004.safetensors"]
    saved = ckpt.load(run)
    for role in ("G", "D"):
        for name, value in saved.nets[role].items():
            assert torch.equal(value, ranks[0][role][name]), f"checkpoint {role}.{name} is not rank 0's"


def test_resume_under_ddp_continues_to_the_last_step(resumed):
    assert ckpt.load(resumed).state["step"] == STEPS
    assert [p.name for p in ckpt.all_checkpoints(resumed)] == ["ckpt-0000002.safetensors", "ckpt-0000004.safetensors"]
    steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # rank 0 alone rewrote the log: no duplicated records


def test_resume_under_ddp_matches_the_uninterrupted_run(straight, resumed):
    a, b = ckpt.load(straight / "run"), ckpt.load(resumed)
    for role in ("G", "D"):
        for name, value in a.nets[role].items():
            assert torch.equal(value, b.nets[role][name]), f"{role}.{name}"


def _equal_across_ranks(ranks: list[dict], roles: tuple[str, ...]) -> None:
    """Every parameter bit-identical on both ranks (BatchNorm statistics are each rank's own)."""
    for role in roles:
        for name, value in ranks[0][role].items():
            if "running_" not in name and "num_batches" not in name:
                assert torch.equal(value, ranks[1][role][name]), f"{role}.{name} differs between ranks"


@pytest.mark.parametrize("settings, roles", [
    (["model.family=vae", "model.z_dim=8"], ("E", "G")),
    (["model.family=vaegan", "model.z_dim=8"], ("E", "G", "D")),
    (["loss.r1_gamma=1", "loss.r1_every=1"], ("G", "D")),
], ids=["vae", "vaegan", "dcgan-r1"])
def test_every_update_averages_its_gradients_under_ddp(settings, roles, celeba_dir, cache, tmp_path):
    """The VAE's one backward goes through DDP; the VAE-GAN's three losses average their gradients by hand;
    R1's double backward goes through DDP too."""
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    args = train_args(celeba_dir, tmp_path / "run", 2) + [arg for key in settings for arg in ("--set", key)]
    torchrun([str(tmp_path / "driver.py")], args, cache, DUMP_DIR=str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert set(ranks[0]) >= set(roles)
    _equal_across_ranks(ranks, roles)
    assert ckpt.load(tmp_path / "run").state["step"] == 2


def test_two_ranks_steer_one_ada_p_from_the_signs_of_both(celeba_dir, cache, tmp_path):
    """r_t is summed over the ranks before p moves, so both keep one p (and one augmentation strength), even when
    their own D outputs say opposite things (the driver makes rank 0's D always sure and rank 1's never: r_t is 0 over
    both, +1 and -1 on each alone)."""
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    settings = ["data.ada_target=0.6", "data.ada_interval=1", "data.ada_kimg=0.04", "data.ada_p=0.5"]
    args = train_args(celeba_dir, tmp_path / "run", STEPS) + [arg for key in settings for arg in ("--set", key)]
    torchrun([str(tmp_path / "driver.py")], args, cache, DUMP_DIR=str(tmp_path), ADA_OPPOSITE_RANKS="1")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert len(ranks[0]["ada"]) == STEPS and ranks[0]["ada"] == ranks[1]["ada"]
    assert all(rt == 0 for _, rt in ranks[0]["ada"])
    assert [round(p, 6) for p, _ in ranks[0]["ada"]] == [0.3, 0.1, 0.0, 0.0]  # 0 < target: down by 2 x 4 / 40 a step
    _equal_across_ranks(ranks, ("G", "D"))
    assert ckpt.load(tmp_path / "run").state["ada"]["p"].item() == ranks[0]["ada"][-1][0]


def test_sync_batchnorm_on_cpu_is_a_clear_error_before_training(tmp_path):
    from facegen.config import load_config
    from facegen.distributed import World
    from facegen.train import train

    cfg = load_config(overrides=["train.sync_batchnorm=true"])
    with pytest.MonkeyPatch.context() as patch:  # pretend to be rank 0 of 2 without starting a process group
        patch.setattr("facegen.distributed.init", lambda: World(rank=0, size=2, device="cpu"))
        with pytest.raises(ValueError, match="train.sync_batchnorm needs CUDA devices"):
            train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
