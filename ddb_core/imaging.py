"""Image loading and the classifier's transforms.

Images are RGB uint8 HWC at the edges (files, PIL, numpy), float tensors inside. The evaluation
transform is deterministic (resize to ``image_size`` square, ImageNet normalisation); the training
transform adds a random resized crop and a horizontal flip. ``ImageSet`` holds the uint8 pixels
of a list of samples in memory when they fit (the demo, Waterbirds) and reads lazily otherwise.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from .errors import DatasetError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRELOAD_LIMIT_BYTES = 3 << 30  # keep decoded images in memory below this size


def load_rgb(path: str | os.PathLike, size: Optional[int] = None) -> np.ndarray:
    """HWC uint8 RGB, values in [0, 255]; resized (bilinear) to ``size`` square if given."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).copy()
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from e


def load_mask(path: str | os.PathLike, size: Optional[int] = None) -> np.ndarray:
    """HW uint8, 255 = repaint (the causal part), 0 = keep; resized (nearest) to ``size``."""
    with Image.open(path) as im:
        im = im.convert("L")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.NEAREST)
        return np.where(np.asarray(im) >= 128, 255, 0).astype(np.uint8)


def normalize(x):
    """uint8 NCHW (or CHW) tensor in [0, 255] → float, ImageNet-normalised."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(-1, 1, 1)
    return (x.float() / 255.0 - mean) / std


_DECODED: dict = {}  # (size, file keys) -> uint8 NCHW tensor; read-only once stored
_DECODED_MAX = 6


def _file_key(path) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return (str(path), None, None)  # decoding will name the file in its error
    return (str(path), st.st_mtime_ns, st.st_size)


class ImageSet:
    """The pixels of ``paths`` as CHW uint8 tensors of side ``size`` (preloaded when small)."""

    def __init__(self, paths: Sequence[Path], size: int, preload: Optional[bool] = None, workers: int = 4):
        self.paths, self.size = list(paths), size
        if preload is None:
            preload = len(self.paths) * 3 * size * size <= PRELOAD_LIMIT_BYTES
        self._data = None
        if preload and self.paths:
            import torch

            # The same files decoded again (every training run reads the train and val splits) come from
            # a small in-process cache, keyed by each file's path, modification time and size.
            with ThreadPoolExecutor(workers) as pool:
                key = (size, tuple(pool.map(_file_key, self.paths)))
                self._data = _DECODED.get(key)
                if self._data is None:
                    arrays = list(pool.map(lambda p: load_rgb(p, size), self.paths))
                    self._data = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
            _DECODED.pop(key, None)
            _DECODED[key] = self._data  # most recent last
            while len(_DECODED) > _DECODED_MAX or sum(t.numel() for t in _DECODED.values()) > PRELOAD_LIMIT_BYTES:
                _DECODED.pop(next(iter(_DECODED)))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch

        if self._data is not None:
            return self._data[i]
        return torch.from_numpy(load_rgb(self.paths[i], self.size)).permute(2, 0, 1).contiguous()


class ClassifierDataset:
    """A torch-style dataset of (normalised image, label, index) with optional augmentation."""

    def __init__(self, images: ImageSet, labels: Sequence[int], train: bool = False):
        from torchvision.transforms import v2

        self.images, self.labels, self.train = images, list(labels), train
        self.augment = v2.Compose([
            v2.RandomResizedCrop(images.size, scale=(0.7, 1.0), ratio=(0.8, 1.25), antialias=True),
            v2.RandomHorizontalFlip(),
        ]) if train else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = self.images[i]
        if self.augment is not None:
            x = self.augment(x)
        return normalize(x), self.labels[i], i
