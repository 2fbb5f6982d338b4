"""Network dissection (Bau et al. 2017) on concept masks, and the angular coverage of border units.

For unit k of a layer, ``T_k`` is the top-``quantile`` activation over every position of every image
(default: the top 0.5%). Its map, upsampled bilinearly to the mask size and thresholded at ``T_k``, is
compared with each concept mask; IoU_kc = sum over images of the intersection / sum of the union. A
unit *detects* concept c when IoU_kc > ``min_iou`` (Bau: 0.04).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medxai_lib.explain.capture import check_images, eval_mode, forward_with_capture, resolve_layer


def layer_activations(model: nn.Module, images: torch.Tensor, layer: str, batch_size: int = 64) -> torch.Tensor:
    """Activations of ``layer`` for every image, ``(N, K, h, w)``, in batched no-grad forwards."""
    check_images(model, images)
    named = [resolve_layer(model, layer)]
    outs = []
    with eval_mode(model), torch.no_grad():
        for part in images.split(batch_size):
            _, acts = forward_with_capture(model, part, named)
            outs.append(acts[named[0][0]].detach())
    return torch.cat(outs)


class NetworkDissection:
    """scikit-learn-style dissection: ``fit(activations, concepts)`` then ``iou_``, ``thresholds_``.

    Args:
        quantile: the top share of activations that counts as "firing" (Bau: 0.005).
        min_iou: a unit detects a concept above this IoU (Bau: 0.04).
    """

    def __init__(self, quantile: float = 0.005, min_iou: float = 0.04, batch_size: int = 64) -> None:
        if not 0 < quantile < 1:
            raise ValueError(f"quantile: expected a share in (0, 1), got {quantile!r}")
        self.quantile, self.min_iou, self.batch_size = quantile, min_iou, batch_size

    def fit(self, activations: torch.Tensor, concepts: torch.Tensor, concept_names: Sequence[str] | None = None
            ) -> "NetworkDissection":
        """``activations (N, K, h, w)``, ``concepts (N, C, H, W)`` binary masks."""
        if activations.ndim != 4 or concepts.ndim != 4 or activations.shape[0] != concepts.shape[0]:
            raise ValueError(f"activations, concepts: expected (N, K, h, w) and (N, C, H, W) with one N, got "
                             f"{tuple(activations.shape)} and {tuple(concepts.shape)}")
        names = list(concept_names) if concept_names is not None else [f"concept{c}" for c in range(concepts.shape[1])]
        if len(names) != concepts.shape[1]:
            raise ValueError(f"concept_names: expected {concepts.shape[1]} names, got {len(names)}")
        per_unit = activations.transpose(0, 1).flatten(1).float()            # (K, N*h*w)
        self.thresholds_ = torch.quantile(per_unit, 1 - self.quantile, dim=1) if per_unit.shape[1] <= 16_000_000 \
            else torch.stack([torch.quantile(row[torch.randperm(len(row))[:16_000_000]], 1 - self.quantile) for row in per_unit])
        k, c = activations.shape[1], concepts.shape[1]
        inter, union = torch.zeros(k, c, dtype=torch.float64), torch.zeros(k, c, dtype=torch.float64)
        for start in range(0, activations.shape[0], self.batch_size):
            acts = activations[start:start + self.batch_size].float()
            masks = concepts[start:start + self.batch_size] > 0.5              # (b, C, H, W)
            fired = F.interpolate(acts, size=masks.shape[-2:], mode="bilinear", align_corners=False) \
                > self.thresholds_.view(1, -1, 1, 1)                           # (b, K, H, W)
            fired_f, masks_f = fired.flatten(2).double(), masks.flatten(2).double()
            both = torch.einsum("bkp,bcp->kc", fired_f, masks_f)
            inter += both
            union += fired_f.sum((0, 2))[:, None] + masks_f.sum((0, 2))[None, :] - both
        self.iou_ = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter)).float()
        self.concept_names_ = names
        return self

    def units_for(self, concept: str, top: int | None = None) -> list[int]:
        """Units detecting ``concept`` (IoU > min_iou), best first; ``top`` caps the list."""
        column = self.iou_[:, self.concept_names_.index(concept)]
        order = [int(u) for u in column.argsort(descending=True) if column[u] > self.min_iou]
        return order[:top] if top else order

    def best_concept(self) -> list[tuple[int, str, float]]:
        """For each unit: (unit, its best concept, IoU)."""
        best = self.iou_.max(1)
        return [(k, self.concept_names_[int(c)], float(v)) for k, (v, c) in enumerate(zip(best.values, best.indices))]

    def table(self) -> "pandas.DataFrame":
        import pandas as pd
        return pd.DataFrame(self.iou_.numpy(), columns=self.concept_names_).rename_axis("unit")


def angular_coverage(activations: torch.Tensor, thresholds: torch.Tensor, border: torch.Tensor,
                     centres: torch.Tensor, units: Iterable[int], n_sectors: int = 8) -> torch.Tensor:
    """Where around the lesion each unit fires on the border: for every unit, the share of its firing
    border pixels in each of ``n_sectors`` angular sectors (image frame, measured from each lesion's
    centre). ``activations (N, K, h, w)``, ``border (N, 1, H, W)``, ``centres (N, 2)`` (x, y in [0, 1]).
    Returns ``(len(units), n_sectors)`` rows summing to 1 (zeros if a unit never fires on a border)."""
    units = list(units)
    size = border.shape[-2:]
    ys, xs = torch.meshgrid((torch.arange(size[0]) + 0.5) / size[0], (torch.arange(size[1]) + 0.5) / size[1], indexing="ij")
    angle = torch.atan2(ys[None] - centres[:, 1, None, None], xs[None] - centres[:, 0, None, None])   # (N, H, W)
    sector = ((angle + np.pi) / (2 * np.pi) * n_sectors).long().clamp(0, n_sectors - 1)
    out = torch.zeros(len(units), n_sectors)
    for row, unit in enumerate(units):
        fired = F.interpolate(activations[:, unit:unit + 1].float(), size=size, mode="bilinear", align_corners=False)[:, 0] \
            > thresholds[unit]
        hits = fired & (border[:, 0] > 0.5)
        counts = torch.bincount(sector[hits], minlength=n_sectors).float()
        out[row] = counts / counts.sum() if counts.sum() > 0 else counts
    return out
