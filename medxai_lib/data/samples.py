"""Real images that ship offline with scikit-image, and scikit-learn's breast-cancer table.

Out-of-distribution examples for models trained on the phantoms -- say so whenever you show them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


def _to_tensor(array: np.ndarray, size: int | None) -> torch.Tensor:
    image = torch.as_tensor(np.asarray(array, dtype=np.float32))
    image = image / 255.0 if image.max() > 1.5 else image
    image = image[None] if image.ndim == 2 else image.permute(2, 0, 1)
    if size is not None:
        image = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return image.clamp(0, 1).contiguous()


def retina(size: int | None = None) -> torch.Tensor:
    """``skimage.data.retina()``: a real colour fundus photograph, ``(3, S, S)`` in [0, 1] (1411 px native)."""
    from skimage import data
    return _to_tensor(data.retina(), size)


def microaneurysms(size: int | None = None) -> torch.Tensor:
    """``skimage.data.microaneurysms()``: a grey retina crop with microaneurysms, ``(1, S, S)`` (102 px native)."""
    from skimage import data
    return _to_tensor(data.microaneurysms(), size)


def immunohistochemistry(size: int | None = None) -> torch.Tensor:
    """``skimage.data.immunohistochemistry()``: an IHC-stained histology image, ``(3, S, S)`` (512 px native)."""
    from skimage import data
    return _to_tensor(data.immunohistochemistry(), size)


def cell(size: int | None = None) -> torch.Tensor:
    """``skimage.data.cell()``: a grey microscopy image of a cell, ``(1, H, W)``."""
    from skimage import data
    return _to_tensor(data.cell(), size)


@dataclass(frozen=True)
class Table:
    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target_names: list[str]


def breast_cancer() -> Table:
    """scikit-learn's Wisconsin diagnostic breast-cancer table: 569 fine-needle aspirates x 30 real
    nucleus features; ``y`` = 1 for benign (scikit-learn's coding)."""
    from sklearn.datasets import load_breast_cancer
    data = load_breast_cancer()
    return Table(data.data, data.target, list(data.feature_names), list(data.target_names))


@lru_cache(maxsize=4)
def _retina_maps(size: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage.filters import frangi, threshold_otsu
    from skimage.measure import label
    from scipy.ndimage import binary_erosion
    from skimage.morphology import disk, remove_small_objects
    image = retina(size).numpy()
    luminance = image.mean(0)
    fov = luminance > 0.1 * luminance.max()
    labels = label(fov)
    if labels.max() > 0:
        fov = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    inner = binary_erosion(fov, structure=disk(max(2, size // 64)))
    green = image[1]
    response = frangi(green, sigmas=np.linspace(1, max(2, size / 256), 4), black_ridges=True)
    response = np.where(inner, response, 0)
    vessels = response > threshold_otsu(np.sqrt(response[inner])) ** 2   # Otsu on sqrt: keeps thinner vessels
    vessels = remove_small_objects(vessels, max_size=max(8, size // 16))
    return vessels, fov


def retina_vessels(size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """A vessel map and field-of-view mask for :func:`retina` at ``size``: Frangi vesselness on the green
    channel, Otsu-thresholded inside the (eroded) field of view. Returns two ``(1, S, S)`` float masks.
    An automatic segmentation, not a manual one: good enough to condition a generator."""
    vessels, fov = _retina_maps(int(size))
    return torch.from_numpy(vessels.astype(np.float32))[None], torch.from_numpy(fov.astype(np.float32))[None]
