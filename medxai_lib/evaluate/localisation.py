"""Localisation of saliency maps against ground-truth evidence masks."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _align(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if maps.ndim != 4:
        raise ValueError(f"maps: expected (B, T, h, w), got shape {tuple(maps.shape)}")
    if masks.ndim != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks: expected (B, 1, H, W), got shape {tuple(masks.shape)}")
    if maps.shape[0] != masks.shape[0]:
        raise ValueError(f"maps, masks: batch sizes differ ({maps.shape[0]} vs {masks.shape[0]})")
    maps = maps.float()
    if maps.shape[-2:] != masks.shape[-2:]:
        maps = F.interpolate(maps, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    return maps, masks.to(maps.device) > 0.5


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """Hit if the map's maximum (after bilinear upsampling to the mask) lies in the mask dilated by
    ``tolerance`` pixels. ``maps (B, T, h, w)``, ``masks (B, 1, H, W)`` -> ``(B, T)`` bool.
    Ties go to the first maximum in raster order, so a constant map usually misses."""
    if not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance: expected an int >= 0, got {tolerance!r}")
    maps, masks = _align(maps, masks)
    if tolerance:
        masks = F.max_pool2d(masks.float(), 2 * tolerance + 1, stride=1, padding=tolerance) > 0.5
    flat_idx = maps.flatten(2).argmax(-1)                                # (B, T)
    return masks.flatten(2).expand(-1, maps.shape[1], -1).gather(2, flat_idx[..., None])[..., 0]


def energy_in_mask(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of the positive map mass inside the mask (energy-based pointing game), ``(B, T)``.
    A map with no positive mass scores 0."""
    maps, masks = _align(maps, masks)
    positive = maps.clamp_min(0).flatten(2)
    inside = (positive * masks.flatten(2)).sum(-1)
    total = positive.sum(-1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.zeros_like(total))


def mask_fraction(masks: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """Area share of each (dilated) mask, ``(B,)``: the pointing game's chance level."""
    if masks.ndim != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks: expected (B, 1, H, W), got shape {tuple(masks.shape)}")
    masks = masks.float()
    if tolerance:
        masks = F.max_pool2d(masks, 2 * tolerance + 1, stride=1, padding=tolerance)
    return (masks > 0.5).float().flatten(1).mean(1)


def localisation_summary(maps_by_name: dict[str, torch.Tensor], masks: torch.Tensor, tolerance: int = 0
                         ) -> "pandas.DataFrame":
    """One row per map set: pointing-game hit rate and energy share, each beside its chance level
    (the mean area share of the dilated mask, resp. of the mask). Maps ``(B, 1, h, w)``."""
    import pandas as pd

    chance_point = mask_fraction(masks, tolerance).mean().item()
    chance_energy = mask_fraction(masks).mean().item()
    rows = []
    for name, maps in maps_by_name.items():
        rows.append({"maps": name, "grid": "x".join(map(str, maps.shape[-2:])),
                     "pointing game": pointing_game(maps[:, :1], masks, tolerance).float().mean().item(),
                     "pointing chance": chance_point,
                     "energy in mask": energy_in_mask(maps[:, :1], masks).mean().item(),
                     "energy chance": chance_energy})
    return pd.DataFrame(rows).set_index("maps")


def topk_iou(maps: torch.Tensor, masks: torch.Tensor, k: float = 0.05) -> torch.Tensor:
    """IoU between the top ``k`` share of each map's pixels and the mask, ``(B, T)``."""
    if not 0 < k <= 1:
        raise ValueError(f"k: expected a fraction in (0, 1], got {k!r}")
    maps, masks = _align(maps, masks)
    flat = maps.flatten(2)
    n_top = max(1, int(round(k * flat.shape[-1])))
    top_idx = flat.topk(n_top, dim=-1).indices
    top = torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, top_idx, True)
    truth = masks.flatten(2).expand_as(top)
    inter = (top & truth).sum(-1).float()
    union = (top | truth).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def auprc(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Area under the precision-recall curve of pixel scores against the mask (average precision),
    ``(B, T)``; NaN for an empty mask. Chance level = the mask's area share."""
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
