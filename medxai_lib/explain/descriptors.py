"""Pathological descriptors (Niu et al. 2019): the evidence a DR detector uses, isolated lesion by lesion.

Pipeline: activation map (deconvnet, :mod:`medxai_lib.explain.activation_network`) -> binary mask
(fixed threshold, or Gaussian blur + Otsu) -> connected components (``skimage.measure.label``) -> one
box per lesion -> per lesion and layer: the detector's feature patch weighted by the activation and
mask, and its Gram matrix ``G = F^T F / (N C)``. A :class:`DescriptorBank` holds them so lesions can be
filtered, copied, moved and deleted, and saved in a safe format (``.npz`` without pickle + JSON).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.measure import label

from medxai_lib.explain.activation_network import ActivationNetwork, as_lesion_map
from medxai_lib.models.detector import DRDetector, detector_input

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in input pixels (x1, y1 exclusive)
STYLE_LAYERS = ("conv1b", "conv2b")
LESION_KINDS = ("microaneurysm", "haemorrhage", "hard_exudate", "cotton_wool", "neovascularisation")


def threshold_map(activation: np.ndarray, threshold: float | str = 0.33, sigma: float = 0.0,
                  dilate: int = 0) -> np.ndarray:
    """``(H, W)`` activation map -> boolean mask. ``threshold`` a float in (0, 1) applied to
    ``map / max`` or ``"otsu"``; ``sigma`` Gaussian blur first (pixels); ``dilate`` iterations after."""
    activation = np.asarray(activation, dtype=np.float64)
    if activation.ndim != 2:
        raise ValueError(f"activation: expected an (H, W) map, got shape {activation.shape}")
    if sigma > 0:
        activation = ndimage.gaussian_filter(activation, sigma)
    peak = activation.max()
    if peak <= 0:
        return np.zeros(activation.shape, bool)
    scaled = activation / peak
    if threshold == "otsu":
        level = threshold_otsu(scaled) if np.ptp(scaled) > 0 else 1.0
    elif isinstance(threshold, (int, float)) and 0 < threshold < 1:
        level = float(threshold)
    else:
        raise ValueError(f"threshold: expected a float in (0, 1) or 'otsu', got {threshold!r}")
    binary = scaled > level
    return ndimage.binary_dilation(binary, iterations=dilate) if dilate > 0 else binary


def lesion_boxes(binary: np.ndarray, min_area: int = 1) -> list[tuple[Box, np.ndarray]]:
    """Connected regions (8-connectivity) of an ``(H, W)`` mask with at least ``min_area`` pixels:
    ``[(box, region mask inside the box (h, w) bool)]``, in label order."""
    binary = np.asarray(binary, dtype=bool)
    if binary.ndim != 2:
        raise ValueError(f"binary: expected an (H, W) mask, got shape {binary.shape}")
    labels = label(binary, connectivity=2)
    out = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        inside = labels[region] == index
        if inside.sum() >= min_area:
            out.append(((region[1].start, region[0].start, region[1].stop, region[0].stop), inside))
    return out


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


def _majority_kind(region: np.ndarray, box: Box, lesion_masks: np.ndarray | None) -> str:
    if lesion_masks is None:
        return "unknown"
    x0, y0, x1, y1 = box
    overlap = (lesion_masks[:, y0:y1, x0:x1] & region[None]).reshape(len(lesion_masks), -1).sum(1)
    return LESION_KINDS[int(overlap.argmax())] if overlap.max() > 0 else "none"


def extract_descriptors(detector: DRDetector, image: torch.Tensor, threshold: float | str = 0.33, sigma: float = 0.0,
                        dilate: int = 1, min_area: int = 2, layer: str = "conv4b",
                        style_layers: Sequence[str] = STYLE_LAYERS, fov: torch.Tensor | None = None,
                        lesion_masks: torch.Tensor | None = None, source: str = "") -> list[Descriptor]:
    """Descriptors of one ``(3, S, S)`` image (normalised as the detector expects). ``fov`` ``(S, S)``
    limits the activation map; ``lesion_masks`` ``(5, S, S)`` (phantoms) names each lesion's kind."""
    if image.ndim != 3 or image.shape[-1] != image.shape[-2]:
        raise ValueError(f"image: expected one square (3, S, S) image, got shape {tuple(image.shape)}")
    unknown = [name for name in style_layers if name not in detector.layer_names]
    if unknown:
        raise ValueError(f"style_layers: unknown layers {unknown}; expected names from {detector.layer_names}")
    size = image.shape[-1]
    projection, trace = ActivationNetwork(detector).project_with_trace(image[None], layer)   # one forward pass
    activation = as_lesion_map(projection)[0]
    if fov is not None:
        activation = activation * fov.reshape(size, size).to(activation)
    activation = activation.cpu()
    masks = None if lesion_masks is None else lesion_masks.bool().cpu().numpy()
    out = []
    for box, region in lesion_boxes(threshold_map(activation.numpy(), threshold, sigma, dilate), min_area):
        x0, y0, x1, y1 = box
        weight = activation[y0:y1, x0:x1] * torch.from_numpy(region)
        features, grams = {}, {}
        for name in style_layers:
            acts = trace.activations[name][0].detach().cpu()
            lx0, ly0, lx1, ly1 = layer_box(box, size, acts.shape)
            patch = acts[:, ly0:ly1, lx0:lx1] * resize_patch(weight, ly1 - ly0, lx1 - lx0)
            features[name], grams[name] = patch.numpy(), gram(patch).numpy()
        out.append(Descriptor(box, size, region, weight.numpy(), features, grams,
                              _majority_kind(region, box, masks), source))
    return out


def descriptors_per_image(detector: DRDetector, dataset: torch.utils.data.Dataset, raw: bool = False,
                          **kwargs) -> list["DescriptorBank"]:
    """One bank per image of a fundus dataset (items with ``image``, ``fov``, optionally ``lesions``).
    ``raw=True``: images in [0, 1], normalised here for the detector. ``kwargs`` go to
    :func:`extract_descriptors`."""
    banks = []
    for index in range(len(dataset)):
        item = dataset[index]
        image = detector_input(item["image"][None])[0] if raw else item["image"]
        banks.append(DescriptorBank(extract_descriptors(detector, image, fov=item["fov"][0],
                                                        lesion_masks=item.get("lesions"), source=f"image {index}",
                                                        **kwargs)))
    return banks


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
