"""Robustness and complexity of explanations."""
from __future__ import annotations

from typing import Callable

import torch


def max_sensitivity(explain: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, radius: float = 0.02,
                    n_samples: int = 10, seed: int = 0,
                    perturb: Callable[[torch.Tensor, float], torch.Tensor] | None = None) -> torch.Tensor:
    """Max-sensitivity (Yeh et al. 2019; captum's ``sensitivity_max``): the largest
    ``||E(x + d) - E(x)|| / ||E(x)||`` (Frobenius; a zero ``||E(x)||`` counts as 1) over ``n_samples``
    perturbations, by default uniform in the L-infinity ball of ``radius``. All perturbed copies are
    explained in one batch. Returns ``(B,)``."""
    if radius < 0 or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"radius, n_samples: expected radius >= 0 and a positive int, got {radius!r}, {n_samples!r}")
    if perturb is None:
        generator = torch.Generator(device=images.device).manual_seed(seed)

        def perturb(x: torch.Tensor, r: float) -> torch.Tensor:
            return x + (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * r

    base = explain(images).flatten(1)
    repeated = images.repeat(n_samples, 1, 1, 1)                               # sample-major
    noisy = explain(perturb(repeated, radius)).flatten(1).view(n_samples, images.shape[0], -1)
    norm = base.norm(dim=1)
    norm = torch.where(norm == 0, torch.ones_like(norm), norm)
    return ((noisy - base[None]).norm(dim=2) / norm[None]).amax(0)


def sparseness(maps: torch.Tensor) -> torch.Tensor:
    """Gini index of ``|map|`` (Chalasani et al. 2020; Quantus ``Sparseness``): 0 for a uniform map,
    (n-1)/n for a single pixel. ``(B, ...)`` -> ``(B,)``. Maps with NaN or infinite values are refused
    (a NaN map has no sparseness; it used to score 0, a uniform map)."""
    if not torch.is_tensor(maps) or maps.ndim < 2:
        raise ValueError(f"maps: expected a (B, ...) tensor, got {getattr(maps, 'shape', type(maps).__name__)}")
    if not torch.isfinite(maps).all():
        bad = torch.nonzero(~torch.isfinite(maps).flatten(1).all(1)).flatten().tolist()
        raise ValueError(f"maps: contains NaN or infinite values (map(s) {bad[:10]}); sparseness is undefined")
    flat = maps.detach().flatten(1).abs().double()
    values, _ = flat.sort(dim=1)
    n = values.shape[1]
    i = torch.arange(1, n + 1, dtype=values.dtype, device=values.device)
    total = values.sum(1)
    gini = ((2 * i - n - 1) * values).sum(1) / (n * total.clamp_min(1e-300))
    return torch.where(total > 0, gini, torch.zeros_like(gini)).float()
