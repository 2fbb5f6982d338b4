"""Sanity checks (Adebayo et al. 2018): does the explanation change when the model is randomised?

Cascading model-parameter randomisation re-initialises the network from the top (classifier) down,
one block at a time, and compares each explanation with the trained model's by Spearman rank
correlation and SSIM. A method whose maps survive randomisation explains the input, not the model.
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn


def randomization_order(model: nn.Module) -> list[str]:
    """Blocks from the output back to the input: top-level children, with Sequential / ModuleList
    children expanded one level; only those that hold parameters."""
    names: list[str] = []
    for name, child in model.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            names += [f"{name}.{sub}" for sub, grand in child.named_children() if any(True for _ in grand.parameters())]
        elif any(True for _ in child.parameters()):
            names.append(name)
    return names[::-1]


@torch.no_grad()
def randomize_module(module: nn.Module, generator: torch.Generator) -> None:
    """Fresh random weights for every conv / linear (Kaiming-uniform ranges) and norm layer inside."""
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear)):
            fan_in = sub.weight[0].numel()
            bound = 1.0 / np.sqrt(fan_in)
            sub.weight.copy_((torch.rand(sub.weight.shape, generator=generator) * 2 - 1) * bound * np.sqrt(6))
            if sub.bias is not None:
                sub.bias.copy_((torch.rand(sub.bias.shape, generator=generator) * 2 - 1) * bound)
        elif isinstance(sub, nn.modules.batchnorm._BatchNorm):
            sub.weight.copy_(1 + 0.1 * torch.randn(sub.weight.shape, generator=generator))
            sub.bias.copy_(0.1 * torch.randn(sub.bias.shape, generator=generator))
            sub.running_mean.zero_(), sub.running_var.fill_(1.0)


def _normalise(a: np.ndarray) -> np.ndarray:
    span = a.max() - a.min()
    return (a - a.min()) / span if span > 0 else np.zeros_like(a)


def map_similarity(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rank correlation and SSIM (maps min-max scaled to [0, 1]) of ``(B, H, W)`` pairs."""
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"a, b: expected two (B, H, W) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    rho, ssim = [], []
    for x, y in zip(a.detach().cpu().numpy(), b.detach().cpu().numpy()):
        r = spearmanr(x.ravel(), y.ravel()).statistic if x.std() > 0 and y.std() > 0 else 0.0
        rho.append(r)
        ssim.append(structural_similarity(_normalise(x), _normalise(y), data_range=1.0))
    return np.asarray(rho, dtype=float), np.asarray(ssim, dtype=float)


def cascading_randomization(model: nn.Module, images: torch.Tensor,
                            explain: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                            order: list[str] | None = None, seed: int = 0, absolute: bool = True
                            ) -> "pandas.DataFrame":
    """Randomise ``order`` (default :func:`randomization_order`) cumulatively on a copy of the model.

    ``explain(model, images) -> (B, H, W)`` heatmaps. ``absolute``: compare ``|map|`` (Adebayo et
    al. show both). Returns one row per step: the last block randomised, mean Spearman and mean SSIM
    against the trained model's maps.
    """
    import pandas as pd
    order = randomization_order(model) if order is None else order
    named = dict(model.named_modules())
    unknown = [n for n in order if n not in named]
    if unknown:
        raise ValueError(f"order: no submodules named {unknown}")
    prep = (lambda m: m.abs()) if absolute else (lambda m: m)
    reference = prep(explain(model, images))
    shadow = copy.deepcopy(model).eval()
    shadow_named = dict(shadow.named_modules())
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for name in order:
        randomize_module(shadow_named[name], generator)
        rho, ssim = map_similarity(reference, prep(explain(shadow, images)))
        rows.append({"randomised down to": name, "spearman": float(rho.mean()), "ssim": float(ssim.mean())})
    return pd.DataFrame(rows)
