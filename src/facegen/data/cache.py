"""One uint8 cache per (source, crop, resolution): decode once in parallel, then memory-map for every epoch.

A cache directory holds `images.npy` (N, R, R, 3), `labels.npy` (N, A) of +1 / -1, `holdout.npy`
(N,) and `meta.json`. It is built in a temporary directory and renamed into place, so an
interrupted `prepare` never leaves a half cache behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import shutil
import sys
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from facegen.data.sources import MAX_MEMBER_BYTES, RawSource, resolve_source, take_subset

CACHE_VERSION = 1  # bump when decoding changes, so old caches are rebuilt rather than reused
CELEBA_SIZE = (178, 218)  # official aligned CelebA; crops are given in its pixels
HOLDOUT_FRACTION = 0.1
RESIZE_FILTER = "lanczos"  # antialiased downscaling


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where caches live: the given folder, else $FACEGEN_CACHE, else ~/.cache/facegen."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("FACEGEN_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facegen"


@dataclass
class FaceDataset:
    """A prepared cache, memory-mapped."""

    path: Path
    images: np.ndarray  # uint8 (N, R, R, 3)
    labels: np.ndarray | None  # int8 (N, A)
    holdout: np.ndarray  # bool (N,)
    meta: dict

    @property
    def resolution(self) -> int:
        return self.meta["resolution"]

    @property
    def attr_names(self) -> list[str]:
        return self.meta["attr_names"]

    def condition_columns(self, names: Sequence[str]) -> tuple[list[int], list[str]]:
        """The label columns of `model.conditions` (("all",): every attribute) and their names, or a one-line error
        that names what the data has."""
        if self.labels is None:
            raise ValueError(f"model.conditions needs attribute labels, and {self.meta['source']} has none; train on a "
                             "CelebA-layout folder with list_attr_celeba.txt or on synthetic:N, or drop model.conditions")
        names = list(self.attr_names) if tuple(names) == ("all",) else list(names)
        unknown = [name for name in names if name not in self.attr_names]
        if unknown:
            raise ValueError(f"model.conditions: {', '.join(map(repr, unknown))} not among the attributes of "
                             f"{self.meta['source']}: {', '.join(self.attr_names)}")
        return [self.attr_names.index(name) for name in names], names

    def split_indices(self, split: str) -> np.ndarray:
        """Image indices of 'train' (all but the held-out ones), 'holdout' or 'all'."""
        if split == "all":
            return np.arange(len(self.images))
        indices = np.flatnonzero(self.holdout if split == "holdout" else ~self.holdout)
        if len(indices) == 0:
            raise ValueError(f"the {split!r} split of {self.path} is empty ({len(self.images)} images in all); use data.split=all")
        return indices

    def spread_indices(self, split: str, n: int | None) -> np.ndarray:
        """Up to n indices of a split, spread evenly over it (deterministic, no seed needed); all of it for None."""
        indices = self.split_indices(split)
        if n is None or n >= len(indices):
            return indices
        return indices[np.linspace(0, len(indices) - 1, n).round().astype(int)]


def is_cache(path: str | Path) -> bool:
    return (Path(path) / "meta.json").is_file() and (Path(path) / "images.npy").is_file()


def open_cache(path: str | Path) -> FaceDataset:
    path = Path(path)
    if not is_cache(path):
        raise ValueError(f"{path} is not a facegen data cache (no meta.json and images.npy); run facegen prepare first")
    meta = json.loads((path / "meta.json").read_text())
    labels = np.load(path / "labels.npy") if (path / "labels.npy").is_file() else None
    return FaceDataset(path, np.load(path / "images.npy", mmap_mode="r"), labels, np.load(path / "holdout.npy"), meta)


def open_dataset(source: str, resolution: int, crop: int | None = None, cache_dir: str | Path | None = None,
                 progress: bool = True) -> FaceDataset:
    """Open the cache for (source, crop, resolution), preparing it first when missing or stale.

    `source` may also be a cache directory itself; then it must hold images of `resolution`.
    """
    if is_cache(source):
        dataset = open_cache(source)
        if dataset.resolution != resolution or dataset.meta["crop"] != crop:
            raise ValueError(
                f"cache {source} holds {dataset.resolution} px images (crop {dataset.meta['crop']}) but the config asks for "
                f"{resolution} px (crop {crop}); prepare a matching cache or set data.resolution / data.crop to match"
            )
        return dataset
    return open_cache(prepare(source, resolution, crop, cache_dir, progress=progress))


def prepare(source: str, resolution: int, crop: int | None = None, cache_dir: str | Path | None = None,
            force: bool = False, progress: bool = True, limit: int | None = None, seed: int = 0) -> Path:
    """Build (or reuse) the cache and return its directory; `limit` keeps a random subset of that many images."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit {limit}: take at least one image, e.g. --limit 20000")
    root = cache_root(cache_dir)
    raw = resolve_source(source, root, progress)
    source_count = len(raw)
    subset = "" if limit is None else f"-limit{limit}-seed{seed}"
    if limit is not None:
        raw = take_subset(raw, limit, seed)
    key = hashlib.sha1(f"{raw.kind}:{raw.path.resolve()}:{crop}:{resolution}:{CACHE_VERSION}{subset}".encode()).hexdigest()[:10]
    dest = root / "data" / f"{_slug(raw.path)}-{resolution}px-crop{crop or 'full'}{subset}-{key}"
    if is_cache(dest) and not force:
        meta = json.loads((dest / "meta.json").read_text())
        if meta.get("fingerprint") == raw.fingerprint:
            return dest
        print(f"facegen: {raw.path} changed since it was cached; rebuilding {dest}", file=sys.stderr)

    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        kept, report = _decode_all(raw, resolution, crop, tmp / "images.npy", progress)
        if not kept:
            raise ValueError(f"no usable images in {raw.path}: all {len(raw)} failed to decode ({_summary(report)}); check the folder")
        kept_idx = np.array(kept)
        if raw.labels is not None:
            np.save(tmp / "labels.npy", raw.labels[kept_idx])
        holdout, rule = _holdout(raw, kept_idx)
        np.save(tmp / "holdout.npy", holdout)
        skipped = {name: why for name, why in report.items() if why.startswith("skipped")}
        converted = {name: why for name, why in report.items() if why.startswith("converted")}
        meta = {
            "version": CACHE_VERSION, "source": str(raw.path.resolve()), "kind": raw.kind, "fingerprint": raw.fingerprint,
            "count": len(kept), "resolution": resolution, "crop": crop, "resize_filter": RESIZE_FILTER,
            "attr_names": raw.attr_names, "holdout_rule": rule, "holdout_count": int(holdout.sum()),
            "skipped": skipped, "converted": converted,
            "subset": None if limit is None else {"limit": limit, "seed": seed, "of": source_count},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if skipped or converted:
            print(f"facegen: {raw.path}: {_summary(report)} (named in {dest / 'meta.json'})", file=sys.stderr)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _slug(path: Path) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in path.resolve().name)[:40] or "source"


def _summary(report: dict[str, str]) -> str:
    skipped = sum(why.startswith("skipped") for why in report.values())
    converted = sum(why.startswith("converted") for why in report.values())
    return f"{skipped} skipped, {converted} converted"


# Decoding ------------------------------------------------------------------------------------------


def crop_box(width: int, height: int, crop: int | None) -> tuple[int, int, int, int]:
    """A centred square; crops are in 178-wide aligned-CelebA pixels and scale for downsampled copies."""
    if crop is None:
        side = min(width, height)
    elif abs(width / height - CELEBA_SIZE[0] / CELEBA_SIZE[1]) < 0.01:
        side = round(crop * width / CELEBA_SIZE[0])
    else:
        side = crop
    side = min(side, width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def fit_image(image: Image.Image, resolution: int, crop: int | None) -> np.ndarray:
    """Centre-crop and resize an RGB image to uint8 (R, R, 3)."""
    box = crop_box(image.width, image.height, crop)
    return np.asarray(image.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box))


def to_rgb(image: Image.Image) -> tuple[Image.Image, str | None]:
    """Any Pillow mode as 8-bit RGB, with the original mode when a conversion was needed."""
    mode = image.mode
    if mode == "RGB":
        return image, None
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grey: scale to 8 bits, don't clip
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(values.max(), 1.0)
        image = Image.fromarray(np.round(values * (255.0 / peak)).astype(np.uint8))
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("RGB"), mode


def _decode_file(path: Path | io.BytesIO, resolution: int, crop: int | None) -> tuple[np.ndarray | None, str | None]:
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit (89 MP); facegen skips those too, unread.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # reads the header only: the size check comes before any decoding
                image.load()  # decodes fully: truncated files fail here rather than later
                rgb, mode = to_rgb(image)
                return fit_image(rgb, resolution, crop), f"converted from {mode}" if mode else None
    except Exception as err:  # noqa: BLE001  (any decoder failure means: skip this file)
        return None, f"skipped: {type(err).__name__}: {err}"[:200]


def load_photos(paths: list[str | Path], resolution: int, crop: int | None) -> np.ndarray:
    """uint8 (N, R, R, 3): photos prepared as the cache prepares source images, or a one-line error."""
    if not paths:
        raise ValueError("no photos given; pass image files, e.g. --images me.jpg")
    return np.stack([load_photo(p, resolution, crop) for p in paths])


def load_photo(path: str | Path, resolution: int, crop: int | None) -> np.ndarray:
    """One photo prepared exactly as the cache prepares a source image: uint8 (R, R, 3), or a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"photo {path} does not exist; pass image files (JPEG, PNG, ...)")
    array, note = _decode_file(path, resolution, crop)
    if array is None:
        raise ValueError(f"photo {path} is not an image Pillow can read ({note.removeprefix('skipped: ')}); pass a JPEG or PNG")
    return array


def load_photo_bytes(data: bytes, name: str, resolution: int, crop: int | None) -> np.ndarray:
    """An uploaded photo, prepared like load_photo: uint8 (R, R, 3), or a one-line error naming it."""
    array, note = _decode_file(io.BytesIO(data), resolution, crop)
    if array is None:
        raise ValueError(f"{name} is not an image Pillow can read ({note.removeprefix('skipped: ')}); upload a JPEG or PNG")
    return array


def _decode_chunk(args: tuple[list[Path], Path | None, int, int | None]) -> list[tuple[np.ndarray | None, str | None]]:
    files, archive, resolution, crop = args
    if archive is None:
        return [_decode_file(f, resolution, crop) for f in files]
    with zipfile.ZipFile(archive) as zipped:  # one handle per chunk: each worker process reads the zip itself
        return [_decode_member(zipped, str(f), resolution, crop) for f in files]


def _decode_member(zipped: zipfile.ZipFile, name: str, resolution: int, crop: int | None) -> tuple[np.ndarray | None, str | None]:
    """One image inside a zip; a member that claims to unpack to more than MAX_MEMBER_BYTES is skipped unread."""
    size = zipped.getinfo(name).file_size
    if size > MAX_MEMBER_BYTES:
        return None, f"skipped: unpacks to {size} bytes (over {MAX_MEMBER_BYTES})"
    try:
        data = zipped.read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as err:  # a damaged member (bad CRC, truncated)
        return None, f"skipped: {type(err).__name__}: {err}"[:200]
    return _decode_file(io.BytesIO(data), resolution, crop)


def _decode_all(raw: RawSource, resolution: int, crop: int | None, out: Path, progress: bool) -> tuple[list[int], dict[str, str]]:
    """Decode every input into a memory-mapped array; return the kept indices and a report of the rest."""
    n = len(raw)
    images = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(n, resolution, resolution, 3))
    kept, report = [], {}
    bar = tqdm(total=n, desc=f"prepare {resolution}px", unit="img", disable=not progress, file=sys.stderr)
    if raw.files is not None:
        chunk = 256
        jobs = [(raw.files[i : i + chunk], raw.archive, resolution, crop) for i in range(0, n, chunk)]
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        with context.Pool(os.cpu_count()) as pool:
            results = (r for batch in pool.imap(_decode_chunk, jobs) for r in batch)
            for i, (array, note) in enumerate(results):
                if note:
                    report[raw.file_name(i)] = note
                if array is not None:
                    images[len(kept)] = array
                    kept.append(i)
                bar.update()
    else:
        for i, array in enumerate(raw.arrays):
            image = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).convert("RGB")
            images[i] = fit_image(image, resolution, crop)
            kept.append(i)
            bar.update()
    bar.close()
    images.flush()
    if len(kept) < n:  # drop the unused tail; rare, so a copy is fine
        del images
        full = np.load(out, mmap_mode="r")
        np.save(out.with_suffix(".kept.npy"), full[: len(kept)])
        del full
        os.replace(out.with_suffix(".kept.npy"), out)
    return kept, report


def _holdout(raw: RawSource, kept: np.ndarray) -> tuple[np.ndarray, str]:
    """Which images evaluation keeps unseen: official val/test if present, else 10 % of identities or files."""
    if raw.official_holdout is not None and raw.official_holdout[kept].any():
        return raw.official_holdout[kept], "official val+test partition"
    if raw.groups is not None:
        keys, rule = [raw.groups[i] for i in kept], "10 % of identities (crc32 of the identity id)"
    else:
        names = raw.files if raw.files is not None else range(len(raw))
        keys, rule = [str(getattr(names[i], "name", i)) for i in kept], "10 % of images (crc32 of the file name or index)"
    buckets = np.array([zlib.crc32(k.encode()) % 1000 for k in keys])
    return buckets < HOLDOUT_FRACTION * 1000, rule
