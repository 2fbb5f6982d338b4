"""Figures for network dissection and unit ablation (notebook 02): unit maps over lesions, IoU against
concept area with the nulls, angular coverage of the rim, ablation effects with CIs."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from medxai_lib.evaluate.studies.dissection import NetworkDissection
from medxai_lib.evaluate.stats import Draws, bootstrap
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


def plot_iou_vs_area(dissection: NetworkDissection, untrained: NetworkDissection | None = None,
                     title: str | None = None) -> plt.Figure:
    """Every unit's IoU with every concept (dots; detectors ringed) at the concept's area share (log
    scale); the concept's null (95th percentile of the IoUs on shuffled masks, black bar); Bau's
    ``min_iou``; the largest IoU a unit firing on a ``quantile`` share of the pixels can reach with a
    concept covering a share a, ``min(q, a) / max(q, a)``; optionally an untrained network's units (grey)."""
    iou, area = dissection.iou_.float(), dissection.concept_area_.float()
    q = dissection.quantile
    fig, ax = plt.subplots(figsize=(9.0, 4.8))
    rng = np.random.default_rng(0)
    for c, name in enumerate(dissection.concept_names_):
        x = float(area[c]) * np.exp(rng.uniform(-0.07, 0.07, len(iou)))
        is_det = (dissection.detected_ & (dissection.best_concept_ == c)).numpy()
        colour = CATEGORY_COLOURS[c % len(CATEGORY_COLOURS)]
        ax.scatter(x[~is_det], iou[~is_det, c].numpy(), s=14, color=colour, alpha=0.4, linewidths=0)
        ax.scatter(x[is_det], iou[is_det, c].numpy(), s=34, color=colour, edgecolors="black", linewidths=0.8,
                   label=f"{name}: {int(is_det.sum())} detectors")
        if untrained is not None:
            xr = float(area[c]) * 1.3 * np.exp(rng.uniform(-0.04, 0.04, len(untrained.iou_)))
            ax.scatter(xr, untrained.iou_[:, c].numpy(), s=8, color="grey", alpha=0.5, linewidths=0,
                       label="an untrained network's units (right of each concept)" if c == 0 else None)
        ax.scatter([float(area[c])], [float(dissection.null_threshold_[c])], marker="_", s=400, color="black",
                   linewidths=2, zorder=3, label=f"null: {100 * dissection.null_quantile:g}th pct on shuffled masks" if c == 0 else None)
    grid = np.logspace(np.log10(float(area.min()) / 2), np.log10(min(1.0, float(area.max()) * 1.5)), 200)
    ax.plot(grid, np.minimum(q, grid) / np.maximum(q, grid), color="grey", linestyle="--",
            label=f"largest possible IoU when firing on {q:.1%} of pixels")
    ax.axhline(dissection.min_iou, color="black", linestyle=":", linewidth=1, label=f"Bau's minimum IoU {dissection.min_iou:g}")
    ax.set_xscale("log")
    ax.set_xlabel("concept area (mean share of the image, log scale)")
    ax.set_ylabel("IoU with the concept")
    top = max(float(iou.max()), float(untrained.iou_.max()) if untrained is not None else 0.0)
    ax.set_ylim(0, max(0.1, top * 1.15))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="ringed dots: detectors", title_fontsize=8)
    ax.set_title(title or f"IoU against concept area (top {q:.1%} of activations): large concepts give large IoUs by chance",
                 fontsize=10)
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


def plot_ablation_effects(effects: Mapping[str, np.ndarray], random: Mapping[str, np.ndarray], seed: int = 0,
                          title: str | None = None) -> plt.Figure:
    """Two panels, |ΔP| and signed ΔP (means over images with 95% bootstrap CIs): each group (coloured)
    beside its size-matched groups of non-concept units (grey: mean over groups and images, with the
    hierarchical CI over groups x images that the claims use; the small dots are the individual groups' means).
    ``effects``: name -> ``(N,)`` per-image ΔP; ``random``: name -> ``(R, N)``."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    names = list(effects)
    for ax, signed in zip(axes, (False, True)):
        for i, name in enumerate(names):
            tested, draws = np.asarray(effects[name], float), np.asarray(random[name], float)
            if not signed:
                tested, draws = np.abs(tested), np.abs(draws)
            for dx, values, colour in ((-0.12, tested, CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)]),
                                       (0.12, Draws(draws, over="random unit group"), "grey")):
                est = bootstrap(values, seed=seed)
                ax.errorbar(i + dx, est.value, yerr=[[est.value - est.lo], [est.hi - est.value]], fmt="o",
                            color=colour, capsize=4, markersize=6)
            ax.scatter(np.full(len(draws), i + 0.22), draws.mean(1), s=10, color="grey", alpha=0.6)
        ax.set_xticks(range(len(names)), [f"{n}\n(vs non-concept)" for n in names], fontsize=8)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel("signed ΔP(malignant)" if signed else "|ΔP(malignant)|")
        ax.set_title("signed change (< 0: the units supported 'malignant')" if signed else "size of the change",
                     fontsize=9)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color="black", label="units ablated together (95% CI)"),
               plt.Line2D([], [], marker="o", linestyle="", color="grey", label="as many non-concept units (95% CI over groups x lesions)"),
               plt.Line2D([], [], marker="o", linestyle="", color="grey", alpha=0.6, markersize=3, label="one group of non-concept units")]
    fig.legend(handles=handles, fontsize=8, loc="lower center", ncol=3, frameon=False)   # below the panels: hides no point
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
