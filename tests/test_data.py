"""Data layer: sources -> uint8 cache -> batches, on tiny images generated in each test."""

import gzip
import io
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.data import BatchLoader, open_cache, open_dataset, prepare
from facegen.data import cache as cache_module
from facegen.data.cache import crop_box, fit_image
from facegen.data.sources import resolve_source

ATTRS = ["Smiling", "Male", "Eyeglasses"]
SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba_subset"


def _colour(i: int) -> tuple[int, int, int]:
    """A distinct solid colour per image, so cache rows can be matched to files."""
    return (10 + 20 * i % 240, 200 - 15 * i % 200, 60)


def _write_celeba(root: Path, n: int, attr_format: str | None = "txt", size: tuple[int, int] = (24, 30),
                  identities: list[str] | None = None) -> np.ndarray:
    """A CelebA root with n solid-colour JPEGs; returns the int8 labels written, in file order."""
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        Image.new("RGB", size, _colour(i)).save(folder / name, quality=95)
    labels = np.random.default_rng(n).choice(np.array([-1, 1], dtype=np.int8), size=(n, len(ATTRS)))
    # Rows in reverse order plus a row for an absent image: labels must be matched by name, not position.
    rows = [(name, labels[i]) for i, name in reversed(list(enumerate(names)))] + [("999999.jpg", labels[0])]
    if attr_format == "txt":
        lines = [str(len(rows)), " ".join(ATTRS) + " "] + [name + " " + " ".join(f"{v:2d}" for v in row) for name, row in rows]
        (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    elif attr_format == "csv":
        lines = ["image_id," + ",".join(ATTRS)] + [name + "," + ",".join(str(v) for v in row) for name, row in rows]
        (root / "list_attr_celeba.csv").write_text("\n".join(lines) + "\n")
    if identities is not None:
        (root / "identity_CelebA.txt").write_text("".join(f"{n} {who}\n" for n, who in zip(names, identities)))
    return labels


# 1. CelebA layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("attr_format", ["txt", "csv"])
def test_celeba_cache_holds_images_labels_and_meta_in_file_order(tmp_path, attr_format):
    root = tmp_path / "celeba"
    labels = _write_celeba(root, 5, attr_format)
    dest = prepare(str(root), 8, crop=None, cache_dir=tmp_path / "cache", progress=False)

    images = np.load(dest / "images.npy")
    assert images.dtype == np.uint8 and images.shape == (5, 8, 8, 3)
    for i in range(5):  # image i is file i's colour
        assert np.abs(images[i].reshape(-1, 3).mean(0) - _colour(i)).max() < 4
    cached_labels = np.load(dest / "labels.npy")
    assert cached_labels.dtype == np.int8
    np.testing.assert_array_equal(cached_labels, labels)

    meta = json.loads((dest / "meta.json").read_text())
    assert meta["source"] == str(root.resolve())
    assert meta["count"] == 5 and meta["resolution"] == 8 and meta["crop"] is None
    assert meta["attr_names"] == ATTRS
    assert isinstance(meta["fingerprint"], str) and meta["fingerprint"]
    assert meta["skipped"] == {}


# 2. Bad files --------------------------------------------------------------------------------------


def _write_bad_files(folder: Path) -> None:
    rng = np.random.default_rng(0)
    (folder / "corrupt.jpg").write_bytes(rng.integers(0, 256, 600, dtype=np.uint8).tobytes())
    valid = folder / "noise.tmp"
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(valid, format="JPEG")
    data = valid.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    valid.unlink()
    (folder / "notes.jpg").write_text("not an image, just text with a .jpg name\n")


def test_bad_files_are_skipped_and_odd_modes_converted(tmp_path, capsys):
    folder = tmp_path / "faces"
    folder.mkdir()
    for name, colour in [("good_a.jpg", (200, 40, 40)), ("good_b.jpg", (40, 200, 40))]:
        Image.new("RGB", (24, 24), colour).save(folder / name, quality=95)
    _write_bad_files(folder)
    Image.new("L", (24, 24), 90).save(folder / "grey.png")
    Image.new("RGBA", (24, 24), (20, 30, 220, 128)).save(folder / "alpha.png")  # half transparent
    deep = np.full((24, 24), 30000, dtype=np.uint16)  # 16-bit grey at 46 % brightness
    Image.fromarray(deep).save(folder / "deep.png")
    assert Image.open(folder / "deep.png").mode.startswith("I")  # really a 16-bit file

    dest = prepare(str(folder), 8, cache_dir=tmp_path / "cache", progress=False)
    meta = json.loads((dest / "meta.json").read_text())
    assert sorted(meta["skipped"]) == ["corrupt.jpg", "notes.jpg", "truncated.jpg"]
    assert sorted(meta["converted"]) == ["alpha.png", "deep.png", "grey.png"]
    assert meta["count"] == 5

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 skipped" in err[0] and "3 converted" in err[0]

    images = np.load(dest / "images.npy")
    kept = sorted(["good_a.jpg", "good_b.jpg", "grey.png", "alpha.png", "deep.png"])
    assert images.shape == (5, 8, 8, 3)
    assert abs(images[kept.index("deep.png")].mean() - 30000 / 65535 * 255) < 2  # scaled, not clipped to white
    assert abs(images[kept.index("grey.png")].mean() - 90) < 2
    on_white = np.array([20, 30, 220]) * 128 / 255 + 255 * 127 / 255  # composited on white, not alpha dropped
    np.testing.assert_allclose(images[kept.index("alpha.png")].reshape(-1, 3).mean(0), on_white, atol=2)


def test_zero_usable_images_is_an_error_and_leaves_no_cache(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    _write_bad_files(folder)
    with pytest.raises(ValueError, match="no usable images") as err:
        prepare(str(folder), 8, cache_dir=tmp_path / "cache", progress=False)
    assert str(folder) in str(err.value)
    assert list((tmp_path / "cache" / "data").iterdir()) == []  # no cache, no temporary directory


@pytest.mark.parametrize("case", ["empty folder", "missing folder", "empty celeba"])
def test_empty_or_missing_source_names_the_path(tmp_path, case):
    path = tmp_path / "source"
    if case == "empty folder":
        path.mkdir()
    elif case == "empty celeba":
        (path / "img_align_celeba").mkdir(parents=True)
    with pytest.raises(ValueError) as err:
        prepare(str(path), 8, cache_dir=tmp_path / "cache", progress=False)
    assert str(path) in str(err.value)


# 3. Attribute file errors -------------------------------------------------------------------------


def test_attribute_row_with_wrong_column_count_names_file_and_line(tmp_path):
    root = tmp_path / "celeba"
    _write_celeba(root, 4)
    attr_file = root / "list_attr_celeba.txt"
    lines = attr_file.read_text().splitlines()
    lines[4] = lines[4].rsplit(" ", 1)[0]  # file line 5 loses its last attribute
    lines.insert(3, "")  # a blank line before it must not shift the line number
    attr_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 6") as err:
        resolve_source(str(root), tmp_path / "cache")
    assert str(attr_file) in str(err.value)


def test_attribute_file_missing_an_image_names_the_image(tmp_path):
    root = tmp_path / "celeba"
    _write_celeba(root, 4)
    attr_file = root / "list_attr_celeba.txt"
    lines = [line for line in attr_file.read_text().splitlines() if not line.startswith("000003.jpg")]
    attr_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="000003.jpg"):
        resolve_source(str(root), tmp_path / "cache")


# 4. Crops ------------------------------------------------------------------------------------------


def test_crop_box_scales_celeba_crops_and_otherwise_uses_own_pixels():
    assert crop_box(178, 218, 108) == (35, 55, 143, 163)  # official size: crop as given
    assert crop_box(89, 109, 108) == (17, 27, 71, 81)  # half-size copy: 54 px, centred
    assert crop_box(40, 30, 20) == (10, 5, 30, 25)  # other aspect: the image's own pixels
    assert crop_box(40, 30, None) == (5, 0, 35, 30)  # largest centred square
    assert crop_box(89, 109, None) == (0, 10, 89, 99)
    assert crop_box(20, 30, 100) == (0, 5, 20, 25)  # never larger than the image


def test_fit_image_keeps_only_the_scaled_crop_of_a_downsampled_celeba_image():
    pixels = np.zeros((109, 89, 3), dtype=np.uint8)
    pixels[:] = (0, 0, 255)
    pixels[27:81, 17:71] = (255, 0, 0)  # the 54 px centre that crop 108 keeps at half size
    out = fit_image(Image.fromarray(pixels), 16, 108)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    # Lanczos blends a little across the crop's edge; an unscaled crop would show whole blue bands.
    assert out[..., 0].min() > 200 and out[..., 2].max() < 60


# 5. MNIST and CIFAR-10 -----------------------------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("gzipped", [False, True])
def test_mnist_idx_files_become_rgb_with_one_hot_labels(tmp_path, gzipped):
    folder = tmp_path / "mnist"
    folder.mkdir()
    digits = np.array([3, 0, 9, 3, 7], dtype=np.uint8)
    images = np.repeat((20 + 40 * np.arange(5, dtype=np.uint8))[:, None, None], 28, 1).repeat(28, 2)
    suffix, write = (".gz", gzip.compress) if gzipped else ("", bytes)
    (folder / f"train-images-idx3-ubyte{suffix}").write_bytes(write(_idx(images)))
    (folder / f"train-labels-idx1-ubyte{suffix}").write_bytes(write(_idx(digits)))
    (folder / f"t10k-images-idx3-ubyte{suffix}").write_bytes(write(_idx(images[:2])))  # the test set is not used
    (folder / f"t10k-labels-idx1-ubyte{suffix}").write_bytes(write(_idx(digits[:2])))

    dataset = open_dataset(str(folder), 8, cache_dir=tmp_path / "cache", progress=False)
    assert dataset.images.shape == (5, 8, 8, 3) and dataset.images.dtype == np.uint8
    for i in range(5):
        assert np.abs(dataset.images[i].astype(int) - int(images[i, 0, 0])).max() <= 1  # grey in all 3 channels
    expected = -np.ones((5, 10), dtype=np.int8)
    expected[np.arange(5), digits] = 1
    np.testing.assert_array_equal(dataset.labels, expected)
    assert dataset.attr_names == [f"digit_{d}" for d in range(10)]


CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def _cifar_batch(n: int) -> tuple[dict, np.ndarray]:
    """n solid images in CIFAR's planar layout (1024 R, 1024 G, 1024 B) and their RGB colours."""
    colours = np.array([(10 + 50 * i, 100, 200 - 30 * i) for i in range(n)], dtype=np.uint8)
    data = np.repeat(colours, 1024, axis=1)  # (n, 3) -> (n, 3072): each channel plane constant
    return {b"batch_label": b"training batch 1 of 5", b"data": data, b"labels": [2, 0, 9, 2][:n]}, colours


class _Python2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2's str, as in CIFAR-10's own batches (made with Python 2's cPickle)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_python2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = dispatch[bytes] = _save_python2_str


def _dumps(obj, protocol: int | str) -> bytes:
    if protocol == "python2":
        out = io.BytesIO()
        _Python2Pickler(out, protocol=2).dump(obj)
        return out.getvalue()
    return pickle.dumps(obj, protocol=protocol)


@pytest.mark.parametrize("protocol", ["python2", 4, 5])
def test_cifar10_batches_become_rgb_with_one_hot_labels(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch, colours = _cifar_batch(4)
    (folder / "data_batch_1").write_bytes(_dumps(batch, protocol))
    (folder / "batches.meta").write_bytes(_dumps({b"label_names": CIFAR_NAMES}, protocol))

    dataset = open_dataset(str(tmp_path), 16, cache_dir=tmp_path / "cache", progress=False)
    assert dataset.images.shape == (4, 16, 16, 3) and dataset.images.dtype == np.uint8
    for i in range(4):
        np.testing.assert_allclose(dataset.images[i].reshape(-1, 3).mean(0), colours[i], atol=1)
    expected = -np.ones((4, 10), dtype=np.int8)
    expected[np.arange(4), [2, 0, 9, 2]] = 1
    np.testing.assert_array_equal(dataset.labels, expected)
    assert dataset.attr_names[:3] == ["airplane", "automobile", "bird"]


class _RunsCode:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_cifar_batch_referencing_other_globals_is_refused(tmp_path):
    folder = tmp_path / "cifar"
    folder.mkdir()
    marker = tmp_path / "code-ran"
    batch, _ = _cifar_batch(2)
    batch[b"batch_label"] = _RunsCode(f"touch {marker}")
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError, match="data_batch_1"):
        prepare(str(folder), 8, cache_dir=tmp_path / "cache", progress=False)
    assert not marker.exists()


# 6. Cache reuse and mismatches --------------------------------------------------------------------


def test_second_prepare_reuses_the_cache_and_a_changed_source_rebuilds_it(tmp_path, monkeypatch):
    root = tmp_path / "celeba"
    _write_celeba(root, 3, attr_format=None)
    dest = prepare(str(root), 8, cache_dir=tmp_path / "cache", progress=False)
    stamp = (dest / "images.npy").stat().st_mtime_ns

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache was rebuilt although the source did not change")

    with monkeypatch.context() as patch:
        patch.setattr(cache_module, "_decode_all", no_decoding)
        assert prepare(str(root), 8, cache_dir=tmp_path / "cache", progress=False) == dest
    assert (dest / "images.npy").stat().st_mtime_ns == stamp

    Image.new("RGB", (24, 30), _colour(3)).save(root / "img_align_celeba" / "000004.jpg")
    assert prepare(str(root), 8, cache_dir=tmp_path / "cache", progress=False) == dest
    assert open_cache(dest).meta["count"] == 4 and len(open_cache(dest).images) == 4


def test_open_dataset_on_a_cache_of_another_resolution_names_both(tmp_path):
    root = tmp_path / "celeba"
    _write_celeba(root, 2, attr_format=None)
    dest = prepare(str(root), 8, cache_dir=tmp_path / "cache", progress=False)
    assert open_dataset(str(dest), 8).resolution == 8
    with pytest.raises(ValueError, match=r"8 px.*16 px"):
        open_dataset(str(dest), 16)


# 7. Holdout split ----------------------------------------------------------------------------------


def _identities() -> list[str]:
    """40 images of 20 people, two each."""
    return [str(100 + i // 2) for i in range(40)]


def _assert_partition(dataset) -> None:
    train, holdout, everything = (dataset.split_indices(s) for s in ("train", "holdout", "all"))
    assert len(train) and len(holdout)
    assert not set(train) & set(holdout)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, holdout])), everything)
    np.testing.assert_array_equal(everything, np.arange(len(dataset.images)))


def test_holdout_keeps_each_identity_on_one_side(tmp_path):
    root = tmp_path / "celeba"
    _write_celeba(root, 40, attr_format=None, size=(20, 20), identities=_identities())
    dataset = open_dataset(str(root), 8, cache_dir=tmp_path / "cache", progress=False)
    _assert_partition(dataset)
    people = np.array(_identities())
    for person in set(people):
        assert len(set(dataset.holdout[people == person])) == 1, f"identity {person} is in both splits"


def test_holdout_without_identity_file_is_by_file(tmp_path):
    root = tmp_path / "celeba"
    _write_celeba(root, 40, attr_format=None, size=(20, 20))
    dataset = open_dataset(str(root), 8, cache_dir=tmp_path / "cache", progress=False)
    _assert_partition(dataset)
    assert "images" in dataset.meta["holdout_rule"]
    # Without the identity file, consecutive pairs (the same people above) are no longer kept together.
    pairs = dataset.holdout.reshape(20, 2)
    assert (pairs[:, 0] != pairs[:, 1]).any()


# 8. BatchLoader ------------------------------------------------------------------------------------


def _numbered_images(n: int) -> np.ndarray:
    """uint8 (n, 2, 2, 3) where every pixel of image i is i, so a batch tells which images it holds."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 2, 2, 3)).copy()


def _ids(batch) -> list[int]:
    return batch[:, 0, 0, 0].tolist()


def test_batches_are_a_function_of_seed_and_step():
    images = _numbered_images(40)
    a, b = BatchLoader(images, np.arange(40), 4, seed=7), BatchLoader(images, np.arange(40), 4, seed=7)
    for step in (0, 1, 2, 13, 25):  # b jumps straight to each step, as a resumed run would
        assert _ids(a.batch(step)) == _ids(b.batch(step))
    other = BatchLoader(images, np.arange(40), 4, seed=8)
    assert [_ids(a.batch(s)) for s in range(10)] != [_ids(other.batch(s)) for s in range(10)]


def test_each_epoch_is_a_new_permutation_of_the_split():
    indices = np.arange(3, 40, 2)  # a split: only these images may appear
    loader = BatchLoader(_numbered_images(40), indices, 3, seed=0)
    first, second = loader.epoch_order(0).copy(), loader.epoch_order(1).copy()
    np.testing.assert_array_equal(np.sort(first), indices)
    np.testing.assert_array_equal(np.sort(second), indices)
    assert not np.array_equal(first, second)
    seen = [i for step in range(loader.steps_per_epoch) for i in _ids(loader.batch(step))]
    assert len(seen) == len(set(seen)) and set(seen) <= set(indices.tolist())


def test_two_ranks_get_disjoint_images_in_the_same_step():
    images = _numbered_images(40)
    ranks = [BatchLoader(images, np.arange(40), 4, seed=3, rank=r, world_size=2) for r in (0, 1)]
    assert ranks[0].steps_per_epoch == 5
    for step in range(12):
        first, second = (_ids(loader.batch(step)) for loader in ranks)
        assert len(first) == len(second) == 4
        assert not set(first) & set(second)


@pytest.mark.parametrize("n, batch_size, world_size, steps", [(40, 4, 1, 10), (41, 4, 1, 10), (40, 3, 2, 6), (9, 4, 2, 1)])
def test_steps_per_epoch_counts_full_batches_on_every_rank(n, batch_size, world_size, steps):
    loader = BatchLoader(_numbered_images(n), np.arange(n), batch_size, seed=0, world_size=world_size)
    assert loader.steps_per_epoch == steps


def test_mirroring_flips_a_seeded_half_of_each_batch_and_leaves_the_cache_alone():
    images = np.random.default_rng(0).integers(0, 256, (64, 4, 4, 3), dtype=np.uint8)
    cache = images.copy()
    plain = BatchLoader(images, np.arange(64), 32, seed=5)
    mirrored, again = (BatchLoader(images, np.arange(64), 32, seed=5, mirror=True) for _ in range(2))
    flipped = 0
    for step in range(6):
        a, b = plain.batch(step).numpy(), mirrored.batch(step).numpy()
        same = [np.array_equal(x, y) for x, y in zip(a, b)]
        assert all(s or np.array_equal(x[:, ::-1], y) for s, x, y in zip(same, a, b))  # each image as it is or x-flipped
        flipped += len(same) - sum(same)
        np.testing.assert_array_equal(b, again.batch(step).numpy())  # a resumed run flips the same faces
    assert 0.35 < flipped / (6 * 32) < 0.65
    np.testing.assert_array_equal(images, cache)


def test_too_few_images_for_one_batch_is_an_error():
    with pytest.raises(ValueError, match="batch"):
        BatchLoader(_numbered_images(7), np.arange(7), 4, seed=0, world_size=2)


# 9. Synthetic source -------------------------------------------------------------------------------


def test_synthetic_source_is_written_once_and_reused(tmp_path, monkeypatch):
    try:
        import facegen.data.synthetic as synthetic
    except Exception as err:  # being written by someone else; don't fail this file for it
        pytest.skip(f"facegen.data.synthetic is not importable yet: {err}")
    raw = resolve_source("synthetic:8@3", tmp_path)
    assert raw.kind == "celeba" and len(raw) == 8
    assert raw.path == tmp_path / "sources" / "synthetic-8-seed3"
    assert (raw.path / "img_align_celeba").is_dir() and (raw.path / "list_attr_celeba.txt").is_file()
    assert raw.labels is not None and raw.labels.shape == (8, len(raw.attr_names))

    def no_writing(*args, **kwargs):
        raise AssertionError("the synthetic set was written again")

    monkeypatch.setattr(synthetic, "write_synthetic_celeba", no_writing)
    again = resolve_source("synthetic:8@3", tmp_path)
    assert again.path == raw.path and again.fingerprint == raw.fingerprint


@pytest.mark.parametrize("spec", ["synthetic:abc", "synthetic:", "synthetic:8@x"])
def test_malformed_synthetic_spec_is_an_error(tmp_path, spec):
    with pytest.raises(ValueError, match="synthetic:N"):
        resolve_source(spec, tmp_path)


# 10. CelebA as downloaded: zips, and random subsets ------------------------------------------------


def _cache_content(dest: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.load(dest / "images.npy"), np.load(dest / "labels.npy"), np.load(dest / "holdout.npy")


def _zip_folder(root: Path, archive: Path, prefix: str = "", skip: tuple[str, ...] = ()) -> Path:
    """Zip a CelebA root's files as `prefix + relative path`, leaving out the names in `skip`."""
    import zipfile

    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(root.rglob("*")):
            if f.is_file() and f.name not in skip:
                z.write(f, prefix + f.relative_to(root).as_posix())
    return archive


def test_official_zip_prepares_to_the_same_cache_as_the_unzipped_folder(tmp_path):
    root = tmp_path / "celeba"
    _write_celeba(root, 30, identities=[f"p{i % 7}" for i in range(30)])
    (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {int(i % 5 == 0)}\n" for i in range(30)))
    # The official drive: Img/img_align_celeba.zip with the annotations in Anno/ and Eval/.
    (tmp_path / "drive" / "Img").mkdir(parents=True)
    (tmp_path / "drive" / "Anno").mkdir()
    (tmp_path / "drive" / "Eval").mkdir()
    archive = _zip_folder(root, tmp_path / "drive" / "Img" / "img_align_celeba.zip", skip=(
        "list_attr_celeba.txt", "identity_CelebA.txt", "list_eval_partition.txt"))
    for name, folder in (("list_attr_celeba.txt", "Anno"), ("identity_CelebA.txt", "Anno"), ("list_eval_partition.txt", "Eval")):
        (tmp_path / "drive" / folder / name).write_bytes((root / name).read_bytes())

    folder_cache = prepare(str(root), 8, cache_dir=tmp_path / "cache", progress=False)
    zip_cache = prepare(str(archive), 8, cache_dir=tmp_path / "cache", progress=False)
    assert folder_cache != zip_cache
    for a, b in zip(_cache_content(folder_cache), _cache_content(zip_cache)):
        np.testing.assert_array_equal(a, b)
    meta = json.loads((zip_cache / "meta.json").read_text())
    assert meta["holdout_rule"] == "official val+test partition" and meta["attr_names"] == ATTRS


def test_kaggle_archive_with_csv_annotations_inside_reads_like_the_folder(tmp_path):
    root = tmp_path / "celeba"
    _write_celeba(root, 12, attr_format="csv")
    (root / "list_eval_partition.csv").write_text("image_id,partition\n" + "".join(f"{i + 1:06d}.jpg,{int(i < 3)}\n" for i in range(12)))
    folder = root / "img_align_celeba"  # Kaggle nests the images one folder deeper
    archive = tmp_path / "archive.zip"
    import zipfile

    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"img_align_celeba/img_align_celeba/{f.name}")
        for name in ("list_attr_celeba.csv", "list_eval_partition.csv"):
            z.write(root / name, name)
    for a, b in zip(_cache_content(prepare(str(root), 8, cache_dir=tmp_path / "cache", progress=False)),
                    _cache_content(prepare(str(archive), 8, cache_dir=tmp_path / "cache", progress=False))):
        np.testing.assert_array_equal(a, b)


def test_a_corrupt_zip_is_one_clear_line(tmp_path, capsys):
    from conftest import run_cli

    root = tmp_path / "celeba"
    _write_celeba(root, 4)
    whole = _zip_folder(root, tmp_path / "whole.zip").read_bytes()
    (tmp_path / "img_align_celeba.zip").write_bytes(whole[: len(whole) // 2])
    code, _, err = run_cli(capsys, "prepare", str(tmp_path / "img_align_celeba.zip"), "--resolution", "32",
                           "--cache", str(tmp_path / "cache"), "--quiet")
    assert code == 2 and "is not a readable zip archive" in err and len(err.strip().splitlines()) == 1


def test_a_damaged_member_is_skipped_and_named(tmp_path):
    import zipfile

    root = tmp_path / "celeba"
    _write_celeba(root, 6)
    archive = _zip_folder(root, tmp_path / "img_align_celeba.zip")
    raw = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as z:  # flip bytes inside the third image's data: its CRC check fails
        info = z.getinfo("img_align_celeba/000003.jpg")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + 100 : start + 110] = bytes(10)
    archive.write_bytes(bytes(raw))
    meta = json.loads((prepare(str(archive), 8, cache_dir=tmp_path / "cache", progress=False) / "meta.json").read_text())
    assert meta["count"] == 5 and list(meta["skipped"]) == ["img_align_celeba/000003.jpg"]


def test_limit_takes_a_seeded_random_subset_recorded_in_meta(tmp_path, capsys):
    from conftest import run_cli

    root = tmp_path / "celeba"
    labels = _write_celeba(root, 20)
    first = prepare(str(root), 8, cache_dir=tmp_path / "cache", progress=False, limit=6, seed=3)
    again = prepare(str(root), 8, cache_dir=tmp_path / "cache", progress=False, limit=6, seed=3)
    other = prepare(str(root), 8, cache_dir=tmp_path / "cache", progress=False, limit=6, seed=4)
    assert first == again and first != other
    meta = json.loads((first / "meta.json").read_text())
    assert meta["count"] == 6 and meta["subset"] == {"limit": 6, "seed": 3, "of": 20}
    images, cached_labels, _ = _cache_content(first)
    picked = [next(i for i in range(20) if np.abs(image.reshape(-1, 3).mean(0) - _colour(i)).max() < 4) for image in images]
    assert picked == sorted(picked) and len(set(picked)) == 6  # source order, no repeats, labels follow the images
    np.testing.assert_array_equal(cached_labels, labels[picked])
    assert not np.array_equal(_cache_content(other)[0], images)
    code, _, err = run_cli(capsys, "prepare", str(root), "--resolution", "32", "--seed", "1", "--quiet")
    assert code == 2 and "--seed picks the random subset of --limit N" in err
    code, _, err = run_cli(capsys, "prepare", str(root), "--resolution", "32", "--limit", "0", "--quiet")
    assert code == 2 and "--limit 0: take at least one image" in err


# One realistic test on the shared CelebA subset (read only, never prepared in full) ----------------


@pytest.mark.skipif(not (SUBSET / "list_attr_celeba.txt").is_file(), reason=f"{SUBSET} is absent")
def test_real_celeba_subset_reads_labels_identities_and_crops(tmp_path):
    raw = resolve_source(str(SUBSET), tmp_path / "cache")
    assert raw.kind == "celeba" and len(raw) == len(list((SUBSET / "img_align_celeba").glob("*.jpg")))
    assert len(raw.attr_names) == 40 and raw.labels.shape == (len(raw), 40)
    first = raw.files[0].name
    row = next(line.split() for line in (SUBSET / "list_attr_celeba.txt").read_text().splitlines() if line.startswith(first))
    np.testing.assert_array_equal(raw.labels[0], [int(v) for v in row[1:]])
    identity = next(line.split()[1] for line in (SUBSET / "identity_CelebA.txt").read_text().splitlines() if line.startswith(first))
    assert raw.groups[0] == identity

    with Image.open(raw.files[0]) as image:
        assert image.size == (89, 109)
    array, note = cache_module._decode_file(raw.files[0], 32, 108)
    assert note is None and array.shape == (32, 32, 3) and array.dtype == np.uint8
