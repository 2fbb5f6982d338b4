"""Galleries: an image beside each of its ground-truth masks."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from medxai_lib.viz.overlays import to_display


def plot_with_masks(images: torch.Tensor, masks: Mapping[str, torch.Tensor], row_titles: Sequence[str] | None = None,
                    title: str | None = None, normalized_images: bool = True, cell_inches: float = 1.7) -> plt.Figure:
    """Rows = images; first column the image, then one column per mask name. A mask ``(B, K, H, W)`` with
    K > 1 is drawn as a label map (mask k -> colour k); ``(B, 1, H, W)`` as a cyan overlay (it reads on
    red fundi and pink tissue alike)."""
    batch, ncols = images.shape[0], 1 + len(masks)
    fig, axes = plt.subplots(batch, ncols, figsize=(cell_inches * ncols, cell_inches * batch), squeeze=False)
    for row in range(batch):
        base = to_display(images[row], normalized_images)
        axes[row, 0].imshow(base, cmap="gray", vmin=0, vmax=1)
        if row_titles:
            axes[row, 0].set_ylabel(row_titles[row], fontsize=7)
        for col, (name, stack) in enumerate(masks.items(), start=1):
            layer = stack[row].detach().cpu().float()
            axes[row, col].imshow(base, cmap="gray", vmin=0, vmax=1)
            if layer.shape[0] == 1:
                overlay = np.zeros((*layer.shape[-2:], 4))
                overlay[..., 1], overlay[..., 2], overlay[..., 3] = 1.0, 1.0, 0.75 * layer[0].numpy()
                axes[row, col].imshow(overlay)
            else:
                labels = (layer > 0.5).float() * torch.arange(1, layer.shape[0] + 1)[:, None, None]
                shown = np.ma.masked_equal(labels.amax(0).numpy(), 0)
                axes[row, col].imshow(shown, cmap="tab10", vmin=0, vmax=9, alpha=0.75, interpolation="nearest")
            if row == 0:
                axes[row, col].set_title(name, fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
