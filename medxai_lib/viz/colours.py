"""The suite's colour conventions: one contour colour for evidence masks in every notebook.

``EVIDENCE_COLOUR`` outlines ground-truth evidence (fracture, lesion, malignancy cues) in every figure of
the suite; ``CONFOUNDER_COLOUR`` outlines a confounder (a laterality marker, hair). Contours are drawn with
a thin dark edge so that they read on grey radiographs, red fundi, pink tissue and on heatmaps alike.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import patheffects

EVIDENCE_COLOUR = "cyan"
CONFOUNDER_COLOUR = "yellow"
# categories of a multi-channel mask (lesion kinds, histology regions); neither cyan nor yellow
CATEGORY_COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#a65628", "#984ea3", "#f781bf", "#999999")


def draw_contour(ax: plt.Axes, mask: torch.Tensor | np.ndarray, colour: str = EVIDENCE_COLOUR,
                 linewidth: float = 1.0) -> None:
    """Outline the 0.5 level of a ``(H, W)`` or ``(1, H, W)`` mask on ``ax`` (nothing for an empty mask)."""
    array = mask.detach().cpu().float().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask, dtype=float)
    array = array[0] if array.ndim == 3 else array
    if array.ndim != 2:
        raise ValueError(f"mask: expected (H, W) or (1, H, W), got shape {tuple(np.shape(mask))}")
    if not (array > 0.5).any():
        return
    contours = ax.contour(array, levels=[0.5], colors=[colour], linewidths=linewidth)
    contours.set_path_effects([patheffects.withStroke(linewidth=linewidth + 1.2, foreground="black", alpha=0.6),
                               patheffects.Normal()])
