"""Figures for notebook 06: fundi with lesion boxes, descriptor galleries, rows of syntheses."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from medxai_lib.data.lesions import LESION_KINDS, DescriptorBank
from medxai_lib.viz.overlays import to_display

KIND_COLOURS = dict(zip(LESION_KINDS + ("unknown", "none"),
                        ("magenta", "red", "yellow", "white", "lime", "cyan", "grey")))


def draw_boxes(ax: plt.Axes, bank: DescriptorBank, colour: str | None = None, margin: float = 1.0) -> None:
    """Outline each descriptor's box on ``ax`` (colour by kind unless ``colour`` is given)."""
    for d in bank:
        x0, y0, x1, y1 = d.box
        ax.add_patch(Rectangle((x0 - 0.5 - margin, y0 - 0.5 - margin), x1 - x0 + 2 * margin, y1 - y0 + 2 * margin,
                               fill=False, lw=0.8, ec=colour or KIND_COLOURS.get(d.kind, "cyan")))


def plot_fundus_rows(rows: dict[str, torch.Tensor], banks: dict[str, Sequence[DescriptorBank]] | None = None,
                     normalized: bool = False, cell_inches: float = 1.7, cmap: str = "magma") -> plt.Figure:
    """One row per entry: ``(B, 3, S, S)`` images (or ``(B, S, S)`` maps, drawn with ``cmap``), with the
    boxes of ``banks[row][i]`` outlined where given."""
    names = list(rows)
    ncols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(names), ncols, figsize=(cell_inches * ncols, cell_inches * len(names) + 0.2),
                             squeeze=False)
    for r, name in enumerate(names):
        for i, ax in enumerate(axes[r]):
            ax.set_xticks([]), ax.set_yticks([])
            if i >= len(rows[name]):
                ax.axis("off")
                continue
            item = rows[name][i]
            if item.ndim == 2:
                ax.imshow(item.detach().cpu().numpy(), cmap=cmap)
            else:
                ax.imshow(to_display(item, normalized))
            if banks and name in banks:
                draw_boxes(ax, banks[name][i])
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def plot_descriptor_gallery(bank: DescriptorBank, images: Sequence[torch.Tensor], source_index: Sequence[int],
                            layer: str = "conv1b", n: int = 8, pad: int = 4) -> plt.Figure:
    """For ``n`` descriptors: the lesion crop (``images[source_index[k]]``, ``(3, S, S)`` in [0, 1]), its
    activation patch and the Gram matrix at ``layer``."""
    n = min(n, len(bank))
    fig, axes = plt.subplots(3, n, figsize=(1.5 * n, 4.6), squeeze=False)
    for k in range(n):
        d = bank[k]
        x0, y0, x1, y1 = d.box
        image = to_display(images[source_index[k]], normalized=False)
        size = image.shape[0]
        crop = image[max(0, y0 - pad):min(size, y1 + pad), max(0, x0 - pad):min(size, x1 + pad)]
        axes[0, k].imshow(crop)
        axes[0, k].set_title(f"{d.kind}\n{d.area} px", fontsize=7)
        axes[1, k].imshow(d.activation * d.mask, cmap="magma")
        axes[2, k].imshow(d.grams[layer], cmap="viridis")
        for ax in axes[:, k]:
            ax.set_xticks([]), ax.set_yticks([])
    for r, label in enumerate(("lesion", "activation", f"Gram {layer}")):
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig


def plot_severity(counts: np.ndarray, scores: np.ndarray, label: str = "predicted grade") -> plt.Figure:
    """Predicted grade (mean and per-image lines) against the number of inoculated lesions."""
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot(counts, scores, color="0.8", lw=0.8)
    ax.plot(counts, scores.mean(1), "o-", color="C3", lw=2, label="mean")
    for threshold in (0.5, 1.5, 2.5, 3.5):
        ax.axhline(threshold, color="0.6", ls=":", lw=0.8)
    ax.set_xlabel("copies of one descriptor")
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
