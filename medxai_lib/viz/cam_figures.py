"""Figures for notebook 03: signed CAMs on one shared logit scale, and measured values with their CIs."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D

from medxai_lib.explain.cam import upsample
from medxai_lib.viz.colours import CONFOUNDER_COLOUR, EVIDENCE_COLOUR, draw_contour
from medxai_lib.viz.overlays import to_display


def shared_limit(columns: Mapping[str, torch.Tensor], quantile: float = 0.99) -> float:
    """A symmetric colour limit shared by every map of every column: the ``quantile`` of |values|."""
    values = torch.cat([m.detach().float().abs().flatten() for m in columns.values()])
    if values.numel() == 0:
        raise ValueError("columns: no values to scale")
    return max(float(torch.quantile(values, quantile)), 1e-12)


def plot_signed_cams(images: torch.Tensor, columns: Mapping[str, torch.Tensor], row_titles: Sequence[str],
                     masks: torch.Tensor | None = None, confounders: torch.Tensor | None = None,
                     title: str = "", unit: str = "logit per cell", cmap: str = "RdBu_r", alpha: float = 0.6,
                     cell_inches: float = 2.6, normalized_images: bool = True) -> plt.Figure:
    """Rows = images, columns = the image then one raw (signed) CAM per entry of ``columns`` ``(B, 1, h, w)``,
    all on ONE symmetric scale centred on 0 (a diverging map), with one colour bar in ``unit``.
    ``masks`` / ``confounders (B, 1, H, W)`` are outlined in the suite's evidence / confounder colours."""
    if images.ndim != 4 or len(row_titles) != images.shape[0]:
        raise ValueError(f"row_titles: expected one title per image ({images.shape[0]}), got {len(row_titles)}")
    size = tuple(images.shape[-2:])
    shown = {name: upsample(maps.detach().cpu().float()[:, :1], size) for name, maps in columns.items()}
    limit = shared_limit(columns)
    batch, ncols = images.shape[0], 1 + len(shown)
    fig, axes = plt.subplots(batch, ncols, figsize=(cell_inches * ncols + 1.0, cell_inches * batch + 0.6),
                             squeeze=False, layout="constrained")
    heat = None
    for row in range(batch):
        base = to_display(images[row], normalized_images)
        axes[row, 0].imshow(base, cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_ylabel(row_titles[row], fontsize=9)
        for col, (name, maps) in enumerate(shown.items(), start=1):
            axes[row, col].imshow(base, cmap="gray", vmin=0, vmax=1)
            heat = axes[row, col].imshow(maps[row, 0].numpy(), cmap=cmap, alpha=alpha, vmin=-limit, vmax=limit)
            if row == 0:
                axes[row, col].set_title(name, fontsize=9)
        for col in range(ncols):
            for field, colour in ((masks, EVIDENCE_COLOUR), (confounders, CONFOUNDER_COLOUR)):
                if field is not None:
                    draw_contour(axes[row, col], field[row, 0], colour, linewidth=1.0)
    axes[0, 0].set_title("image", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    if heat is not None:
        fig.colorbar(heat, ax=axes, shrink=0.7, label=f"CAM ({unit}), shared scale")
    handles = [(Line2D([], [], color=c, lw=2), label) for field, c, label in
               ((masks, EVIDENCE_COLOUR, "evidence"), (confounders, CONFOUNDER_COLOUR, "marker"))
               if field is not None]
    if handles:
        fig.legend([h for h, _ in handles], [label for _, label in handles], loc="outside lower center",
                   ncol=len(handles), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_ci_rows(rows: Mapping[str, Mapping[str, tuple[float, float, float]]], metrics: Sequence[str],
                 highlight: Sequence[str] = (), title: str = "", width: float = 4.2) -> plt.Figure:
    """One panel per metric, one row per entry: the value as a dot with its 95% CI as a bar.
    ``rows = {name: {metric: (value, lo, hi)}}``; names in ``highlight`` (controls, references) are grey."""
    names = list(rows)
    fig, axes = plt.subplots(1, len(metrics), figsize=(width * len(metrics), 0.42 * len(names) + 1.2),
                             sharey=True, squeeze=False, layout="constrained")
    y = np.arange(len(names))[::-1]
    for ax, metric in zip(axes[0], metrics):
        for yi, name in zip(y, names):
            value, lo, hi = rows[name][metric]
            colour = "0.55" if name in highlight else "C0"
            ax.errorbar(value, yi, xerr=[[value - lo], [hi - value]], fmt="o", color=colour, capsize=3)
            ax.annotate(f"{value:.2f}", (hi, yi), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        top = max(rows[n][metric][2] for n in names)
        ax.set_xlim(0, 1.08 if top > 0.6 else top * 1.3)
    axes[0, 0].set_yticks(y, names, fontsize=9)
    fig.legend([Line2D([], [], color="C0", marker="o", lw=1), Line2D([], [], color="0.55", marker="o", lw=1)],
               ["explanation (95% bootstrap CI)", "control / reference"], loc="outside lower center", ncol=2,
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
