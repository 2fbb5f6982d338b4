"""Faithfulness: does removing (inserting) the pixels a map ranks first change the score fastest?

Deletion and insertion curves (Petsiuk et al. 2018): pixels are taken in the map's order in
``n_steps`` equal steps; every step of an image goes through the model in one batched forward.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from medxai_lib.explain.capture import check_images, eval_mode


def _probabilities(scores: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(scores) if scores.shape[1] == 1 else torch.softmax(scores, 1)


def _baseline_image(images: torch.Tensor, baseline: str | float) -> torch.Tensor:
    if baseline == "blur":
        side = max(3, (min(images.shape[-2:]) // 8) | 1)
        return gaussian_blur(images, [side, side], [side / 2.0, side / 2.0])
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(images, float(baseline))
    raise ValueError(f"baseline: expected 'blur' or a number, got {baseline!r}")


def deletion_insertion(model: nn.Module | Callable, images: torch.Tensor, maps: torch.Tensor,
                       targets: torch.Tensor, mode: str = "deletion", n_steps: int = 20,
                       baseline: str | float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Curves and AUCs of the target-class probability as pixels are deleted or inserted.

    Args:
        images: ``(B, C, H, W)``; maps: ``(B, H, W)`` or ``(B, 1, H, W)`` at image resolution (higher
            = more important); targets: ``(B,)`` class index per image.
        mode: ``"deletion"`` (start from the image, replace top pixels by the baseline; lower AUC = more
            faithful) or ``"insertion"`` (start from the baseline, paste top pixels; higher = better).
        baseline: default 0 for deletion and ``"blur"`` (Gaussian-blurred image) for insertion.
    Returns: ``(curves (B, n_steps + 1), auc (B,))``, AUC by the trapezoid rule over [0, 1].
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode: expected 'deletion' or 'insertion', got {mode!r}")
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps: expected a positive int, got {n_steps!r}")
    check_images(model, images)
    maps = maps[:, 0] if maps.ndim == 4 else maps
    if maps.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"maps: expected (B, H, W) = {(images.shape[0], *images.shape[-2:])}, got {tuple(maps.shape)}")
    targets = torch.as_tensor(targets, device=images.device).long().view(-1)
    if targets.shape[0] != images.shape[0]:
        raise ValueError(f"targets: expected one class per image ({images.shape[0]}), got {targets.shape[0]}")
    baseline = (0.0 if mode == "deletion" else "blur") if baseline is None else baseline
    other = _baseline_image(images, baseline)
    n_pixels = maps[0].numel()
    order = maps.flatten(1).argsort(dim=1, descending=True, stable=True)          # (B, HW)
    counts = torch.round(torch.linspace(0, n_pixels, n_steps + 1)).long()
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n_pixels, device=order.device).expand_as(order))
    curves = []
    with eval_mode(model), torch.no_grad():
        for b in range(images.shape[0]):
            chosen = (rank[b][None] < counts[:, None].to(rank.device)).view(-1, 1, *images.shape[-2:]).float()
            start, end = (images[b], other[b]) if mode == "deletion" else (other[b], images[b])
            batch = start[None] * (1 - chosen) + end[None] * chosen                    # (S+1, C, H, W)
            curves.append(_probabilities(model(batch))[:, targets[b]])
    curves_t = torch.stack(curves).cpu()
    auc = torch.as_tensor(np.trapezoid(curves_t.numpy(), dx=1.0 / n_steps, axis=1), dtype=torch.float32)
    return curves_t, auc
