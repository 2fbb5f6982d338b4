"""Heatmaps blended over images, one clear grid per idea."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
import torch

from medxai_lib.data.transforms import denormalize_image
from medxai_lib.explain.cam import normalize, upsample
from medxai_lib.evaluate.stats import fmt
from medxai_lib.viz.colours import CONFOUNDER_COLOUR, EVIDENCE_COLOUR, draw_contour


def to_display(image: torch.Tensor, normalized: bool = True) -> np.ndarray:
    """``(C, H, W)`` tensor -> ``(H, W)`` grey or ``(H, W, 3)`` RGB array in [0, 1] for imshow."""
    image = image.detach().cpu().float()
    if normalized:
        image = denormalize_image(image)
    array = image.clamp(0, 1).numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def _clip_percentiles(maps: torch.Tensor, low: float = 0.01, high: float = 0.99) -> torch.Tensor:
    """Clip each (h, w) map to its [1%, 99%] quantiles so single extreme pixels do not wash it out."""
    flat = maps.flatten(2)
    lo = torch.quantile(flat, low, dim=-1, keepdim=True)
    hi = torch.quantile(flat, high, dim=-1, keepdim=True)
    return torch.maximum(torch.minimum(flat, hi), lo).view_as(maps)


def plot_map_grid(images: torch.Tensor, columns: Mapping[str, torch.Tensor], masks: torch.Tensor | None = None,
                  row_titles: Sequence[str] | None = None, title: str | None = None, cmap: str = "magma",
                  alpha: float = 0.55, normalized_images: bool = True, cell_inches: float = 2.0,
                  clip: bool = True, scale: str = "minmax") -> plt.Figure:
    """Rows = images, columns = the image then one blended heatmap per entry of ``columns``.

    ``images (B, C, H, W)``; each column ``(B, 1, h, w)`` upsampled and scaled per map: ``scale="minmax"``
    min-max normalised (with ``clip``, first clipped to its 1-99% quantiles so single extreme pixels do not wash
    it out), or ``scale="max"`` for maps >= 0: divided by the panel's maximum, so 0 stays 0 and a map that is
    nearly zero everywhere is not stretched to full brightness; each panel's raw maximum is printed in its
    corner. ``masks (B, 1, H, W)`` drawn as evidence contours (:data:`EVIDENCE_COLOUR`), named in a legend.
    Panels are ``cell_inches`` wide (2.5 in = 180 px at the suite's 72 dpi).
    """
    if scale not in ("minmax", "max"):
        raise ValueError(f"scale: expected 'minmax' or 'max', got {scale!r}")
    batch = images.shape[0]
    if row_titles is not None and len(row_titles) != batch:
        raise ValueError(f"row_titles: expected one title per image ({batch}), got {len(row_titles)}")
    ncols = 1 + len(columns)
    fig, axes = plt.subplots(batch, ncols, figsize=(cell_inches * ncols + 0.6, cell_inches * batch + 0.6),
                             squeeze=False, layout="constrained")
    size = tuple(images.shape[-2:])
    prepare = _clip_percentiles if clip else (lambda maps: maps)
    raw = {name: upsample(maps.detach().cpu().float()[:, :1], size) for name, maps in columns.items()}
    if scale == "max":
        negative = [name for name, maps in raw.items() if (maps < 0).any()]
        if negative:
            raise ValueError(f"columns: scale='max' needs maps >= 0; {negative} have negative values")
        peaks = {name: maps.flatten(1).amax(1) for name, maps in raw.items()}
        shown = {name: maps / peaks[name].clamp_min(1e-30)[:, None, None, None] for name, maps in raw.items()}
    else:
        shown = {name: normalize(prepare(maps)) for name, maps in raw.items()}
    fontsize = 9 if ncols <= 7 else 7
    heat = None
    for row in range(batch):
        base = to_display(images[row], normalized_images)
        axes[row, 0].imshow(base, cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_ylabel(row_titles[row] if row_titles else "", fontsize=8)
        for col, (name, maps) in enumerate(shown.items(), start=1):
            axes[row, col].imshow(base, cmap="gray", vmin=0, vmax=1)
            heat = axes[row, col].imshow(maps[row, 0].numpy(), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
            if scale == "max":
                axes[row, col].text(0.03, 0.03, f"max {fmt(float(peaks[name][row]))}", transform=axes[row, col].transAxes,
                                    fontsize=7, color="white", va="bottom",
                                    bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0})
            if row == 0:
                axes[row, col].set_title(name, fontsize=fontsize)
        if masks is not None:
            for col in range(ncols):
                draw_contour(axes[row, col], masks[row, 0], EVIDENCE_COLOUR, linewidth=0.8)
    axes[0, 0].set_title("image", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    if heat is not None:
        fig.colorbar(heat, ax=axes, shrink=0.6, label="map / its maximum (printed in each panel)" if scale == "max"
                     else "map, min-max scaled per panel")
    if masks is not None:
        fig.legend([Line2D([], [], color=EVIDENCE_COLOUR, lw=2)], ["evidence"], loc="outside lower center",
                   fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_gallery(images: torch.Tensor, titles: Sequence[str], masks: torch.Tensor | None = None,
                  extra_masks: torch.Tensor | None = None, ncols: int = 8, normalized_images: bool = True,
                 cell_inches: float = 1.6, mask_labels: tuple[str, str] = ("evidence", "confounder")) -> plt.Figure:
    """A grid of ``images (B, C, H, W)`` with optional ``masks`` / ``extra_masks (B, 1, H, W)`` outlined in the
    evidence and confounder colours (:data:`EVIDENCE_COLOUR`, :data:`CONFOUNDER_COLOUR`), named in a legend
    by ``mask_labels``."""
    batch = images.shape[0]
    nrows = int(np.ceil(batch / ncols))
    shown = [(label, colour) for field, label, colour in ((masks, mask_labels[0], EVIDENCE_COLOUR),
                                                         (extra_masks, mask_labels[1], CONFOUNDER_COLOUR))
             if field is not None]
    legend_inches = 0.3 if shown else 0.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_inches * ncols, cell_inches * nrows + 0.3 + legend_inches),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= batch:
            continue
        ax.imshow(to_display(images[i], normalized_images), cmap="gray", vmin=0, vmax=1)
        for field, colour in ((masks, EVIDENCE_COLOUR), (extra_masks, CONFOUNDER_COLOUR)):
            if field is not None:
                draw_contour(ax, field[i, 0], colour, linewidth=0.8)
        ax.set_title(titles[i], fontsize=7)
    if shown:
        fig.legend([Line2D([], [], color=c, lw=2) for _, c in shown], [label for label, _ in shown],
                   loc="lower center", ncol=len(shown), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_inches / fig.get_size_inches()[1], 1, 1))
    return fig


def plot_feature_maps(images: torch.Tensor, activations: torch.Tensor, units: Sequence[int],
                      unit_titles: Sequence[str] | None = None, row_titles: Sequence[str] | None = None,
                      masks: torch.Tensor | None = None, title: str | None = None, cmap: str = "viridis",
                      alpha: float = 0.6, cell_inches: float = 1.6) -> plt.Figure:
    """Van Molle-style figure: rows = images, columns = the image then the chosen units' feature maps
    (upsampled, scaled per unit over the shown images) blended over it. ``activations (B, K, h, w)``;
    ``masks (B, 1, H, W)`` outlined in :data:`EVIDENCE_COLOUR`."""
    size = tuple(images.shape[-2:])
    chosen = upsample(activations[:, list(units)].detach().cpu().float(), size)
    scale = chosen.amax((0, 2, 3), keepdim=True).clamp_min(1e-12)
    columns = {(unit_titles[i] if unit_titles else f"unit {u}"): (chosen[:, i:i + 1] / scale[:, i:i + 1])
               for i, u in enumerate(units)}
    batch, ncols = images.shape[0], 1 + len(columns)
    fig, axes = plt.subplots(batch, ncols, figsize=(cell_inches * ncols, cell_inches * batch), squeeze=False)
    for row in range(batch):
        base = to_display(images[row])
        axes[row, 0].imshow(base, cmap="gray", vmin=0, vmax=1)
        if row_titles:
            axes[row, 0].set_ylabel(row_titles[row], fontsize=7)
        for col, (name, maps) in enumerate(columns.items(), start=1):
            axes[row, col].imshow(base, cmap="gray", vmin=0, vmax=1)
            axes[row, col].imshow(maps[row, 0].numpy(), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
            if masks is not None:
                draw_contour(axes[row, col], masks[row, 0], EVIDENCE_COLOUR, linewidth=0.7)
            if row == 0:
                axes[row, col].set_title(name, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
