"""Where images come from: a CelebA root (or its zip, as downloaded), any image folder, MNIST idx files,
CIFAR-10 batches or synthetic faces.

A source is resolved into a `RawSource`: the files to decode (or arrays already decoded), attribute
labels, and what is needed for a split that keeps people apart. Decoding happens in `cache.py`.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import pickle
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
SOURCE_HELP = ("a CelebA root or its img_align_celeba.zip (or Kaggle's archive), a folder of images, MNIST idx files, "
               "CIFAR-10 python batches or synthetic:N[@seed]")
ANNOTATIONS = ("list_attr_celeba.txt", "list_attr_celeba.csv", "identity_CelebA.txt", "list_eval_partition.txt",
               "list_eval_partition.csv")
MAX_MEMBER_BYTES = 64 << 20  # a zipped face larger than this is skipped unread (a zip bomb's member would be GBs)


@dataclass
class RawSource:
    kind: str  # celeba | folder | mnist | cifar10
    path: Path
    files: list[Path] | None  # images to decode (celeba, folder); member names when `archive` is set
    arrays: np.ndarray | None  # uint8 (N, H, W, C) already decoded (mnist, cifar10)
    labels: np.ndarray | None  # int8 (N, A) of +1 / -1
    attr_names: list[str]
    groups: list[str] | None  # identity of each image, so a held-out split never shares a person
    official_holdout: np.ndarray | None  # bool (N,): val or test in list_eval_partition.txt
    fingerprint: str  # names and sizes of the inputs: a changed source means a new cache
    archive: Path | None = None  # the zip that `files` are members of

    def __len__(self) -> int:
        return len(self.files) if self.files is not None else len(self.arrays)

    def file_name(self, i: int) -> str:
        """Image i's name as the user knows it: relative to the folder, or its path inside the zip."""
        return str(self.files[i]) if self.archive else str(self.files[i].relative_to(self.path))


def take_subset(raw: RawSource, limit: int, seed: int) -> RawSource:
    """A random subset of `limit` images (in source order), the same for the same seed."""
    if limit >= len(raw):
        return raw
    keep = np.sort(np.random.default_rng(seed).choice(len(raw), limit, replace=False))
    pick = lambda values: None if values is None else [values[i] for i in keep]  # noqa: E731
    return dataclasses.replace(
        raw, files=pick(raw.files), arrays=None if raw.arrays is None else raw.arrays[keep],
        labels=None if raw.labels is None else raw.labels[keep], groups=pick(raw.groups),
        official_holdout=None if raw.official_holdout is None else raw.official_holdout[keep],
        fingerprint=f"{raw.fingerprint}:limit={limit}:seed={seed}",
    )


def resolve_source(spec: str, cache_root: Path, progress: bool = True) -> RawSource:
    """Recognise what `spec` names and read its file list and labels."""
    match = re.fullmatch(r"synthetic:(\d+)(?:@(\d+))?", spec)
    if match:
        return _celeba(_synthetic_root(cache_root, int(match[1]), int(match[2] or 0), progress))
    if spec.startswith("synthetic"):
        raise ValueError(f"data source {spec!r} is malformed; write synthetic:N or synthetic:N@SEED, e.g. synthetic:10000")
    path = Path(spec).expanduser()
    if not path.exists():
        raise ValueError(f"data source {spec} does not exist; pass {SOURCE_HELP}")
    if (path / "img_align_celeba").is_dir():
        return _celeba(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        return _celeba_zip(path)
    if _mnist_images(path):
        return _mnist(path)
    if (path / "data_batch_1").is_file() or (path / "cifar-10-batches-py").is_dir():
        return _cifar10(path if (path / "data_batch_1").is_file() else path / "cifar-10-batches-py")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise ValueError(f"no images found in {path} (looked for {', '.join(IMAGE_EXTENSIONS)} recursively); pass {SOURCE_HELP}")
        return RawSource("folder", path, files, None, None, [], None, None, _fingerprint(path, files))
    raise ValueError(f"data source {spec} is a file facegen cannot read; pass {SOURCE_HELP}")


def _synthetic_root(cache_root: Path, n: int, seed: int, progress: bool) -> Path:
    from facegen.data.synthetic import write_synthetic_celeba

    if n < 1:
        raise ValueError("synthetic:N needs N >= 1, e.g. synthetic:10000")
    root = cache_root / "sources" / f"synthetic-{n}-seed{seed}"
    if not (root / "list_attr_celeba.txt").is_file():
        write_synthetic_celeba(root, n, seed=seed, progress=progress)
    return root


def _fingerprint(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha1()
    for f in files:
        digest.update(f"{f.relative_to(root)}\0{f.stat().st_size}\n".encode())
    return digest.hexdigest()


# CelebA --------------------------------------------------------------------------------------------


def _celeba(root: Path) -> RawSource:
    files = sorted(p for p in (root / "img_align_celeba").iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images in {root / 'img_align_celeba'}; a CelebA root holds img_align_celeba/*.jpg")
    annotations = {n: root / n for n in ANNOTATIONS if (root / n).is_file()}
    fingerprint = _fingerprint(root, files + list(annotations.values()))
    return _celeba_source(root, files, lambda name: annotations[name].read_text(errors="replace") if name in annotations else None,
                          fingerprint)


def _celeba_zip(path: Path) -> RawSource:
    """CelebA as downloaded: img_align_celeba.zip (annotations beside it, or in ../Anno and ../Eval as on the
    official drive), or Kaggle's archive (images and CSV annotations inside). Read in place, never unzipped."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
            inside = {PurePosixPath(m.filename).name: m for m in members if PurePosixPath(m.filename).name in ANNOTATIONS}
            texts = {name: archive.read(m).decode(errors="replace") for name, m in inside.items()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable zip archive ({err}); download it again or unzip it and pass the folder") from None
    images = sorted((m for m in members if PurePosixPath(m.filename).suffix.lower() in IMAGE_EXTENSIONS),
                    key=lambda m: PurePosixPath(m.filename).name)
    if not images:
        raise ValueError(f"no images in {path}; CelebA's zip holds img_align_celeba/*.jpg")
    names = [PurePosixPath(m.filename).name for m in images]
    if len(set(names)) != len(names):
        raise ValueError(f"{path} holds two images of one name ({next(n for n in names if names.count(n) > 1)}); "
                         "pass a zip with one copy of each image")
    for name in ANNOTATIONS:  # annotations not in the zip: beside it, or in the official drive's Anno/ and Eval/
        for candidate in (path.parent / name, path.parent.parent / "Anno" / name, path.parent.parent / "Eval" / name):
            if name not in texts and candidate.is_file():
                texts[name] = candidate.read_text(errors="replace")
    digest = hashlib.sha1()
    for m in images:
        digest.update(f"{m.filename}\0{m.file_size}\0{m.CRC}\n".encode())
    for name in sorted(texts):
        digest.update(f"{name}\0{hashlib.sha1(texts[name].encode()).hexdigest()}\n".encode())
    files = [PurePosixPath(m.filename) for m in images]
    return dataclasses.replace(_celeba_source(path, files, texts.get, digest.hexdigest()), archive=path)


def _celeba_source(root: Path, files: list, read: Callable[[str], str | None], fingerprint: str) -> RawSource:
    """A CelebA source from its image files and a reader of its annotation files (None when absent)."""
    names = [f.name for f in files]
    labels, attr_names = None, []
    attr_name = next((n for n in ("list_attr_celeba.txt", "list_attr_celeba.csv") if read(n) is not None), None)
    if attr_name is not None:
        where = root / attr_name if root.is_dir() else f"{root}: {attr_name}"
        rows, attr_names = parse_attributes(read(attr_name), where, csv=attr_name.endswith(".csv"))
        missing = [n for n in names if n not in rows]
        if missing:
            raise ValueError(
                f"{where} has no row for {missing[0]} (and {len(missing) - 1} more images); "
                "add the rows or move the file away to train without labels"
            )
        labels = np.array([rows[n] for n in names], dtype=np.int8)
    identities = _two_columns(read("identity_CelebA.txt"))
    partition = _two_columns(read("list_eval_partition.txt") or read("list_eval_partition.csv"))
    groups = [identities.get(n, n) for n in names] if identities else None
    official = np.array([partition.get(n, "0") != "0" for n in names]) if partition else None
    return RawSource("celeba", root, files, None, labels, attr_names, groups, official, fingerprint)


def parse_attributes(text: str, path: Path | str, csv: bool) -> tuple[dict[str, list[int]], list[str]]:
    """Rows of an official `list_attr_celeba.txt` (count, names, rows) or Kaggle's CSV, as +1 / -1; `path`
    names the file in errors."""
    # Number lines before dropping blank ones, so an error names the line an editor shows.
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if len(lines) < (1 if csv else 2):
        layout = "a header line" if csv else "a count line, a line of attribute names"
        raise ValueError(f"{path} is too short: expected {layout}, then one row per image; fix the file or move it away")
    if csv:
        names = [n.strip() for n in lines[0][1].split(",")[1:]]
        body = [(line_no, line.split(",")) for line_no, line in lines[1:]]
    else:
        names = lines[1][1].split()
        body = [(line_no, line.split()) for line_no, line in lines[2:]]
    rows = {}
    for line_no, fields in body:
        if len(fields) != len(names) + 1:
            raise ValueError(
                f"{path} line {line_no}: expected {len(names) + 1} fields (file name + {len(names)} attributes), "
                f"found {len(fields)}; fix the file or move it away to train without labels"
            )
        try:
            rows[fields[0].strip()] = [1 if int(v) > 0 else -1 for v in fields[1:]]
        except ValueError:
            raise ValueError(f"{path} line {line_no}: attribute values must be 1 or -1; fix the file") from None
    return rows, names


def _two_columns(text: str | None) -> dict[str, str]:
    """'000001.jpg 2880' lines (or Kaggle's '000001.jpg,0') as a dict; empty when the optional file is absent."""
    pairs = (re.split(r"[,\s]+", line.strip()) for line in (text or "").splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


# MNIST and CIFAR-10 --------------------------------------------------------------------------------


def _mnist_images(path: Path) -> Path | None:
    if path.is_file() and "idx3-ubyte" in path.name:
        return path
    if path.is_dir():
        found = sorted(path.glob("*images-idx3-ubyte*"), key=lambda p: "t10k" in p.name)  # train set first
        return found[0] if found else None
    return None


def _read_idx(path: Path) -> np.ndarray:
    """An idx file (LeCun's format, optionally gzipped) as a uint8 array."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes (magic {raw[:4].hex()}); pass MNIST's idx files")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {data.size} bytes of data")
    return data.reshape(shape)


def _one_hot(classes: np.ndarray, count: int) -> np.ndarray:
    labels = -np.ones((len(classes), count), dtype=np.int8)
    labels[np.arange(len(classes)), classes] = 1
    return labels


def _mnist(path: Path) -> RawSource:
    image_file = _mnist_images(path)
    images = _read_idx(image_file)[..., None]  # (N, 28, 28) -> (N, 28, 28, 1)
    label_file = image_file.with_name(image_file.name.replace("images-idx3", "labels-idx1"))
    labels = None
    if label_file.is_file():
        digits = _read_idx(label_file)
        if len(digits) != len(images):
            raise ValueError(f"{label_file} has {len(digits)} labels for {len(images)} images; pass matching files")
        labels = _one_hot(digits, 10)
    files = [f for f in (image_file, label_file) if f.is_file()]
    names = [f"digit_{d}" for d in range(10)] if labels is not None else []
    return RawSource("mnist", path, None, images, labels, names, None, None, _fingerprint(image_file.parent, files))


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """CIFAR-10's batches are pickles; allow the numpy array they hold and nothing else that could run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # pickle protocol 5
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"{path} is not a CIFAR-10 python batch ({err}); pass the cifar-10-batches-py folder") from None


def _cifar10(path: Path) -> RawSource:
    files = sorted(path.glob("data_batch_*"))
    batches = [_unpickle(f) for f in files]
    images = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    classes = np.concatenate([np.asarray(b[b"labels"]) for b in batches])
    meta_file = path / "batches.meta"
    names = [n.decode() for n in _unpickle(meta_file)[b"label_names"]] if meta_file.is_file() else [f"class_{c}" for c in range(10)]
    return RawSource("cifar10", path, None, np.ascontiguousarray(images), _one_hot(classes, len(names)), names, None, None,
                     _fingerprint(path, files))
