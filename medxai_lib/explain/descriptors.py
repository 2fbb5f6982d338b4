"""Pathological descriptors (Niu et al. 2019): the evidence a DR detector uses, isolated lesion by lesion.

Pipeline: activation map (deconvnet, :mod:`medxai_lib.explain.activation_network`) -> binary mask
(fixed threshold, or Gaussian blur + Otsu) -> connected components (``skimage.measure.label``) -> one
box per lesion -> per lesion and layer: the detector's feature patch weighted by the activation and
mask, and its Gram matrix ``G = F^T F / (N C)``. A :class:`DescriptorBank` holds them so lesions can be
filtered, copied, moved and deleted, and saved in a safe format (``.npz`` without pickle + JSON).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.measure import label

from medxai_lib.data.lesions import (LESION_KINDS, STYLE_LAYERS, Box, Descriptor, DescriptorBank, gram, layer_box,
                                     resize_patch)
from medxai_lib.data.phantoms.fundus import DRAW_ORDER
from medxai_lib.explain.activation_network import ActivationNetwork, as_lesion_map
from medxai_lib.models.detector import DRDetector, detector_input

__all__ = ["LESION_KINDS", "STYLE_LAYERS", "Box", "Descriptor", "DescriptorBank", "descriptors_per_image",
           "extract_descriptors", "gram", "layer_box", "lesion_boxes", "resize_patch", "threshold_map"]


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




def _majority_kind(region: np.ndarray, box: Box, lesion_masks: np.ndarray | None) -> str:
    """The lesion kind *visible* on most pixels of ``region`` (inside ``box``): where lesions overlap, a pixel
    belongs to the one the phantom painted last (``DRAW_ORDER``), e.g. an exudate on top of a haemorrhage.
    ``"none"`` if no lesion is under the region, ``"unknown"`` without masks."""
    if lesion_masks is None:
        return "unknown"
    x0, y0, x1, y1 = box
    top = np.full(region.shape, -1)
    for t in DRAW_ORDER:
        top[lesion_masks[t, y0:y1, x0:x1]] = t
    visible = top[region & (top >= 0)]
    return LESION_KINDS[int(np.bincount(visible, minlength=len(lesion_masks)).argmax())] if visible.size else "none"


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
