"""Figures for MDNet (notebook 05): per-block contribution maps, attention word by word, the sentence x
region attention matrices and a retrieval gallery."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import TwoSlopeNorm

from medxai_lib.data.phantoms.histology import ATTRIBUTE_WORDS, ATTRIBUTES, parse_report
from medxai_lib.viz.overlays import to_display

REGION_COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#a65628")    # one per attribute region


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    return F.interpolate(maps.detach().cpu().float()[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def plot_block_maps(image: torch.Tensor, maps: Mapping[str, torch.Tensor], block_names: Sequence[str],
                    class_name: str, cell_inches: float = 2.4) -> plt.Figure:
    """Rows = models, columns = the image then each block's contribution map to ``class_name``
    (``maps[name]``: ``(M, h, w)``, e.g. from ``MDNetImage.block_maps``), on ONE symmetric diverging scale
    shared by every panel; each panel's title gives the block's contribution (the map's mean)."""
    size = tuple(image.shape[-2:])
    shown = {name: _upsample(m, size) for name, m in maps.items()}
    limit = max(float(np.abs(m).max()) for m in shown.values()) or 1.0
    ncols = 1 + max(len(m) for m in shown.values())
    fig, axes = plt.subplots(len(shown), ncols, figsize=(cell_inches * ncols + 1.2, (cell_inches + 0.35) * len(shown) + 0.7),
                             squeeze=False, layout="constrained")      # square panels of about cell_inches (>= 180 px at 100 dpi)
    base = to_display(image)
    heat = None
    for row, (name, m) in enumerate(shown.items()):
        axes[row, 0].imshow(base)
        axes[row, 0].set_title("image", fontsize=9)
        axes[row, 0].set_ylabel(name, fontsize=9)
        for col in range(1, ncols):
            ax = axes[row, col]
            if col - 1 >= len(m):
                ax.axis("off")
                continue
            heat = ax.imshow(m[col - 1], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"{block_names[col - 1]}: {maps[name][col - 1].mean():+.2f}", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(heat, ax=axes, shrink=0.7, label=f"contribution to the '{class_name}' score (shared scale)")
    fig.suptitle(f"Decoupled output for class '{class_name}': each block's map w_m^c · F_m\n"
                 "(panel title: the map's mean = the block's contribution to the logit)", fontsize=10)
    return fig


def attention_steps(words: Sequence[str]) -> list[tuple[int, str, int]]:
    """For each attribute sentence of a generated report, the step of the word that names the attribute
    (its first word in :data:`~medxai_lib.data.phantoms.histology.ATTRIBUTE_WORDS`, e.g. "crowding", "mitoses"),
    or of the sentence's middle word where none does ("nuclear size is regular"):
    ``[(step, word, attribute index), ...]`` (the mask/step bookkeeping of the word-by-word figure)."""
    steps, start = [], 0
    for t, word in enumerate(list(words) + ["."]):
        if word != ".":
            continue
        sentence = list(words[start:t])
        stated = parse_report(" ".join(sentence))[0]
        if len(stated) == 1 and sentence:
            name = next(iter(stated))
            named = [k for k, w in enumerate(sentence) if w in ATTRIBUTE_WORDS[name]]
            k = named[0] if named else len(sentence) // 2
            steps.append((start + k, sentence[k], ATTRIBUTES.index(name)))
        start = t + 1
    return steps


def plot_attention_strip(image: torch.Tensor, words: Sequence[str], attention: torch.Tensor,
                         attribute_masks: torch.Tensor, model_name: str, cell_inches: float = 2.4) -> plt.Figure:
    """Word by word: one panel per attribute sentence of a generated report, the attention ``(T, h, w)`` of
    a word in its middle blended over the image on one shared scale, with the contour of THAT attribute's
    region (colour per attribute). ``attribute_masks (5, H, W)``."""
    size = tuple(image.shape[-2:])
    picked = attention_steps(words)
    if not picked:
        raise ValueError("words: no attribute sentence in the generated report")
    maps = _upsample(attention[[t for t, _, _ in picked]], size)
    maps = maps / maps.sum((1, 2), keepdims=True) * maps[0].size                # 1 = uniform attention
    vmax = float(maps.max())
    fig, axes = plt.subplots(1, len(picked) + 1, figsize=(cell_inches * (len(picked) + 1) + 1.2, cell_inches + 1.1),
                             layout="constrained")                     # square panels of about cell_inches (>= 180 px at 100 dpi)
    base = to_display(image)
    axes[0].imshow(base)
    axes[0].set_title("image", fontsize=9)
    heat = None
    for ax, (t, word, a), m in zip(axes[1:], picked, maps):
        ax.imshow(base)
        heat = ax.imshow(m, cmap="magma", alpha=0.6, vmin=0, vmax=vmax)
        mask = attribute_masks[a].cpu().numpy()
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=[REGION_COLOURS[a]], linewidths=1.6)
        ax.set_title(f"step {t}: '{word}'\n({ATTRIBUTES[a]} sentence)", fontsize=8, color=REGION_COLOURS[a])
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(heat, ax=axes, shrink=0.8, label="attention / uniform (shared scale)")
    fig.suptitle(f"{model_name}: attention at the word naming each attribute (its sentence's middle word if none does)\n"
                 "(contour: that attribute's region; none drawn when the grade is 0)", fontsize=9)
    return fig


def plot_ratio_matrices(matrices: Mapping[str, np.ndarray], cell_inches: float = 3.2) -> plt.Figure:
    """Sentence (rows) x region (columns) mean in-region attention ratios, one panel per model, on one
    diverging scale centred on 1 (= uniform attention); values written in the cells."""
    values = np.concatenate([np.asarray(m, dtype=float).ravel() for m in matrices.values()])
    half = max(float(np.nanmax(np.abs(values - 1.0))), 0.05)      # symmetric about 1: a 3% dip is not painted as a peak
    norm = TwoSlopeNorm(vcenter=1.0, vmin=1.0 - half, vmax=1.0 + half)
    fig, axes = plt.subplots(1, len(matrices), figsize=(cell_inches * len(matrices) + 1.2, cell_inches + 0.6),
                             squeeze=False, gridspec_kw={"wspace": 0.15})
    heat = None
    for ax, (name, m) in zip(axes[0], matrices.items()):
        heat = ax.imshow(m, cmap="RdBu_r", norm=norm)
        for (r, c), v in np.ndenumerate(np.asarray(m)):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(v - 1.0) > 0.6 * half else "black")     # readable on the darkest cells
        ax.set_xticks(range(len(ATTRIBUTES)), list(ATTRIBUTES), fontsize=7, rotation=45, ha="right")
        ax.set_yticks(range(len(ATTRIBUTES)), list(ATTRIBUTES) if ax is axes[0, 0] else [], fontsize=7)   # rows: first panel
        ax.set_xlabel("region of attribute", fontsize=8)
        ax.set_title(name, fontsize=9)
    axes[0, 0].set_ylabel("sentence about attribute", fontsize=8)
    fig.colorbar(heat, ax=axes, shrink=0.8, label="attention in region / area share (1 = uniform)")
    fig.suptitle("Mean attention ratio of each attribute sentence (rows) on each attribute's region (columns); "
                 "word-specific attention shows as a diagonal", fontsize=9)
    return fig


def plot_retrieval_gallery(images: torch.Tensor, titles: Sequence[str], relevant: Sequence[bool], query: str,
                           method: str, cell_inches: float = 2.2) -> plt.Figure:
    """The top-k images of a ranking, each labelled below with ``titles[i]`` (e.g. its true grades, one per line);
    green frame = relevant."""
    fig, axes = plt.subplots(1, len(images), figsize=(cell_inches * len(images), cell_inches + 0.8), squeeze=False)
    for ax, image, title, hit in zip(axes[0], images, titles, relevant):
        ax.imshow(to_display(image))
        ax.set_xlabel(title, fontsize=7)                          # below the image: titles may run to several lines
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor("#1a9850" if hit else "#d73027")
            spine.set_linewidth(3)
    fig.suptitle(f"top {len(images)} for '{query}' by {method} (frame: green relevant, red not)", fontsize=9)
    fig.tight_layout()
    return fig
