"""Galleries: an image beside each of its ground-truth masks, every colour named in a legend."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_rgba
from matplotlib.patches import Patch

from medxai_lib.viz.colours import CATEGORY_COLOURS, EVIDENCE_COLOUR, draw_contour
from medxai_lib.viz.overlays import to_display


def _mask_colours(name: str, channels: int, colours: Mapping[str, str | Sequence[str]] | None) -> list[str]:
    given = (colours or {}).get(name)
    if given is None:
        return [EVIDENCE_COLOUR] if channels == 1 else list(CATEGORY_COLOURS[:channels])
    given = [given] if isinstance(given, str) else list(given)
    if len(given) != channels:
        raise ValueError(f"colours[{name!r}]: expected {channels} colour(s) for a {channels}-channel mask, got {given}")
    return given


def _fill(ax: plt.Axes, layer: np.ndarray, colour: str, alpha: float) -> None:
    overlay = np.zeros((*layer.shape, 4))
    overlay[..., :3] = to_rgba(colour)[:3]
    overlay[..., 3] = alpha * (layer > 0.5)
    ax.imshow(overlay)


def plot_with_masks(images: torch.Tensor, masks: Mapping[str, torch.Tensor], row_titles: Sequence[str] | None = None,
                    title: str | None = None, normalized_images: bool = True, cell_inches: float = 3.0,
                    colours: Mapping[str, str | Sequence[str]] | None = None,
                    channel_names: Mapping[str, Sequence[str]] | None = None, fill_alpha: float = 0.4) -> plt.Figure:
    """Rows = images; first column the image, then one column per entry of ``masks``.

    ``images (B, C, H, W)``; each mask ``(B, K, H, W)``: channel k is filled (``fill_alpha``) and outlined in
    its colour. Colours: ``colours[name]`` (one per channel), else :data:`EVIDENCE_COLOUR` for a one-channel
    mask and :data:`CATEGORY_COLOURS` for K > 1. A legend under the panels names every colour: the mask's
    name, or ``channel_names[name][k]`` for the channels of a K > 1 mask. The default ``cell_inches`` gives
    panels >= 180 px at 72 dpi.
    """
    batch, ncols = images.shape[0], 1 + len(masks)
    legend: dict[str, str] = {}
    for name, stack in masks.items():
        if stack.ndim != 4 or stack.shape[0] != batch:
            raise ValueError(f"masks[{name!r}]: expected ({batch}, K, H, W), got shape {tuple(stack.shape)}")
        labels = list((channel_names or {}).get(name, [name] if stack.shape[1] == 1 else
                                                      [f"{name} {k}" for k in range(stack.shape[1])]))
        if len(labels) != stack.shape[1]:
            raise ValueError(f"channel_names[{name!r}]: expected {stack.shape[1]} names, got {labels}")
        legend.update(zip(labels, _mask_colours(name, stack.shape[1], colours)))
    legend_columns = max(1, min(len(legend), int(cell_inches * ncols / 1.8)))
    legend_inches = 0.3 * int(np.ceil(len(legend) / legend_columns)) + 0.1 if legend else 0.0
    title_inches = 0.35 if title else 0.0
    fig, axes = plt.subplots(batch, ncols, squeeze=False,
                             figsize=(cell_inches * ncols + 0.3, (cell_inches + 0.15) * batch + 0.3 + legend_inches + title_inches))
    for row in range(batch):
        base = to_display(images[row], normalized_images)
        for col in range(ncols):
            axes[row, col].imshow(base, cmap="gray", vmin=0, vmax=1)
        if row_titles:
            axes[row, 0].set_ylabel(row_titles[row], fontsize=9)
        for col, (name, stack) in enumerate(masks.items(), start=1):
            layer = stack[row].detach().cpu().float().numpy()
            for k, colour in enumerate(_mask_colours(name, layer.shape[0], colours)):
                _fill(axes[row, col], layer[k], colour, fill_alpha)
                draw_contour(axes[row, col], layer[k], colour, linewidth=0.8)
            if row == 0:
                axes[row, col].set_title(name, fontsize=9)
    axes[0, 0].set_title("image", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig_height = fig.get_size_inches()[1]
    if legend:
        fig.legend([Patch(facecolor=c, edgecolor="black", alpha=0.8) for c in legend.values()], list(legend),
                   loc="lower center", ncol=legend_columns, fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, legend_inches / fig_height, 1, 1 - title_inches / fig_height))
    return fig
