"""Drawing helpers shared by the phantoms (numpy, vectorised, deterministic)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage


@lru_cache(maxsize=8)
def unit_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1): ``(x, y)``, each ``(S, S)`` float32."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.broadcast_to(coords[None, :], (size, size)), np.broadcast_to(coords[:, None], (size, size))


def smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 0) -> np.ndarray:
    """Bilinearly upsampled Gaussian noise: ``(S, S)`` (or ``(channels, S, S)``), about unit variance."""
    shape = (channels, cells, cells) if channels else (cells, cells)
    coarse = rng.standard_normal(shape).astype(np.float32)
    zoom = (1, size / cells, size / cells) if channels else size / cells
    out = ndimage.zoom(coarse, zoom, order=1, mode="nearest")
    return out[..., :size, :size]


def segment_distance(x: np.ndarray, y: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Distance of every pixel to the segment p0-p1 (a disc when p0 == p1)."""
    d = p1 - p0
    length2 = float(d @ d)
    if length2 < 1e-12:
        return np.hypot(x - p0[0], y - p0[1])
    t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1]) / length2, 0.0, 1.0)
    return np.hypot(x - p0[0] - t * d[0], y - p0[1] - t * d[1])


def polyline_distance_near(x: np.ndarray, y: np.ndarray, points: np.ndarray, reach: float) -> np.ndarray:
    """Distance of every pixel to the polyline ``points (N, 2)`` where it is below ``reach``, computed only in
    each segment's bounding box grown by ``reach``; elsewhere at least ``reach`` (``inf`` outside every box).
    Thresholds ``d < t`` with ``t <= reach`` give the same pixels as the minimum of :func:`segment_distance`
    over all segments on every pixel, bit for bit (``tests/test_skin_render.py``). ``x``, ``y``: the pixel
    centres of :func:`unit_grid`."""
    size = x.shape[0]
    out = np.full(x.shape, np.inf, dtype=np.float32)
    for p0, p1 in zip(points[:-1], points[1:]):
        low, high = np.minimum(p0, p1) - reach, np.maximum(p0, p1) + reach
        c0, r0 = (max(0, int(np.floor(v * size - 0.5)) - 1) for v in low)      # pixel centres (i + 0.5) / size
        c1, r1 = (min(size, int(np.ceil(v * size - 0.5)) + 2) for v in high)
        if r0 >= r1 or c0 >= c1:
            continue
        box = (slice(r0, r1), slice(c0, c1))
        out[box] = np.minimum(out[box], segment_distance(x[box], y[box], p0, p1))
    return out


def bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 12) -> np.ndarray:
    """Points of a quadratic Bezier curve, ``(n, 2)``."""
    t = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def soft(mask_distance: np.ndarray, width: float) -> np.ndarray:
    """1 inside (distance < 0), fading to 0 over ``width``: anti-aliased edges."""
    return np.clip(0.5 - mask_distance / max(width, 1e-6), 0.0, 1.0)


class PhantomDataset:
    """Shared behaviour of the phantom datasets: ``specs`` (one per image), lazy rendering with an
    in-memory cache, index checks, ``tensors(...)`` and ``counterfactual(...)``.

    Subclasses set ``self.specs``, ``self.cache`` and implement ``_render_item(spec) -> dict``.
    """

    specs: list
    cache: bool

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def has_masks(self) -> bool:
        return True

    def _render_item(self, spec: object) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index: {index} out of range for a dataset of {len(self)} images")
        index = index % len(self)
        cached = self.__dict__.setdefault("_cache", {})
        if index in cached:
            return cached[index]
        item = self._render_item(self.specs[index])
        if self.cache:
            cached[index] = item
        return item

    def tensors(self, *keys: str) -> tuple:
        """Stack the named tensor fields of every item, e.g. ``ds.tensors("image", "mask")``."""
        import torch
        return tuple(torch.stack([self[i][k] for i in range(len(self))]) for k in keys)

    def counterfactual(self, **changes: object) -> "PhantomDataset":
        """The same images with some spec fields changed for every image (e.g. ``marker=False``,
        ``n_hairs=0``); pixels that do not depend on those fields are unchanged."""
        from dataclasses import replace
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.specs = [replace(s, **changes) for s in self.specs]
        twin._cache = {}
        return twin


def check_count(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def check_size(size: object) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 32:
        raise ValueError(f"size: expected an int >= 32, got {size!r}")


def check_seed(seed: object) -> None:
    """A phantom seed is a non-negative int (numpy integers too): numpy's generators refuse the rest with
    errors that do not name the argument."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
