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
        """Read a bank written by :meth:`save` (``allow_pickle=False``).

        The metadata is checked, not trusted: every error is a ``ValueError`` naming the file and the
        descriptor (malformed JSON, a missing array, a box that is not four ints with
        ``0 <= x0 < x1 <= image_size`` (same for y), image sizes that are not one positive int, an
        unknown kind, a mask that is not a 2-D boolean array of the box's shape, an activation of
        another shape, features that are not ``(C, h, w)`` or Gram matrices that are not ``(C, C)``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no descriptor bank at {str(path)!r}")
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"path: {str(path)!r} is not a readable .npz descriptor bank ({exc})") from exc
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"path: {str(path)!r} is not a descriptor bank (not an .npz archive)")
        with data:
            if "meta" not in data.files:
                raise ValueError(f"path: {str(path)!r} is not a descriptor bank (no 'meta' entry)")
            try:
                meta = json.loads(str(data["meta"]))
            except (json.JSONDecodeError, ValueError) as exc:
                raise ValueError(f"path: {str(path)!r} has malformed metadata JSON ({exc})") from exc
            if not isinstance(meta, dict) or meta.get("format") != "medxai-descriptors-1":
                found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
                raise ValueError(f"path: unknown descriptor-bank format {found!r} in {str(path)!r}")
            entries = meta.get("descriptors")
            if not isinstance(entries, list):
                raise ValueError(f"path: {str(path)!r} metadata has no 'descriptors' list")
            out = [_load_descriptor(data, i, m, f"path: {str(path)!r} descriptor {i}") for i, m in enumerate(entries)]
        sizes = sorted({d.image_size for d in out})
        if len(sizes) > 1:
            raise ValueError(f"path: {str(path)!r} mixes image sizes {sizes}; a bank holds one image size")
        return cls(out)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _load_descriptor(data: "np.lib.npyio.NpzFile", i: int, m: object, where: str) -> Descriptor:
    """One descriptor of a saved bank, every field checked (errors name ``where``)."""
    if not isinstance(m, dict):
        raise ValueError(f"{where}: metadata entry must be an object, got {type(m).__name__}")
    missing = [k for k in ("box", "image_size", "kind", "source", "layers") if k not in m]
    if missing:
        raise ValueError(f"{where}: metadata misses {missing}")
    size, box, kind, layers = m["image_size"], m["box"], m["kind"], m["layers"]
    if not _is_int(size) or size < 1:
        raise ValueError(f"{where}: image_size must be a positive int, got {size!r}")
    if not isinstance(box, list) or len(box) != 4 or not all(_is_int(v) for v in box):
        raise ValueError(f"{where}: box must be four ints [x0, y0, x1, y1], got {box!r}")
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
        raise ValueError(f"{where}: box {box} must satisfy 0 <= x0 < x1 <= {size} and 0 <= y0 < y1 <= {size}")
    if kind not in LESION_KINDS + ("unknown", "none"):
        raise ValueError(f"{where}: unknown kind {kind!r}; expected one of {LESION_KINDS + ('unknown', 'none')}")
    if not isinstance(m["source"], str):
        raise ValueError(f"{where}: source must be a string, got {m['source']!r}")
    if not isinstance(layers, list) or not all(isinstance(n, str) for n in layers):
        raise ValueError(f"{where}: layers must be a list of layer names, got {layers!r}")

    def array(key: str) -> np.ndarray:
        if key not in data.files:
            raise ValueError(f"{where}: missing array {key!r}")
        return data[key]

    mask, activation = array(f"{i}/mask"), array(f"{i}/activation")
    if mask.dtype != bool or mask.shape != (y1 - y0, x1 - x0):
        raise ValueError(f"{where}: mask must be a boolean ({y1 - y0}, {x1 - x0}) array (the box's shape), "
                         f"got {mask.dtype} {mask.shape}")
    if activation.shape != mask.shape or activation.dtype.kind != "f" or not np.isfinite(activation).all():
        raise ValueError(f"{where}: activation must be a finite float array of the mask's shape {mask.shape}, "
                         f"got {activation.dtype} {activation.shape}")
    features, grams = {}, {}
    for name in layers:
        feat, g = array(f"{i}/features/{name}"), array(f"{i}/grams/{name}")
        if feat.ndim != 3 or feat.dtype.kind != "f":
            raise ValueError(f"{where}: features of {name!r} must be a float (C, h, w) array, got {feat.dtype} {feat.shape}")
        if g.shape != (feat.shape[0], feat.shape[0]) or g.dtype.kind != "f":
            raise ValueError(f"{where}: Gram matrix of {name!r} must be ({feat.shape[0]}, {feat.shape[0]}), "
                             f"got {g.dtype} {g.shape}")
        features[name], grams[name] = feat, g
    return Descriptor((x0, y0, x1, y1), int(size), mask, activation, features, grams, kind, m["source"])


def box_mask(banks: Sequence["DescriptorBank"], size: int, margin: int = 1) -> torch.Tensor:
    """``(B, 1, S, S)``: 1 inside any placed box (grown by ``margin`` pixels), else 0."""
    out = torch.zeros(len(banks), 1, size, size)
    for b, bank in enumerate(banks):
        for d in bank:
            x0, y0, x1, y1 = d.box
            out[b, 0, max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin] = 1
    return out
