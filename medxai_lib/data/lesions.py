"""Lesion descriptors as data (Niu et al. 2019): a :class:`Descriptor` is one lesion's box, mask,
activation and per-layer feature patches with their Gram matrices; a :class:`DescriptorBank` holds them
so lesions can be filtered, copied, moved and deleted, and saved in a safe format (``.npz`` without
pickle + JSON). Extraction from a detector lives in :mod:`medxai_lib.explain.descriptors`; training
(:mod:`medxai_lib.train.pathogan`) and evaluation read the same containers from here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in input pixels (x1, y1 exclusive)
STYLE_LAYERS = ("conv1b", "conv2b")
LESION_KINDS = ("microaneurysm", "haemorrhage", "hard_exudate", "cotton_wool", "neovascularisation")


def gram(features: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrix of ``(C, h, w)`` features (optionally times ``(h, w)`` weights): ``F^T F / (N C)``,
    ``(C, C)``, with ``F`` the ``(N = h w, C)`` matrix. Batched: ``(B, C, h, w) -> (B, C, C)``."""
    if features.ndim not in (3, 4):
        raise ValueError(f"features: expected (C, h, w) or (B, C, h, w), got shape {tuple(features.shape)}")
    if weights is not None:
        features = features * weights
    flat = features.flatten(-2)                                   # (..., C, N)
    n, c = flat.shape[-1], flat.shape[-2]
    return flat @ flat.transpose(-1, -2) / (n * c)


def layer_box(box: Box, image_size: int, layer_shape: Sequence[int]) -> Box:
    """A box in input pixels -> the covering box on a layer of ``(h, w)`` cells (at least one cell)."""
    x0, y0, x1, y1 = box
    h, w = layer_shape[-2], layer_shape[-1]
    lx0, ly0 = int(np.floor(x0 * w / image_size)), int(np.floor(y0 * h / image_size))
    lx1, ly1 = int(np.ceil(x1 * w / image_size)), int(np.ceil(y1 * h / image_size))
    return min(lx0, w - 1), min(ly0, h - 1), max(lx1, min(lx0, w - 1) + 1), max(ly1, min(ly0, h - 1) + 1)


def resize_patch(patch: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of a ``(C, h, w)`` or ``(h, w)`` patch."""
    squeeze = patch.ndim == 2
    x = patch[None, None] if squeeze else patch[None]
    out = F.interpolate(x.float(), size=(height, width), mode="bilinear", align_corners=False)[0]
    return out[0] if squeeze else out


@dataclass
class Descriptor:
    """One lesion: its box in an ``image_size`` image, mask and activation inside the box ``(h, w)``,
    and per style layer the weighted feature patch ``(C, h_l, w_l)`` and Gram matrix ``(C, C)``."""

    box: Box
    image_size: int
    mask: np.ndarray
    activation: np.ndarray
    features: dict[str, np.ndarray]
    grams: dict[str, np.ndarray]
    kind: str = "unknown"
    source: str = ""

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def moved_to(self, x0: int, y0: int) -> "Descriptor":
        """The same lesion with its box's top-left corner at ``(x0, y0)``; raises if it leaves the image."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        if not (0 <= x0 and 0 <= y0 and x0 + w <= self.image_size and y0 + h <= self.image_size):
            raise ValueError(f"to: a {w}x{h} box at ({x0}, {y0}) leaves the {self.image_size}x{self.image_size} image")
        return replace(self, box=(int(x0), int(y0), int(x0) + w, int(y0) + h))


@dataclass
class DescriptorBank:
    """An ordered collection of :class:`Descriptor` with the Koch-style manipulations. Every operation
    returns a new bank; the original is never changed."""

    descriptors: list[Descriptor] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.descriptors)

    def __getitem__(self, index: int) -> Descriptor:
        self._check_index(index)
        return self.descriptors[index]

    def __iter__(self):
        return iter(self.descriptors)

    def _check_index(self, index: int) -> None:
        if not self.descriptors:
            raise IndexError("bank: empty; extract descriptors first (extract_descriptors / DescriptorBank.extend)")
        if not isinstance(index, (int, np.integer)) or not -len(self) <= index < len(self):
            raise IndexError(f"index: expected an int in [0, {len(self)}), got {index!r}")

    @property
    def image_size(self) -> int:
        if not self.descriptors:
            raise ValueError("bank: empty; it has no image size")
        return self.descriptors[0].image_size

    @classmethod
    def union(cls, banks: Iterable["DescriptorBank"]) -> "DescriptorBank":
        """All descriptors of several banks, in order."""
        return cls().extend(d for bank in banks for d in bank)

    def extend(self, descriptors: Iterable[Descriptor]) -> "DescriptorBank":
        new = list(descriptors)
        sizes = {d.image_size for d in self.descriptors + new}
        if len(sizes) > 1:
            raise ValueError(f"descriptors: all must come from one image size, got {sorted(sizes)}")
        return DescriptorBank(self.descriptors + new)

    def filter(self, kind: str | Sequence[str] | None = None, min_area: int = 0,
               max_area: int | None = None) -> "DescriptorBank":
        """Descriptors of the given kind(s) with ``min_area <= area <= max_area`` pixels."""
        kinds = {kind} if isinstance(kind, str) else set(kind) if kind is not None else None
        if kinds is not None and not kinds <= set(LESION_KINDS) | {"unknown", "none"}:
            raise ValueError(f"kind: expected names from {LESION_KINDS + ('unknown', 'none')}, got {sorted(kinds)}")
        keep = [d for d in self.descriptors if (kinds is None or d.kind in kinds) and d.area >= min_area
                and (max_area is None or d.area <= max_area)]
        return DescriptorBank(keep)

    def move(self, index: int, to: tuple[int, int]) -> "DescriptorBank":
        """Move descriptor ``index`` so that its box starts at ``to = (x0, y0)``."""
        self._check_index(index)
        out = list(self.descriptors)
        out[index] = out[index].moved_to(*to)
        return DescriptorBank(out)

    def copy(self, index: int, to: Sequence[tuple[int, int]]) -> "DescriptorBank":
        """Add copies of descriptor ``index`` at each top-left corner in ``to``."""
        self._check_index(index)
        return DescriptorBank(self.descriptors + [self.descriptors[index].moved_to(*corner) for corner in to])

    def delete(self, indices: int | Sequence[int] | None = None) -> "DescriptorBank":
        """Drop the given descriptors (all of them when ``indices`` is None)."""
        if indices is None:
            return DescriptorBank([])
        drop = {indices} if isinstance(indices, (int, np.integer)) else set(indices)
        for index in drop:
            self._check_index(index)
        drop = {i % len(self) for i in drop}
        return DescriptorBank([d for i, d in enumerate(self.descriptors) if i not in drop])

    def boxes(self) -> list[Box]:
        return [d.box for d in self.descriptors]

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (``.npz``: arrays only, no pickled objects; metadata as a JSON string)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"path: expected a .npz file name, got {str(path)!r}")
        arrays: dict[str, np.ndarray] = {}
        meta = []
        for i, d in enumerate(self.descriptors):
            arrays[f"{i}/mask"], arrays[f"{i}/activation"] = d.mask.astype(bool), d.activation.astype(np.float32)
            for name in d.features:
                arrays[f"{i}/features/{name}"] = d.features[name].astype(np.float32)
                arrays[f"{i}/grams/{name}"] = d.grams[name].astype(np.float32)
            meta.append({"box": list(d.box), "image_size": d.image_size, "kind": d.kind, "source": d.source,
                         "layers": list(d.features)})
        arrays["meta"] = np.array(json.dumps({"format": "medxai-descriptors-1", "descriptors": meta}))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DescriptorBank":
        """Read a bank written by :meth:`save` (``allow_pickle=False``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no descriptor bank at {str(path)!r}")
        with np.load(path, allow_pickle=False) as data:
            if "meta" not in data.files:
                raise ValueError(f"path: {str(path)!r} is not a descriptor bank (no 'meta' entry)")
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != "medxai-descriptors-1":
                raise ValueError(f"path: unknown descriptor-bank format {meta.get('format')!r}")
            out = [Descriptor(tuple(m["box"]), int(m["image_size"]), data[f"{i}/mask"], data[f"{i}/activation"],
                              {n: data[f"{i}/features/{n}"] for n in m["layers"]},
                              {n: data[f"{i}/grams/{n}"] for n in m["layers"]}, m["kind"], m["source"])
                   for i, m in enumerate(meta["descriptors"])]
        return cls(out)


def box_mask(banks: Sequence["DescriptorBank"], size: int, margin: int = 1) -> torch.Tensor:
    """``(B, 1, S, S)``: 1 inside any placed box (grown by ``margin`` pixels), else 0."""
    out = torch.zeros(len(banks), 1, size, size)
    for b, bank in enumerate(banks):
        for d in bank:
            x0, y0, x1, y1 = d.box
            out[b, 0, max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin] = 1
    return out
