"""Sanity checks (Adebayo et al. 2018): does the explanation change when the model is randomised?

Cascading model-parameter randomisation re-initialises the network from the top (classifier) down,
one block at a time, and compares each explanation with the trained model's by Spearman rank
correlation and SSIM. A method whose maps survive randomisation explains the input, not the model.
Independent randomisation re-initialises one block at a time, the others keeping their trained weights.

A map can *collapse* to a constant (a ReLU'd Grad-CAM of a random network is often all zeros): its rank
correlation with anything is undefined and its SSIM after min-max scaling is meaningless, so
:func:`randomisation_test` reports it as collapsed (NaN similarity, counted separately), never as similar.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch
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


def collapsed(maps: torch.Tensor, rtol: float = 1e-6) -> np.ndarray:
    """``(B,)`` bool: which ``(B, H, W)`` maps are constant (max - min <= ``rtol`` x max |map|, or all zero)."""
    if maps.ndim != 3:
        raise ValueError(f"maps: expected (B, H, W), got shape {tuple(maps.shape)}")
    flat = maps.detach().flatten(1).double().cpu()
    span = flat.amax(1) - flat.amin(1)
    return (span <= rtol * flat.abs().amax(1)).numpy() | (span == 0).numpy()


def _ranks(flat: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata
    return rankdata(flat, axis=1)


def aligned_gap(a: torch.Tensor, b: torch.Tensor, reduce: str = "max") -> float:
    """How much two sets of maps ``(B, ...)`` disagree, whatever their scale: per map
    ``||a - s b|| / ||a||`` with ``s = max(<a, b> / <b, b>, 0)`` the least-squares non-negative scale, then the
    largest over maps (``reduce="max"``: an identity must hold on every map) or the median map's
    (``reduce="median"``: the typical disagreement, which one map that is zero cannot dominate). 0 when every map
    of ``b`` is a positive multiple of ``a``'s; 1 when they are orthogonal, opposite or ``b`` is 0 (``a`` = 0 = ``b``
    counts as 0, ``a`` = 0 alone as 1). Unlike ``max |a - b| / max |a|`` it does not grow with a difference in
    scale (a method that returns 100 x the map agrees perfectly)."""
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"a, b: expected maps of one shape (B, ...), got {tuple(a.shape)} and {tuple(b.shape)}")
    if reduce not in ("max", "median"):
        raise ValueError(f"reduce: expected 'max' or 'median', got {reduce!r}")
    x, y = a.detach().flatten(1).double(), b.detach().flatten(1).double()
    xx, yy, xy = (x * x).sum(1), (y * y).sum(1), (x * y).sum(1)
    scale = torch.where(yy > 0, xy / yy.clamp(min=1e-300), torch.zeros_like(xy)).clamp(min=0)
    residual = (x - scale[:, None] * y).norm(dim=1)
    gap = torch.where(xx > 0, residual / xx.sqrt().clamp(min=1e-300), (yy > 0).double())
    return float(gap.max() if reduce == "max" else gap.median())


def similarity_or_nan(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rank correlation and SSIM (of min-max scaled maps) of ``(B, H, W)`` pairs, NaN where either map has
    collapsed to a constant (the similarity is undefined there)."""
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"a, b: expected two (B, H, W) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    undefined = collapsed(a) | collapsed(b)
    x, y = a.detach().cpu().double().flatten(1).numpy(), b.detach().cpu().double().flatten(1).numpy()
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    denom = np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum(1))
    rho = np.where(undefined, np.nan, (rx * ry).sum(1) / np.where(denom > 0, denom, 1.0))
    ssim = np.array([np.nan if u else structural_similarity(_normalise(p), _normalise(q), data_range=1.0)
                     for u, p, q in zip(undefined, a.detach().cpu().numpy(), b.detach().cpu().numpy())])
    return rho, ssim


@dataclass
class RandomisationResult:
    """Per-image similarities to the trained model's maps, per method and step.

    ``steps[0]`` is ``"trained"`` (the reference: similarity 1); then one step per block. ``spearman[m]``
    and ``ssim[m]`` are ``(S, B)`` with NaN where a map collapsed; ``collapsed[m]`` is ``(S, B)`` bool
    (the randomised map is constant); ``reference_collapsed[m]`` is ``(B,)`` (the trained map is)."""
    mode: str
    steps: list[str]
    spearman: dict[str, np.ndarray]
    ssim: dict[str, np.ndarray]
    collapsed: dict[str, np.ndarray]
    reference_collapsed: dict[str, np.ndarray]

    def table(self) -> "pandas.DataFrame":
        """Long table: method, step, mean Spearman and SSIM over images where both maps are defined,
        and the share of images whose randomised map collapsed."""
        import pandas as pd
        rows = []
        for method in self.spearman:
            for s, step in enumerate(self.steps):
                rho, ssim = self.spearman[method][s], self.ssim[method][s]
                rows.append({"method": method, "randomised": step, "step": s,
                             "spearman": float(np.nanmean(rho)) if np.isfinite(rho).any() else np.nan,
                             "ssim": float(np.nanmean(ssim)) if np.isfinite(ssim).any() else np.nan,
                             "collapsed": float(self.collapsed[method][s].mean())})
        return pd.DataFrame(rows)

    def final(self, method: str, metric: str = "spearman", collapsed_as: float | None = None) -> np.ndarray:
        """``(B,)`` similarity at the last step (the whole model randomised in cascading mode). A map that
        collapsed there is NaN, or ``collapsed_as`` when given (e.g. 0: a constant map keeps none of
        the trained map's ranking)."""
        values = {"spearman": self.spearman, "ssim": self.ssim}[metric][method][-1].copy()
        if collapsed_as is not None:
            values[self.collapsed[method][-1] & ~self.reference_collapsed[method]] = collapsed_as
        return values


def randomisation_test(model: nn.Module, images: torch.Tensor,
                       explainers: Mapping[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]],
                       order: list[str] | None = None, mode: str = "cascading", seed: int = 0,
                       absolute: bool = True) -> RandomisationResult:
    """Adebayo et al.'s model-parameter randomisation test for several methods at once.

    ``explainers``: name -> ``explain(model, images) -> (B, H, W)``. ``mode="cascading"`` randomises
    ``order`` (default :func:`randomization_order`, top block first) cumulatively on one copy, so the
    last step is the fully random network; ``"independent"`` randomises each block alone on a fresh copy.
    ``absolute``: compare ``|map|``. The trained model is never modified."""
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode: expected 'cascading' or 'independent', got {mode!r}")
    if not explainers:
        raise ValueError("explainers: expected at least one name -> explain(model, images) function")
    order = randomization_order(model) if order is None else list(order)
    named = dict(model.named_modules())
    unknown = [n for n in order if n not in named]
    if unknown:
        raise ValueError(f"order: no submodules named {unknown}")
    prep = (lambda m: m.abs()) if absolute else (lambda m: m)
    reference = {name: prep(fn(model, images).detach()) for name, fn in explainers.items()}
    ref_collapsed = {name: collapsed(ref) for name, ref in reference.items()}
    batch = images.shape[0]
    spearman = {n: [np.where(ref_collapsed[n], np.nan, 1.0)] for n in explainers}
    ssim = {n: [np.where(ref_collapsed[n], np.nan, 1.0)] for n in explainers}
    flat = {n: [np.zeros(batch, bool)] for n in explainers}
    generator = torch.Generator().manual_seed(seed)
    shadow = copy.deepcopy(model).eval()
    for name in order:
        if mode == "independent":
            shadow = copy.deepcopy(model).eval()
        randomize_module(dict(shadow.named_modules())[name], generator)
        for method, fn in explainers.items():
            maps = prep(fn(shadow, images).detach())
            rho, sim = similarity_or_nan(reference[method], maps)
            spearman[method].append(rho), ssim[method].append(sim), flat[method].append(collapsed(maps))
    stack = lambda d: {k: np.stack(v) for k, v in d.items()}  # noqa: E731
    return RandomisationResult(mode, ["trained", *order], stack(spearman), stack(ssim), stack(flat), ref_collapsed)


def randomised_copy(model: nn.Module, order: list[str] | None = None, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every block of ``order`` (default :func:`randomization_order`) re-initialised
    in order, from the same random stream as :func:`randomisation_test` (cascading): the network of its
    last step, the whole model random."""
    order = randomization_order(model) if order is None else list(order)
    shadow = copy.deepcopy(model).eval()
    named = dict(shadow.named_modules())
    unknown = [n for n in order if n not in named]
    if unknown:
        raise ValueError(f"order: no submodules named {unknown}")
    generator = torch.Generator().manual_seed(seed)
    for name in order:
        randomize_module(named[name], generator)
    return shadow
