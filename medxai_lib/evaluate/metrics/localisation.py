"""Localisation of saliency maps against ground-truth evidence masks.

Every metric here is undefined for an image whose mask is empty (nothing to point at): it returns
NaN there, never a 0 that would count as a miss; summaries average the defined values and say how
many images were left out. Maps or masks with NaN or infinite values are refused.

Each metric states its good direction and its chance level (what a map that knows nothing scores) beside its
definition, and where it departs from Quantus (Hedström et al. 2023), which keeps a ``score_direction`` with
each metric; :data:`SCORE_DIRECTION` is the same here.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F


SCORE_DIRECTION = {"pointing game": "higher", "energy in mask": "higher", "top-k IoU": "higher", "AUPRC": "higher"}


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name}: contains NaN or infinite values; localisation of a non-finite "
                         f"{'map' if name == 'maps' else 'mask'} is undefined")


def _align(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(maps, torch.Tensor) or maps.ndim != 4:
        raise ValueError(f"maps: expected a (B, T, h, w) tensor, got shape {tuple(getattr(maps, 'shape', ()))}")
    if not isinstance(masks, torch.Tensor) or masks.ndim != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks: expected a (B, 1, H, W) tensor, got shape {tuple(getattr(masks, 'shape', ()))}")
    if maps.shape[0] != masks.shape[0]:
        raise ValueError(f"maps, masks: batch sizes differ ({maps.shape[0]} vs {masks.shape[0]})")
    _check_finite("maps", maps)
    _check_finite("masks", masks)
    maps = maps.float()
    if maps.shape[-2:] != masks.shape[-2:]:
        maps = F.interpolate(maps, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    return maps, masks.to(maps.device) > 0.5


def _empty(masks: torch.Tensor) -> torch.Tensor:
    """``(B, 1)`` bool: True where the (binarised) mask has no pixel."""
    return ~masks.flatten(1).any(1, keepdim=True)


def _nan_where_empty(values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return torch.where(_empty(masks), torch.full_like(values, float("nan")), values)


def defined_mean(values: torch.Tensor) -> float:
    """Mean over the defined (non-NaN) values; NaN if none is defined."""
    nan = torch.isnan(values)
    return values.mean().item() if not nan.any() else values.nanmean().item()


def _check_tolerance(tolerance: object) -> int:
    if not isinstance(tolerance, numbers.Integral) or isinstance(tolerance, (bool, np.bool_)) or tolerance < 0:
        raise ValueError(f"tolerance: expected an int >= 0, got {tolerance!r}")
    return int(tolerance)


def empty_masks(masks: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: which ``(B, 1, H, W)`` masks are empty (their images are left out of every
    localisation metric)."""
    if not isinstance(masks, torch.Tensor) or masks.ndim != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks: expected a (B, 1, H, W) tensor, got shape {tuple(getattr(masks, 'shape', ()))}")
    return _empty(masks > 0.5)[:, 0]


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """Hit if the map's maximum (after bilinear upsampling to the mask) lies in the mask dilated by
    ``tolerance`` pixels. ``maps (B, T, h, w)``, ``masks (B, 1, H, W)`` -> ``(B, T)`` float: 1.0 hit,
    0.0 miss, NaN for an empty mask (undefined). Ties go to the first maximum in raster order, so a
    constant map usually misses.

    Good direction: higher. Chance level: the area share of the dilated mask (:func:`mask_fraction`). Differs
    from Quantus' ``PointingGame``, which counts a hit when *any* of several tied maxima lies in the mask (a
    constant map then always hits)."""
    tolerance = _check_tolerance(tolerance)
    maps, masks = _align(maps, masks)
    empty = _empty(masks)
    if tolerance:
        masks = F.max_pool2d(masks.float(), 2 * tolerance + 1, stride=1, padding=tolerance) > 0.5
    flat_idx = maps.flatten(2).argmax(-1)                                # (B, T)
    hits = masks.flatten(2).expand(-1, maps.shape[1], -1).gather(2, flat_idx[..., None])[..., 0].float()
    return torch.where(empty, torch.full_like(hits, float("nan")), hits)


def energy_in_mask(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of the positive map mass inside the mask (energy-based pointing game), ``(B, T)``.
    A map with no positive mass scores 0; an empty mask gives NaN (undefined).

    Good direction: higher. Chance level: the mask's area share (a uniform map). Positive mass only: negative
    values are clipped to 0 first, unlike Quantus' ``RelevanceMassAccuracy``, which sums the raw values (so
    there a signed map's negative mass outside the mask raises the score)."""
    maps, masks = _align(maps, masks)
    positive = maps.clamp_min(0).flatten(2)
    inside = (positive * masks.flatten(2)).sum(-1)
    total = positive.sum(-1)
    share = torch.where(total > 0, inside / total.clamp_min(1e-12), torch.zeros_like(total))
    return _nan_where_empty(share, masks)


def mask_fraction(masks: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """Area share of each (dilated) mask, ``(B,)``: the pointing game's chance level."""
    if not isinstance(masks, torch.Tensor) or masks.ndim != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks: expected (B, 1, H, W), got shape {tuple(getattr(masks, 'shape', ()))}")
    tolerance = _check_tolerance(tolerance)
    masks = masks.float()
    if tolerance:
        masks = F.max_pool2d(masks, 2 * tolerance + 1, stride=1, padding=tolerance)
    return (masks > 0.5).float().flatten(1).mean(1)


def localisation_summary(maps_by_name: dict[str, torch.Tensor], masks: torch.Tensor, tolerance: int = 0
                         ) -> "pandas.DataFrame":
    """One row per map set: pointing-game hit rate and energy share, each beside its chance level
    (the mean area share of the dilated mask, resp. of the mask). Maps ``(B, 1, h, w)``.
    Images with an empty mask are left out of every column (chance levels included); when there are
    any, a column ``images left out (empty mask)`` says how many."""
    import pandas as pd

    empty = empty_masks(masks)
    kept = masks[~empty]
    chance_point = mask_fraction(kept, tolerance).mean().item() if len(kept) else float("nan")
    chance_energy = mask_fraction(kept).mean().item() if len(kept) else float("nan")
    rows = []
    for name, maps in maps_by_name.items():
        row = {"maps": name, "grid": "x".join(map(str, maps.shape[-2:])),
               "pointing game": defined_mean(pointing_game(maps[:, :1], masks, tolerance)),
               "pointing chance": chance_point,
               "energy in mask": defined_mean(energy_in_mask(maps[:, :1], masks)),
               "energy chance": chance_energy}
        if empty.any():
            row["images left out (empty mask)"] = int(empty.sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("maps")


def topk_iou(maps: torch.Tensor, masks: torch.Tensor, k: float = 0.05) -> torch.Tensor:
    """IoU between the top ``k`` share of each map's pixels and the mask, ``(B, T)``; NaN for an
    empty mask (undefined).

    Good direction: higher. Chance level: for a mask of area share m, random top-k pixels give about
    ``k m / (k + m - k m)``. Quantus' ``TopKIntersection`` counts the share of the top k pixels inside the mask
    (a precision), not an IoU."""
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or not 0 < k <= 1:
        raise ValueError(f"k: expected a fraction in (0, 1], got {k!r}")
    maps, masks = _align(maps, masks)
    flat = maps.flatten(2)
    n_top = max(1, int(round(k * flat.shape[-1])))
    top_idx = flat.topk(n_top, dim=-1).indices
    top = torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, top_idx, True)
    truth = masks.flatten(2).expand_as(top)
    inter = (top & truth).sum(-1).float()
    union = (top | truth).sum(-1).float()
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
    return _nan_where_empty(iou, masks)


def auprc(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Area under the precision-recall curve of pixel scores against the mask (average precision),
    ``(B, T)``; NaN for an empty mask.

    Good direction: higher. Chance level: the mask's area share. Average precision (scikit-learn's step
    interpolation), which Quantus has no counterpart of (its ``AUC`` metric is the ROC AUC of pixel scores)."""
    from sklearn.metrics import average_precision_score
    maps, masks = _align(maps, masks)
    out = torch.full(maps.shape[:2], float("nan"))
    for b in range(maps.shape[0]):
        truth = masks[b, 0].flatten().cpu().numpy()
        if not truth.any():
            continue
        for t in range(maps.shape[1]):
            out[b, t] = float(average_precision_score(truth, maps[b, t].flatten().cpu().numpy()))
    return out
