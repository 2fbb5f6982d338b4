"""Lesion crops from fundus phantoms: small patches centred on each phantom lesion (labelled by its type)
and on lesion-free places in the field of view (labelled ``"none"``). They train the independent
lesion-type classifier of notebook 06 (:class:`medxai_lib.models.lesion_classifier.LesionTypeNet`),
which then reads the inoculated boxes of synthetic fundi with :func:`crops_at`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

CROP_KINDS = ("none", "microaneurysm", "haemorrhage", "hard_exudate", "cotton_wool")


def crops_at(images: torch.Tensor, image_index: Sequence[int], centres: Sequence[tuple[float, float]],
             size: int = 16) -> torch.Tensor:
    """``size x size`` crops of ``images`` ``(B, 3, S, S)`` centred on ``centres[k] = (x, y)`` (pixels) of
    image ``image_index[k]``; zero padding beyond the border. Returns ``(N, 3, size, size)``."""
    if images.ndim != 4:
        raise ValueError(f"images: expected (B, C, S, S), got shape {tuple(images.shape)}")
    if len(image_index) != len(centres):
        raise ValueError(f"centres: expected one centre per image index ({len(image_index)}), got {len(centres)}")
    if not isinstance(size, int) or size < 2:
        raise ValueError(f"size: expected an int >= 2, got {size!r}")
    padded = F.pad(images, (size, size, size, size))
    out = []
    for b, (x, y) in zip(image_index, centres):
        x0, y0 = int(round(x - size / 2)) + size, int(round(y - size / 2)) + size
        out.append(padded[int(b), :, y0:y0 + size, x0:x0 + size])
    return torch.stack(out) if out else images.new_zeros(0, images.shape[1], size, size)


def lesion_centres(item: dict[str, Any]) -> list[tuple[str, float, float]]:
    """``(kind, x, y)`` box centres of one phantom item's lesions of the kinds in :data:`CROP_KINDS`."""
    return [(kind, (x0 + x1) / 2, (y0 + y1) / 2) for kind, x0, y0, x1, y1 in item["meta"]["boxes"] if kind in CROP_KINDS]


def background_centres(item: dict[str, Any], count: int, rng: np.random.Generator, size: int = 16,
                       clear: int = 4) -> list[tuple[float, float]]:
    """Up to ``count`` random centres inside the field of view with no lesion within ``clear`` pixels
    (vessels and the optic disc are allowed: they are part of a healthy retina)."""
    fov, lesions = item["fov"][0].numpy() > 0.5, item["lesions"].numpy().any(0)
    s = fov.shape[-1]
    out: list[tuple[float, float]] = []
    for _ in range(50 * count):
        if len(out) == count:
            break
        x, y = rng.integers(size // 2, s - size // 2, 2)
        if fov[y, x] and not lesions[max(0, y - clear):y + clear + 1, max(0, x - clear):x + clear + 1].any():
            out.append((float(x), float(y)))
    return out


class LesionCropDataset(Dataset):
    """Crops of a fundus phantom (items with ``image`` in [0, 1], ``lesions``, ``fov``, ``meta``): one per
    lesion of the four kinds (label = index in :data:`CROP_KINDS`) and ``background_per_image`` lesion-free
    crops per image (label 0). Items: ``image`` ``(3, size, size)``, ``label`` ``()``."""

    def __init__(self, phantom: Dataset, size: int = 16, background_per_image: int = 6, seed: int = 0) -> None:
        if len(phantom) == 0:
            raise ValueError("phantom: empty dataset")
        rng = np.random.default_rng(seed)
        crops, labels = [], []
        for index in range(len(phantom)):
            item = phantom[index]
            if item["image"].min() < 0:
                raise ValueError("phantom: expected images in [0, 1] (build it with normalize=False)")
            found = lesion_centres(item)
            centres = [(x, y) for _, x, y in found] + background_centres(item, background_per_image, rng, size)
            labels += [CROP_KINDS.index(kind) for kind, _, _ in found] + [0] * (len(centres) - len(found))
            crops.append(crops_at(item["image"][None], [0] * len(centres), centres, size))
        self.images = torch.cat(crops)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "label": torch.tensor(self.labels[index])}
