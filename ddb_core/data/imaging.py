"""Image loading, and the one view of an image that the classifier sees.

Images are RGB uint8 HWC at the edges (files, PIL, numpy) at their **own** size, whatever it is;
masks are HW uint8 at the size of their image (255 = repaint). Only the classifier sees another
geometry, and every place that feeds it goes through ``classifier_view``: the image resized
(bilinear, with PIL's antialiasing when shrinking) to ``size`` × ``size``, and its mask resized
the same way (nearest). Training's evaluation transform, the per-sample losses and softmax (D_i,
Ψ_i), ψ, integrated gradients of x, x′ and the mask, Grad-CAM (gradcam masks and SCGS) all use
it, so a score computed in one place is comparable with a score computed in another. The
training transform adds a random resized crop and a horizontal flip on top of that view.

The square view is a choice: the classifier sees every pixel of the image and of its mask (a
centre crop would cut objects near the border out of both), and the mask maps onto the
integrated-gradients map pixel for pixel. Non-square images are therefore stretched for the
classifier, as the common Waterbirds and CelebA training pipelines do; nothing stored is.

``ImageSet`` holds the classifier views of a list of images in memory when they fit under
``preload_limit_bytes()`` (``DDB_PRELOAD_GB``, default 3 GiB) and decodes them lazily otherwise.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageOps

from ..project.errors import ConfigError, DatasetError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_PRELOAD_GB = 3.0  # decoded classifier views kept in memory below this size (DDB_PRELOAD_GB)


def preload_limit_bytes() -> int:
    """The memory that ``ImageSet`` may use for preloaded images: ``DDB_PRELOAD_GB`` GiB (default 3)."""
    raw = os.environ.get("DDB_PRELOAD_GB")
    if raw is None or not raw.strip():
        return int(DEFAULT_PRELOAD_GB * (1 << 30))
    try:
        gb = float(raw)
    except ValueError:
        raise ConfigError(f"DDB_PRELOAD_GB must be a number of GiB, got {raw!r}") from None
    if not gb >= 0:
        raise ConfigError(f"DDB_PRELOAD_GB must be >= 0, got {raw!r}")
    return int(gb * (1 << 30))


def to_rgb_array(im: Image.Image) -> np.ndarray:
    """A PIL image of any mode as HWC uint8 RGB. 16-bit (and 32-bit integer or float) grey images are
    scaled to 8 bits — PIL's own conversion clips them at 255, which turns a 16-bit image almost
    white; every other mode (palette, grey, alpha, CMYK) is converted by PIL as torchvision's loader
    does (alpha dropped)."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = float(a.max()) if a.size else 0.0
        if im.mode.startswith("I;16") or top > 255:
            scale = 255.0 / 65535.0
        elif im.mode == "F" and top <= 1.0:
            scale = 255.0  # a float image in [0, 1]
        else:
            scale = 1.0
        g = np.clip(np.round(a * scale), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """The image at ``path`` as HWC uint8 RGB, values in [0, 255], at its own size."""
    try:
        with Image.open(path) as im:
            # a camera's EXIF orientation (phone photos are stored sideways with a tag saying so), as viewers show it
            return to_rgb_array(ImageOps.exif_transpose(im))
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from e


def load_mask(path: str | os.PathLike, shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """HW uint8, 255 = repaint (the causal part), 0 = keep, at the file's own size; with ``shape``
    (height, width), resized (nearest) to that size when the file differs (a mask drawn at another
    resolution than its image)."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("L")
            if shape is not None and im.size != (shape[1], shape[0]):
                (w, h), (iw, ih) = im.size, (shape[1], shape[0])
                if abs(w * ih - h * iw) > 0.02 * iw * h:  # another aspect ratio: not a mask of this image
                    raise DatasetError(f"mask {path} is {w}×{h} px but its image is {iw}×{ih} px: another aspect ratio "
                                       f"(stretching it would misplace the region); draw the mask on the image itself")
                im = im.resize((shape[1], shape[0]), Image.NEAREST)
            return np.where(np.asarray(im) >= 128, 255, 0).astype(np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"cannot read mask {path}: {e}") from e


def classifier_view(image: np.ndarray, size: int, mask: Optional[np.ndarray] = None):
    """What the classifier sees of ``image`` (HWC uint8 RGB, any size): a ``size`` × ``size`` HWC
    uint8 array (bilinear resize), and with ``mask`` (HW, 255 = repaint, the image's size) the same
    geometry applied to the mask as a ``size`` × ``size`` float32 array in {0, 1} (nearest).

    Returns the image view, or (image view, mask view) when a mask is given.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ConfigError(f"classifier_view needs an RGB uint8 HWC array, got shape {image.shape} dtype {image.dtype}")
    h, w = image.shape[:2]
    view = image if (h, w) == (size, size) else np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    if mask is None:
        return view
    if mask.shape != (h, w):
        raise ConfigError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but its image is {w}x{h}")
    m = mask if (h, w) == (size, size) else np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST))
    return view, (m >= 128).astype(np.float32)


def classifier_batch(images: Sequence[np.ndarray], size: int):
    """Images of any sizes → the classifier's N x 3 x size x size normalised float tensor."""
    import torch

    views = np.stack([classifier_view(im, size) for im in images]) if len(images) else np.zeros((0, size, size, 3), np.uint8)
    return normalize(torch.from_numpy(views).permute(0, 3, 1, 2))


def normalize(x):
    """uint8 NCHW (or CHW) tensor in [0, 255] → float, ImageNet-normalised."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(-1, 1, 1)
    return (x.float() / 255.0 - mean) / std


def _view_of_file(path, size: int) -> np.ndarray:
    return classifier_view(load_rgb(path), size)


_DECODED: dict = {}  # (size, file keys) -> uint8 NCHW tensor; read-only once stored
_DECODED_MAX = 6


def _file_key(path) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return (str(path), None, None)  # decoding will name the file in its error
    return (str(path), st.st_mtime_ns, st.st_size)


class ImageSet:
    """The classifier views of ``paths`` as CHW uint8 tensors of side ``size`` (preloaded when they fit)."""

    def __init__(self, paths: Sequence[Path], size: int, preload: Optional[bool] = None, workers: int = 4):
        self.paths, self.size = list(paths), size
        if preload is None:
            preload = len(self.paths) * 3 * size * size <= preload_limit_bytes()
        self._data = None
        if preload and self.paths:
            import torch

            # The same files decoded again (every training run reads the train and val splits) come from
            # a small in-process cache, keyed by each file's path, modification time and size.
            with ThreadPoolExecutor(workers) as pool:
                key = (size, tuple(pool.map(_file_key, self.paths)))
                self._data = _DECODED.get(key)
                if self._data is None:
                    arrays = list(pool.map(lambda p: _view_of_file(p, size), self.paths))
                    self._data = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
            _DECODED.pop(key, None)
            _DECODED[key] = self._data  # most recent last
            while len(_DECODED) > _DECODED_MAX or sum(t.numel() for t in _DECODED.values()) > preload_limit_bytes():
                _DECODED.pop(next(iter(_DECODED)))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch

        if self._data is not None:
            return self._data[i]
        view = np.array(_view_of_file(self.paths[i], self.size))  # a writable copy for torch
        return torch.from_numpy(view).permute(2, 0, 1).contiguous()


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
