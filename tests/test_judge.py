import numpy as np
import pytest
import torch
from PIL import Image

from facegen import checkpoint as ckpt
from facegen import models
from facegen.data import open_dataset
from facegen.judge import (
    attribute_rates,
    balanced_accuracy,
    compare_rates,
    edit_success,
    format_accuracy,
    format_rates,
    load_judge,
    predict,
    resize,
    train_judge,
)

ATTRS = ["Eyeglasses", "Male", "Smiling"]


def faces(n: int, bright: bool | np.ndarray, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size, 3) noisy images, bright where `bright` is true and dark elsewhere."""
    rng = np.random.default_rng(seed)
    level = np.where(np.broadcast_to(bright, (n,)), 190, 60)[:, None, None, None]
    return np.clip(level + rng.normal(0, 25, (n, size, size, 3)), 0, 255).astype(np.uint8)


def write_glasses_celeba(root, n: int = 64, holdout: int = 16):
    """A CelebA-layout folder where Eyeglasses = bright image (40 % of faces), the rest coin flips; the last `holdout` are 'test'."""
    rng = np.random.default_rng(1)
    glasses = rng.random(n) < 0.4
    (root / "img_align_celeba").mkdir(parents=True)
    rows, partition = [], []
    for i, image in enumerate(faces(n, glasses)):
        name = f"{i + 1:06d}.png"
        Image.fromarray(image).save(root / "img_align_celeba" / name)
        rows.append(f"{name} {1 if glasses[i] else -1} " + " ".join(rng.choice(["1", "-1"], 2)))
        partition.append(f"{name} {2 if i >= n - holdout else 0}")
    (root / "list_attr_celeba.txt").write_text(f"{n}\n{' '.join(ATTRS)}\n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = write_glasses_celeba(tmp_path_factory.mktemp("glasses"))
    cache, out = tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("judge")
    report = train_judge(str(root), out, resolution=32, epochs=8, batch_size=16, lr=1e-2, base_channels=4,
                         cache_dir=cache, progress=False)
    return root, cache, out, report


def test_judge_learns_a_visible_attribute_and_reports_the_baseline(trained):
    _, _, out, report = trained
    glasses = report["attributes"]["Eyeglasses"]
    assert report["holdout_images"] == 16 and report["train_images"] == 48
    assert 0.5 <= glasses["baseline"] < 0.8  # always "no glasses" is right for most faces, not all
    assert glasses["accuracy"] >= 0.95 > glasses["baseline"] + 0.1
    assert glasses["balanced_accuracy"] >= 0.9
    assert (out / "judge.safetensors").is_file() and (out / "judge.json").is_file()
    table = format_accuracy(report)
    assert "Eyeglasses" in table and "mean" in table


def test_balanced_accuracy_sees_through_a_judge_that_always_says_no():
    truth = np.array([[True, True], [False, True], [False, True], [False, True]])
    assert balanced_accuracy(np.zeros_like(truth), truth) == [0.5, None]  # 75 % plain accuracy on the first
    assert balanced_accuracy(truth.copy(), truth) == [1.0, None]  # the second has no negatives to score
    assert balanced_accuracy(np.array([[True], [True], [False], [False]]), truth[:, :1]) == [(1 + 2 / 3) / 2]


def test_reloaded_judge_reproduces_the_holdout_report(trained):
    root, cache, out, report = trained
    C, checkpoint = load_judge(out)
    assert C.attr_names == tuple(ATTRS) and C.resolution == 32 and not C.training
    assert checkpoint.state["data"]["resolution"] == 32
    assert checkpoint.state["accuracy"]["Eyeglasses"] == report["attributes"]["Eyeglasses"]["accuracy"]
    dataset = open_dataset(str(root), 32, None, cache, progress=False)
    holdout = dataset.split_indices("holdout")
    accuracy = (predict(C, dataset.images[holdout]) == (dataset.labels[holdout] > 0)).mean(axis=0)
    assert accuracy.tolist() == [report["attributes"][a]["accuracy"] for a in ATTRS]


def test_rates_of_other_resolutions_are_resized_and_named(trained):
    C, _ = load_judge(trained[2] / "judge.safetensors")
    seen = []
    C.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    bright, dark = faces(10, True, size=48, seed=5), faces(10, False, size=48, seed=6)
    rates = attribute_rates(C, bright, batch_size=4)
    assert seen == [(32, 32)] * 3  # 10 images in batches of 4, each resized to the judge's 32 px
    assert list(rates) == ATTRS and all(0 <= r <= 1 for r in rates.values())
    assert rates["Eyeglasses"] == 1.0 and attribute_rates(C, dark)["Eyeglasses"] == 0.0
    rows = compare_rates(C, samples=dark, real=np.concatenate([bright, dark]))
    assert rows[0] == ("Eyeglasses", 50.0, 0.0)
    assert "Eyeglasses" in format_rates(rows)


class SharpnessJudge(torch.nn.Module):
    """A stand-in 32 px judge whose one attribute is pixel-level detail, which resampling destroys."""

    resolution, attr_names = 32, ("Sharp",)

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # predict reads the device from a parameter

    def forward(self, x):
        return ((x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3)) - 0.1)[:, None]  # 64 -> 32 px noise: 0.17; via 16 px: 0.03


def test_real_images_are_compared_at_the_samples_resolution():
    real = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    assert attribute_rates(SharpnessJudge(), real) == {"Sharp": 1.0}
    assert compare_rates(SharpnessJudge(), samples=resize(real, 16), real=real) == [("Sharp", 0.0, 0.0)]


def test_edit_success_counts_only_images_that_needed_the_edit(trained):
    C, _ = load_judge(trained[2])
    dark, bright = faces(6, False, seed=7), faces(6, True, seed=8)
    assert edit_success(C, dark, bright, "Eyeglasses", True) == 1.0
    assert edit_success(C, dark, dark, "Eyeglasses", True) == 0.0
    with pytest.raises(ValueError, match="already have Eyeglasses=True"):
        edit_success(C, bright, bright, "Eyeglasses", True)
    with pytest.raises(ValueError, match="no attribute 'Bald'"):
        edit_success(C, dark, bright, "Bald", True)


def test_a_judge_is_not_a_generator(trained):
    with pytest.raises(ValueError, match="has no generator"):
        ckpt.load_generator(trained[2] / "judge.safetensors")


def test_a_source_without_labels_is_refused_by_name(tmp_path):
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for i, image in enumerate(faces(4, False)):
        Image.fromarray(image).save(folder / f"{i}.png")
    with pytest.raises(ValueError, match=f"{folder} has no attribute labels"):
        train_judge(str(folder), tmp_path / "out", resolution=32, cache_dir=tmp_path / "cache", progress=False)


@pytest.mark.parametrize("resolution", [32, 56])
def test_logits_per_attribute_at_any_resolution(resolution):
    C = models.build("judge", resolution=resolution, num_attributes=5, base_channels=4)["C"]
    assert C(torch.randn(2, 3, resolution, resolution)).shape == (2, 5)
    with pytest.raises(ValueError, match="2 attribute names for num_attributes=5"):
        models.build("judge", resolution=resolution, num_attributes=5, attr_names=["a", "b"])
