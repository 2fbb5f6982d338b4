"""Faithfulness: does removing (inserting) the pixels a map ranks first change the score fastest?

Deletion and insertion curves (Petsiuk et al. 2018): pixels are taken in the map's order in
``n_steps`` equal steps; every step of an image goes through the model in one batched forward.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from medxai_lib.models.inference import INFERENCE_BATCH, fast_forward
from medxai_lib.explain.capture import check_images, check_scores, explaining


def _probabilities(scores: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(scores) if scores.shape[1] == 1 else torch.softmax(scores, 1)


def _baseline_image(images: torch.Tensor, baseline: str | float) -> torch.Tensor:
    if baseline == "blur":
        side = max(3, (min(images.shape[-2:]) // 8) | 1)
        from torchvision.transforms.functional import gaussian_blur   # torchvision costs ~1.2 s to import: only when blurring
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
            = more important; finite); targets: ``(B,)`` integer class index per image, in
            ``[0, K)`` (floats, bools and negative indices are refused, not truncated or wrapped).
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
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps: expected a tensor (B, H, W) or (B, 1, H, W), got {type(maps).__name__}")
    maps = maps[:, 0] if maps.ndim == 4 else maps
    if maps.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"maps: expected (B, H, W) = {(images.shape[0], *images.shape[-2:])}, got {tuple(maps.shape)}")
    if not torch.isfinite(maps).all():
        raise ValueError("maps: contains NaN or infinite values; the pixel order they define is undefined")
    targets = torch.as_tensor(np.asarray(targets) if not isinstance(targets, torch.Tensor) else targets)
    if targets.dtype == torch.bool or targets.is_floating_point() or targets.is_complex():
        raise TypeError(f"targets: expected integer class indices, got dtype {targets.dtype} "
                        "(non-integer targets would be truncated, e.g. 0.9 -> class 0)")
    targets = targets.to(images.device).long().view(-1)
    if targets.shape[0] != images.shape[0]:
        raise ValueError(f"targets: expected one class per image ({images.shape[0]}), got {targets.shape[0]}")
    baseline = (0.0 if mode == "deletion" else "blur") if baseline is None else baseline
    other = _baseline_image(images, baseline)
    n_pixels = maps[0].numel()
    order = maps.flatten(1).argsort(dim=1, descending=True, stable=True)          # (B, HW)
    counts = torch.round(torch.linspace(0, n_pixels, n_steps + 1)).long()
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n_pixels, device=order.device).expand_as(order))
    curves = []
    with explaining(model), torch.no_grad(), fast_forward(model) as run:
        for b in range(images.shape[0]):
            chosen = (rank[b][None] < counts[:, None].to(rank.device)).view(-1, 1, *images.shape[-2:]).float()
            start, end = (images[b], other[b]) if mode == "deletion" else (other[b], images[b])
            batch = start[None] * (1 - chosen) + end[None] * chosen                    # (S+1, C, H, W)
            scores = check_scores(run(batch), len(batch))
            if b == 0 and (targets.min() < 0 or targets.max() >= scores.shape[1]):
                bad = targets[(targets < 0) | (targets >= scores.shape[1])].unique().tolist()
                raise ValueError(f"targets: {bad} out of range for a model with {scores.shape[1]} output(s) "
                                 f"(valid: 0..{scores.shape[1] - 1}; negative indices are not wrapped)")
            curves.append(_probabilities(scores)[:, targets[b]])
    curves_t = torch.stack(curves).cpu()
    auc = torch.as_tensor(np.trapezoid(curves_t.numpy(), dx=1.0 / n_steps, axis=1), dtype=torch.float32)
    return curves_t, auc


def _order_key(rank: torch.Tensor) -> bytes:
    return rank.cpu().numpy().tobytes()


def deletion_insertion_many(model: nn.Module | Callable, images: torch.Tensor, maps: dict[str, torch.Tensor],
                            targets: torch.Tensor, n_steps: int = 20, deletion_baseline: str | float = 0.0,
                            insertion_baseline: str | float = "blur", batch_size: int = INFERENCE_BATCH
                            ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Deletion and insertion curves of many maps of the same images in large batched forwards.

    The same numbers as :func:`deletion_insertion` called per map and mode (up to float round-off of
    different batch sizes), at a fraction of the cost: the two end points of each curve (the image
    and the baseline) are shared by all maps and computed once per image, maps that rank an image's
    pixels identically (e.g. Grad-CAM and HiRes-CAM at the pooled layer) share their forwards, and
    perturbed images of all maps go through :func:`~medxai_lib.models.inference.fast_forward` about
    ``batch_size`` at a time.

    Args:
        images: ``(B, C, H, W)``; maps: name -> ``(B, H, W)`` finite maps at image resolution;
        targets: ``(B,)`` integer class per image; baselines as in :func:`deletion_insertion`.
    Returns: name -> ``(deletion curves (B, n_steps + 1), insertion curves (B, n_steps + 1))``;
        AUCs follow with ``np.trapezoid(curves, dx=1 / n_steps, axis=1)``.
    """
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps: expected a positive int, got {n_steps!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if not isinstance(maps, dict) or not maps:
        raise ValueError("maps: expected a non-empty dict name -> (B, H, W) maps")
    check_images(model, images)
    batch, size = images.shape[0], tuple(images.shape[-2:])
    for name, m in maps.items():
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != (batch, *size):
            raise ValueError(f"maps[{name!r}]: expected (B, H, W) = {(batch, *size)}, got {tuple(getattr(m, 'shape', ()))}")
        if not torch.isfinite(m).all():
            raise ValueError(f"maps[{name!r}]: contains NaN or infinite values; the pixel order is undefined")
    targets = torch.as_tensor(np.asarray(targets) if not isinstance(targets, torch.Tensor) else targets)
    if targets.dtype == torch.bool or targets.is_floating_point() or targets.is_complex():
        raise TypeError(f"targets: expected integer class indices, got dtype {targets.dtype}")
    targets = targets.long().view(-1).cpu()
    if targets.shape[0] != batch:
        raise ValueError(f"targets: expected one class per image ({batch}), got {targets.shape[0]}")
    removed, inserted = _baseline_image(images, deletion_baseline), _baseline_image(images, insertion_baseline)
    n_pixels = size[0] * size[1]
    counts = torch.round(torch.linspace(0, n_pixels, n_steps + 1)).long().to(images.device)
    inner = counts[1:-1]
    # per image: the end points [image, deletion baseline, insertion baseline], then per unique order
    # (S - 1) deletion steps and (S - 1) insertion steps
    jobs: list[tuple[int, torch.Tensor | None]] = []
    slots: dict[tuple[int, str], int] = {}
    for b in range(batch):
        jobs.append((b, None))
        seen: dict[bytes, int] = {}
        for name, m in maps.items():
            order = m[b].flatten().to(images.device).argsort(descending=True, stable=True)
            rank = torch.empty_like(order).scatter_(0, order, torch.arange(n_pixels, device=order.device))
            key = _order_key(rank)
            if key not in seen:
                seen[key] = len(jobs)
                jobs.append((b, rank))
            slots[(b, name)] = seen[key]
    probs: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []

    def flush() -> None:
        if pending:
            stack = torch.cat(pending)
            scores = check_scores(run(stack), len(stack))
            probs.append(_probabilities(scores).cpu())
            pending.clear()

    with explaining(model), torch.no_grad(), fast_forward(model) as run:
        n_pending = 0
        for b, rank in jobs:
            if rank is None:
                part = torch.stack([images[b], removed[b], inserted[b]])
            else:
                chosen = (rank[None] < inner[:, None]).view(-1, 1, *size).to(images.dtype)
                deleted = images[b][None] * (1 - chosen) + removed[b][None] * chosen
                pasted = inserted[b][None] * (1 - chosen) + images[b][None] * chosen
                part = torch.cat([deleted, pasted])
            pending.append(part)
            n_pending += len(part)
            if n_pending >= batch_size:
                flush()
                n_pending = 0
        flush()
    table = torch.cat(probs)
    if targets.min() < 0 or targets.max() >= table.shape[1]:
        raise ValueError(f"targets: out of range for a model with {table.shape[1]} output(s)")
    starts = np.cumsum([0] + [3 if rank is None else 2 * (n_steps - 1) for _, rank in jobs])
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    ends = {b: starts[j] for j, (b, rank) in enumerate(jobs) if rank is None}
    for name in maps:
        deletion, insertion = [], []
        for b in range(batch):
            t = targets[b]
            e = table[ends[b]:ends[b] + 3, t]                                  # image, deleted, blurred
            s = table[starts[slots[(b, name)]]:starts[slots[(b, name)]] + 2 * (n_steps - 1), t]
            deletion.append(torch.cat([e[:1], s[:n_steps - 1], e[1:2]]))
            insertion.append(torch.cat([e[2:3], s[n_steps - 1:], e[:1]]))
        out[name] = (torch.stack(deletion), torch.stack(insertion))
    return out
