"""Signed attribution maps: a diverging colour map centred on 0, one symmetric scale per column or for all."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import torch

from medxai_lib.explain.cam import upsample
from medxai_lib.viz.colours import EVIDENCE_COLOUR, draw_contour
from medxai_lib.viz.overlays import to_display


def symmetric_limit(maps: torch.Tensor, quantile: float = 0.995) -> float:
    """A symmetric colour limit for signed maps: the ``quantile`` of ``|maps|`` (a few extreme pixels do not
    wash the rest out); never 0."""
    values = maps.detach().abs().flatten().float()
    if values.numel() == 0:
        raise ValueError("maps: expected a non-empty tensor")
    return max(float(torch.quantile(values[:16_000_000], quantile)), 1e-12)


def plot_signed_maps(images: torch.Tensor, columns: Mapping[str, torch.Tensor], masks: torch.Tensor | None = None,
                     row_titles: Sequence[str] | None = None, title: str | None = None, shared: bool = True,
                     units: str = "attribution", cmap: str = "RdBu_r", alpha: float = 0.75,
                     normalized_images: bool = True, cell_inches: float = 2.6, dpi: int = 100,
                     sequential: Sequence[str] = (), sequential_cmap: str = "magma") -> plt.Figure:
    """Rows = images, columns = the image then one signed map per entry of ``columns`` (``(B, 1, h, w)`` or
    ``(B, 1, 1, H, W)``, upsampled bilinearly), drawn with a diverging ``cmap`` centred on 0 over a grey
    copy of the image. ``shared``: one symmetric scale for every column (compare magnitudes across methods
    in the same ``units``); else one per column (each column's scale in its colour bar). Columns named in
    ``sequential`` are >= 0 by construction (Grad-CAM, attention): drawn with ``sequential_cmap`` from 0 to
    their limit. ``masks (B, 1, H, W)`` are outlined in the evidence colour. Panels are ``cell_inches * dpi``
    pixels wide."""
    unknown = set(sequential) - set(columns)
    if unknown:
        raise ValueError(f"sequential: {sorted(unknown)} are not among the columns {list(columns)}")
    if images.ndim != 4:
        raise ValueError(f"images: expected (B, C, H, W), got {tuple(images.shape)}")
    size = tuple(images.shape[-2:])
    shown = {}
    for name, maps in columns.items():
        maps = maps.detach().cpu().float()
        maps = maps[:, :, 0] if maps.ndim == 5 else maps
        if maps.ndim != 4 or maps.shape[0] != images.shape[0]:
            raise ValueError(f"columns[{name!r}]: expected (B, 1, h, w) with B = {images.shape[0]}, got {tuple(maps.shape)}")
        shown[name] = upsample(maps[:, :1], size)[:, 0].numpy()
    limits = {name: symmetric_limit(torch.as_tensor(m)) for name, m in shown.items()}
    if shared:
        limits = dict.fromkeys(limits, max(limits.values()))
    batch, ncols = images.shape[0], 1 + len(shown)
    fig, axes = plt.subplots(batch, ncols, figsize=(cell_inches * ncols + 0.8, cell_inches * batch + 0.9),
                             squeeze=False, dpi=dpi)
    heat = {}
    for row in range(batch):
        base = to_display(images[row], normalized_images)
        grey = base.mean(-1) if base.ndim == 3 else base
        axes[row, 0].imshow(base, cmap="gray", vmin=0, vmax=1)
        if row_titles:
            axes[row, 0].set_ylabel(row_titles[row], fontsize=8)
        for col, (name, maps) in enumerate(shown.items(), start=1):
            axes[row, col].imshow(grey, cmap="gray", vmin=0, vmax=1)
            low, colours = (0.0, sequential_cmap) if name in sequential else (-limits[name], cmap)
            heat[name] = axes[row, col].imshow(maps[row], cmap=colours, vmin=low, vmax=limits[name], alpha=alpha)
            if row == 0:
                axes[row, col].set_title(name, fontsize=8)
        if masks is not None:
            for col in range(ncols):
                draw_contour(axes[row, col], masks[row, 0], EVIDENCE_COLOUR, linewidth=0.8)
    axes[0, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    if shared:
        signed = all(name not in sequential for name in shown)
        fig.colorbar(next(iter(heat.values())), ax=axes, shrink=0.6,
                     label=f"{units} (one scale{', centred on 0' if signed else ', from 0'})")
    else:
        for col, name in enumerate(shown, start=1):
            fig.colorbar(heat[name], ax=axes[:, col], orientation="horizontal", shrink=0.85, pad=0.03,
                         label=f"{units}, own scale" + (", >= 0" if name in sequential else ""))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig

