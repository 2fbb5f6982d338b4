"""Every method on the same images, scored by every metric: the table behind notebook 04."""
from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from medxai_lib.evaluate.faithfulness import deletion_insertion
from medxai_lib.evaluate.localisation import auprc, defined_mean, empty_masks, energy_in_mask, pointing_game, topk_iou
from medxai_lib.evaluate.robustness import sparseness
from medxai_lib.explain.registry import METHODS, as_heatmap, attribute


def random_maps(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Uniform random heatmaps: the baseline every method must beat."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def method_report(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor,
                  methods: dict[str, dict[str, Any]], tolerance: int = 0, n_steps: int = 20, top_k: float = 0.05,
                  seed: int = 0) -> tuple["pandas.DataFrame", dict[str, torch.Tensor]]:
    """Run each method (name -> keyword arguments, e.g. ``{"grad_cam": {"layer": "features"}}``) on
    ``images (B, C, H, W)`` for ``targets (B,)`` and score its ``(B, H, W)`` heatmap against ``masks
    (B, 1, H, W)``: pointing game, energy in mask, top-k IoU, AUPRC, deletion and insertion AUC,
    sparseness and wall time. A ``"random"`` row gives the chance level. Returns (table, heatmaps).

    Localisation metrics are undefined for an image with an empty mask: such images are left out of
    those four columns (all methods alike, one denominator), and a column ``images left out (empty
    mask)`` says how many when there are any. Faithfulness and sparseness use every image."""
    import pandas as pd
    if not isinstance(methods, dict):
        raise TypeError(f"methods: expected a dict of method name -> keyword arguments (e.g. "
                        f"{{'grad_cam': {{'layer': 'features'}}}}), got {type(methods).__name__} {methods!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; valid methods: {', '.join(sorted(METHODS))}")
    size = images.shape[-2:]
    heatmaps: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    for name, kwargs in methods.items():
        start = time.perf_counter()
        output = attribute(model, images, name, classes=targets, **kwargs)
        seconds[name] = time.perf_counter() - start
        heatmaps[name] = as_heatmap(output.detach(), tuple(size))[:, 0].cpu()
    heatmaps["random"] = random_maps((images.shape[0], *size), seed)
    seconds["random"] = 0.0
    n_empty = int(empty_masks(masks).sum())
    rows = []
    for name, heat in heatmaps.items():
        maps = heat[:, None]
        _, deletion = deletion_insertion(model, images, heat.to(images.device), targets, "deletion", n_steps)
        _, insertion = deletion_insertion(model, images, heat.to(images.device), targets, "insertion", n_steps)
        row = {"method": name, "family": METHODS[name].family if name in METHODS else "baseline",
               "pointing game": defined_mean(pointing_game(maps, masks, tolerance)),
               "energy in mask": defined_mean(energy_in_mask(maps, masks)),
               "top-k IoU": defined_mean(topk_iou(maps, masks, top_k)),
               "AUPRC": auprc(maps, masks).nanmean().item(),
               "deletion AUC": deletion.mean().item(), "insertion AUC": insertion.mean().item(),
               "sparseness": sparseness(heat).mean().item(), "seconds": seconds[name]}
        if n_empty:
            row["images left out (empty mask)"] = n_empty
        rows.append(row)
    return pd.DataFrame(rows).set_index("method"), heatmaps
