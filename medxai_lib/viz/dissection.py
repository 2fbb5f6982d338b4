"""Figures for network dissection and unit ablation (notebook 02): unit maps over lesions, IoU against
concept area with the nulls, angular coverage of the rim, ablation effects with CIs."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from medxai_lib.explain.cam import upsample
from medxai_lib.viz.colours import CATEGORY_COLOURS, EVIDENCE_COLOUR, draw_contour
from medxai_lib.viz.overlays import to_display


def plot_unit_maps(images: torch.Tensor, activations: torch.Tensor, thresholds: torch.Tensor, units: Sequence[int],
                   unit_titles: Sequence[str] | None = None, row_titles: Sequence[str] | None = None,
                   outlines: torch.Tensor | None = None, title: str | None = None, vmax: float = 2.0,
                   cmap: str = "viridis", alpha: float = 0.65, cell_inches: float = 2.0) -> plt.Figure:
    """Rows = images, columns = the image (with the lesion outline) then one unit's feature map each,
    upsampled and blended over the image. Every map is divided by its unit's dissection threshold
    ``T_k``, so one shared colour scale reads the same in every panel: 1 = the unit's firing threshold.

    ``images (B, C, H, W)``, ``activations (B, K, h, w)``, ``thresholds (K,)``, ``outlines (B, 1, H, W)``
    (drawn in the image column only, so it never hides a border unit's response).
    """
    units = [int(u) for u in units]
    if activations.ndim != 4 or activations.shape[0] != images.shape[0]:
        raise ValueError(f"activations: expected (B, K, h, w) with B = {images.shape[0]}, got {tuple(activations.shape)}")
    if thresholds.shape != (activations.shape[1],):
        raise ValueError(f"thresholds: expected ({activations.shape[1]},), got {tuple(thresholds.shape)}")
    size = tuple(images.shape[-2:])
    maps = upsample(activations[:, units].detach().cpu().float(), size) / thresholds[units].view(1, -1, 1, 1).clamp_min(1e-12)
    batch, ncols = images.shape[0], 1 + len(units)
    fig, axes = plt.subplots(batch, ncols, figsize=(cell_inches * ncols + 1.0, cell_inches * batch + 0.5), squeeze=False)
    heat = None
    for row in range(batch):
        base = to_display(images[row])
        axes[row, 0].imshow(base)
        if outlines is not None:
            draw_contour(axes[row, 0], outlines[row], EVIDENCE_COLOUR)
        if row_titles:
            axes[row, 0].set_ylabel(row_titles[row], fontsize=9)
        for col in range(len(units)):
            ax = axes[row, col + 1]
            ax.imshow(base)
            heat = ax.imshow(maps[row, col].clamp(0, vmax).numpy(), cmap=cmap, alpha=alpha, vmin=0, vmax=vmax)
            if row == 0:
                ax.set_title(unit_titles[col] if unit_titles else f"unit {units[col]}", fontsize=9)
    axes[0, 0].set_title("image (lesion outline)" if outlines is not None else "image", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    if heat is not None:
        cax = fig.add_axes((0.94, 0.15, 0.015, 0.7))
        fig.colorbar(heat, cax=cax, label="activation / unit's threshold T_k (shared scale)")
    return fig


def plot_iou_vs_area(iou: torch.Tensor, area: torch.Tensor, concept_names: Sequence[str],
                     null_quantiles: Mapping[str, torch.Tensor], detected: torch.Tensor, best_concept: torch.Tensor,
                     quantile: float, min_iou: float, random_iou: torch.Tensor | None = None,
                     title: str | None = None) -> plt.Figure:
    """Every unit's IoU with every concept (dots) at the concept's area share (log scale), the nulls'
    95th percentiles (bars), Bau's ``min_iou`` and the largest IoU a unit firing on a ``quantile``
    share of pixels can reach with a concept of area a: ``min(q, a) / max(q, a)``.
    ``iou (K, C)``, ``area (C,)``, ``detected`` / ``best_concept (K,)``, ``random_iou (K', C)`` optional."""
    iou, area = iou.detach().cpu().float(), area.detach().cpu().float()
    fig, ax = plt.subplots(figsize=(8.0, 4.8))
    rng = np.random.default_rng(0)
    markers = {"shuffled masks": "_", "random units": "x"}
    for c, name in enumerate(concept_names):
        x = float(area[c]) * np.exp(rng.uniform(-0.06, 0.06, len(iou)))
        is_det = (detected & (best_concept == c)).numpy()
        colour = CATEGORY_COLOURS[c % len(CATEGORY_COLOURS)]
        ax.scatter(x[~is_det], iou[~is_det, c].numpy(), s=14, color=colour, alpha=0.35, linewidths=0)
        ax.scatter(x[is_det], iou[is_det, c].numpy(), s=30, color=colour, edgecolors="black", linewidths=0.7,
                   label=f"{name} ({int(is_det.sum())} detectors)")
        if random_iou is not None:
            xr = float(area[c]) * 1.25 * np.exp(rng.uniform(-0.04, 0.04, len(random_iou)))
            ax.scatter(xr, random_iou[:, c].numpy(), s=8, color="grey", alpha=0.4, linewidths=0,
                       label="untrained network's units" if c == 0 else None)
        for k, (null_name, values) in enumerate(null_quantiles.items()):
            ax.scatter([float(area[c])], [float(values[c])], marker=markers.get(null_name, "_"), s=260, color="black",
                       linewidths=1.6, label=f"null 95th pct: {null_name}" if c == 0 else None, zorder=3)
    grid = np.logspace(np.log10(float(area.min()) / 2), np.log10(min(1.0, float(area.max()) * 1.5)), 200)
    ax.plot(grid, np.minimum(quantile, grid) / np.maximum(quantile, grid), color="grey", linestyle="--",
            label=f"largest possible IoU at firing share {quantile:g}")
    ax.axhline(min_iou, color="black", linestyle=":", linewidth=1, label=f"Bau's minimum IoU {min_iou:g}")
    ax.set_xscale("log")
    ax.set_xlabel("concept area (mean share of the image, log scale)")
    ax.set_ylabel("IoU of a unit's top activations with the concept")
    ax.set_ylim(0, max(0.1, float(iou.max()) * 1.15))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title or "IoU against concept area: big concepts give big IoUs by chance", fontsize=10)
    fig.tight_layout()
    return fig


def plot_sector_coverage(coverage: torch.Tensor, row_labels: Sequence[str], sector_names: Sequence[str],
                         title: str | None = None) -> plt.Figure:
    """Heatmap of ``coverage (R, S)`` (share of the rim pixels in each sector that a unit or group fires
    on, in [0, 1]) on one shared 0-1 scale, with a colour bar."""
    values = coverage.detach().cpu().float().numpy()
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * values.shape[1], 0.9 + 0.42 * values.shape[0]))
    im = ax.imshow(values, cmap="magma", vmin=0, vmax=1, aspect="auto")
    for (r, s), v in np.ndenumerate(values):
        ax.text(s, r, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < 0.6 else "black")
    ax.set_xticks(range(len(sector_names)), sector_names, fontsize=8)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=8)
    ax.set_xlabel("sector around the lesion centre (image frame)")
    fig.colorbar(im, ax=ax, label="share of the rim's pixels fired on")
    ax.set_title(title or "Which part of the rim each unit fires on", fontsize=10)
    fig.tight_layout()
    return fig


def plot_ablation_effects(effects: Mapping[str, torch.Tensor], draws: torch.Tensor | None = None,
                          draws_label: str = "random draws", subsets: Mapping[str, torch.Tensor] | None = None,
                          n_boot: int = 1000, seed: int = 0, title: str | None = None) -> plt.Figure:
    """Two panels: mean |ΔP| and mean signed ΔP per group with 95% bootstrap CIs over images.
    ``effects``: group name -> ``(N,)`` per-image ΔP; ``draws (R, N)``: the random draws (each shown as a
    dot beside their mean); ``subsets``: panel-2 image subsets, name -> bool ``(N,)`` (default: all)."""
    names = list(effects)
    rng = np.random.default_rng(seed)

    def mean_ci(values: np.ndarray) -> tuple[float, float, float]:
        idx = rng.integers(0, len(values), size=(n_boot, len(values)))
        boots = values[idx].mean(1)
        return float(values.mean()), *np.quantile(boots, [0.025, 0.975])

    subsets = subsets or {"all images": torch.ones(len(next(iter(effects.values()))), dtype=torch.bool)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for panel, (ax, signed) in enumerate(zip(axes, (False, True))):
        offsets = np.linspace(-0.15, 0.15, len(subsets)) if signed and len(subsets) > 1 else [0.0]
        for (subset_name, keep), dx, colour in zip(subsets.items() if signed else [("all images", None)],
                                                   offsets, ("#d62728", "#1f77b4", "#2ca02c")):
            for i, name in enumerate(names):
                values = effects[name].detach().cpu().double().numpy()
                values = values if signed else np.abs(values)
                if keep is not None:
                    values = values[keep.cpu().numpy()]
                m, lo, hi = mean_ci(values)
                ax.errorbar(i + dx, m, yerr=[[m - lo], [hi - m]], fmt="o", color=colour, capsize=4,
                            label=subset_name if (signed and i == 0) else None)
                if draws is not None and name == draws_label:
                    per_draw = draws.detach().cpu().double().numpy()
                    per_draw = per_draw if signed else np.abs(per_draw)
                    if keep is not None:
                        per_draw = per_draw[:, keep.cpu().numpy()]
                    ax.scatter(np.full(len(per_draw), i + dx + 0.08), per_draw.mean(1), s=10, color=colour, alpha=0.5)
        ax.set_xticks(range(len(names)), names, fontsize=8, rotation=15)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel("signed ΔP(malignant)" if signed else "|ΔP(malignant)|")
        ax.set_title(("signed change (negative: the units supported 'malignant')" if signed
                      else "size of the change, all images"), fontsize=9)
        if signed:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
