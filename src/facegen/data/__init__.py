"""Data: sources -> one uint8 cache per (source, crop, resolution) -> shuffled batches."""

from facegen.data.cache import FaceDataset, cache_root, load_photo, load_photo_bytes, load_photos, open_cache, open_dataset, prepare
from facegen.data.loader import BatchLoader

__all__ = ["BatchLoader", "FaceDataset", "cache_root", "load_photo", "load_photo_bytes", "load_photos", "open_cache", "open_dataset", "prepare"]
