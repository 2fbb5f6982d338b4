"""Figures of the attribution scoreboard: maps on one honest scale, the rank table, deletion / insertion
curves and the randomisation sanity check."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D

from medxai_lib.evaluate.metrics.baselines import BASELINES, DARK_IMAGE
from medxai_lib.evaluate.stats import format_ci
from medxai_lib.viz.colours import EVIDENCE_COLOUR, draw_contour
from medxai_lib.viz.overlays import to_display


def plot_method_maps(images: torch.Tensor, maps: Mapping[str, torch.Tensor], masks: torch.Tensor | None = None,
                     signed: Sequence[str] = (), column_titles: Sequence[str] | None = None, title: str | None = None,
                     cell_inches: float = 2.5, alpha: float = 0.65, mask_label: str = "evidence mask") -> plt.Figure:
    """Rows = methods, columns = images. Each row has ONE colour scale for all its images (so magnitudes
    compare across images) and its own colour bar: signed methods (names in ``signed``) in ``RdBu_r``
    centred on 0 with a symmetric range (the 99th percentile of |map| over the row), the others in
    ``magma`` from the row's minimum to its 99th percentile. ``images (B, C, H, W)``, maps ``(B, H, W)``,
    ``masks (B, 1, H, W)`` outlined in the evidence colour."""
    names = list(maps)
    if not names:
        raise ValueError("maps: expected at least one method")
    batch = images.shape[0]
    for name in names:
        if maps[name].shape[0] != batch or maps[name].ndim != 3:
            raise ValueError(f"maps[{name!r}]: expected ({batch}, H, W), got {tuple(maps[name].shape)}")
    width, height = cell_inches * batch + 2.0, cell_inches * len(names) + 1.2
    fig, axes = plt.subplots(len(names), batch, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=1.0 / width, right=1 - 1.0 / width, top=1 - 1.05 / height, bottom=0.1 / height,
                        wspace=0.04, hspace=0.1)
    for row, name in enumerate(names):
        values = maps[name].detach().cpu().float()
        if name in signed:
            vmax = float(torch.quantile(values.abs().flatten(), 0.99).clamp_min(1e-12))
            vmin, cmap = -vmax, "RdBu_r"
        else:
            vmin = float(values.min())
            vmax = max(float(torch.quantile(values.flatten(), 0.99)), vmin + 1e-12)
            cmap = "magma"
        heat = None
        for col in range(batch):
            ax = axes[row, col]
            ax.imshow(to_display(images[col]), cmap="gray", vmin=0, vmax=1)
            heat = ax.imshow(values[col].numpy(), cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha)
            if masks is not None:
                draw_contour(ax, masks[col, 0], EVIDENCE_COLOUR, linewidth=0.8)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0 and column_titles is not None:
                ax.set_title(column_titles[col], fontsize=9)
        axes[row, 0].set_ylabel(name + ("\n(signed)" if name in signed else ""), fontsize=9)
        bar = fig.colorbar(heat, ax=axes[row, :].tolist(), fraction=0.025, pad=0.01)
        bar.ax.tick_params(labelsize=7)
    handle = Line2D([], [], color=EVIDENCE_COLOUR, lw=2)
    fig.legend([handle], [mask_label], loc="upper right", bbox_to_anchor=(1 - 0.2 / width, 1 - 0.38 / height),
               fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.12 / height)
    return fig


def plot_rank_table(board: "pandas.DataFrame", rank_frame: "pandas.DataFrame", directions: Mapping[str, str],
                    baselines: Sequence[str] = (), title: str | None = None) -> plt.Figure:
    """A rank heatmap: cell colour = rank within its column (1 = best, the same colour for tied ranks),
    annotated with the mean and its 95% CI (:func:`~medxai_lib.evaluate.stats.format_ci`); column titles carry the good direction (up or down arrow);
    ``baselines`` rows are labelled in italics below a line. ``board`` is a
    :func:`medxai_lib.evaluate.studies.scoreboard.scoreboard` frame, ``rank_frame`` the matching ranks."""
    metrics = list(rank_frame.columns)
    methods = list(rank_frame.index)
    ranks = rank_frame.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(2.05 * len(metrics) + 2.2, 0.42 * len(methods) + 1.6))
    cmap = ListedColormap(plt.get_cmap("viridis_r")(np.linspace(0.15, 0.95, 256)))
    image = ax.imshow(ranks, cmap=cmap, aspect="auto", vmin=1, vmax=max(2, len(methods)))
    for i, method in enumerate(methods):
        for j, metric in enumerate(metrics):
            mean, lo, hi = (board.loc[method, (metric, k)] for k in ("mean", "lo", "hi"))
            colour = "black" if ranks[i, j] < 0.45 * len(methods) else "white"     # light cells: dark text
            cell = format_ci(mean, lo, hi).replace(" [", "\n[", 1)                    # the CI on a second line
            ax.text(j, i, f"#{int(ranks[i, j])}  {cell}",
                    ha="center", va="center", fontsize=7, color=colour)
    arrows = {"higher": "\u2191 higher is better", "lower": "\u2193 lower is better"}
    ax.set_xticks(range(len(metrics)), [f"{m}\n{arrows[directions[m]]}" for m in metrics], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(methods)), methods, fontsize=8)
    for label in ax.get_yticklabels():
        if label.get_text() in baselines:
            label.set_fontstyle("italic")
    first_baseline = [i for i, m in enumerate(methods) if m in baselines]
    if first_baseline:
        ax.axhline(min(first_baseline) - 0.5, color="black", lw=1.5)
    bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    bar.set_label("rank in its column (1 = best; equal ranks = tied: paired 95% CI of the difference includes 0)",
                  fontsize=7)
    bar.ax.invert_yaxis()
    if title:
        ax.set_title(title, fontsize=10, pad=34)
    fig.tight_layout()
    return fig


def plot_deletion_insertion(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], aucs: Mapping[str, tuple[float, float]],
                            title: str | None = None, deletion_to: str = "set to 0 = mean grey",
                            insertion_from: str = "the blurred image", levels: Mapping[str, float] | None = None,
                            baselines: Sequence[str] = (*BASELINES, DARK_IMAGE),
                            axes: Sequence[plt.Axes] | None = None) -> plt.Figure:
    """Mean deletion (left) and insertion (right) curves, probability vs fraction of pixels removed /
    inserted, one line per method with its mean AUC in the legend; shaded: +-1 standard error; dashed:
    ``baselines``. ``deletion_to`` / ``insertion_from`` name the baseline image in the axis labels;
    ``levels`` (label -> probability, e.g. the intact and the baseline image's mean P) are drawn as grey
    horizontal lines. ``axes``: two axes to draw into (e.g. one row of a larger figure)."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), sharey=True)
    else:
        if len(axes) != 2:
            raise ValueError(f"axes: expected two axes (deletion, insertion), got {len(axes)}")
        fig = axes[0].figure
    colours = plt.get_cmap("tab10")
    for k, (ax, mode) in enumerate(zip(axes, ("deletion", "insertion"))):
        for i, (name, pair) in enumerate(curves.items()):
            c = np.asarray(pair[k])
            x = np.linspace(0, 1, c.shape[1])
            mean, se = c.mean(0), c.std(0, ddof=1) / np.sqrt(len(c))
            style = "--" if name in baselines else "-"
            ax.plot(x, mean, style, color=colours(i % 10), lw=1.8, label=f"{name} (AUC {aucs[name][k]:.2f})")
            ax.fill_between(x, mean - se, mean + se, color=colours(i % 10), alpha=0.15)
        for j, (label, level) in enumerate((levels or {}).items()):
            ax.axhline(level, color="0.35", lw=1.0, ls=(":", "-.", (0, (1, 3)))[j % 3])
            right = j % 2 == 0                           # alternate sides, so close levels stay readable
            ax.annotate(f"{label}: {level:.2f}", (1.0 if right else 0.0, level), xytext=(-4 if right else 4, 3),
                        textcoords="offset points", ha="right" if right else "left", fontsize=7.5, color="0.25")
        ax.set_xlabel(f"fraction of pixels {f'deleted ({deletion_to})' if mode == 'deletion' else f'inserted into {insertion_from}'}")
        ax.set_title(f"{mode}: {'lower' if mode == 'deletion' else 'higher'} AUC is better", fontsize=10)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("probability of 'abnormal'")
    axes[0].set_ylim(0, 1.02)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_randomisation(table: "pandas.DataFrame", title: str | None = None,
                       xlabel: str = "randomised from the top block down to") -> plt.Figure:
    """The sanity check: Spearman, SSIM and the share of collapsed (constant) maps against how far the
    network is randomised; the trained model is the first point (similarity 1). ``table`` is
    :meth:`medxai_lib.evaluate.metrics.sanity.RandomisationResult.table`; ``xlabel`` names the steps (cascading
    by default; e.g. "block re-initialised alone" for the independent test). The legend sits below the panels."""
    steps = list(dict.fromkeys(table["randomised"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    colours, markers = plt.get_cmap("tab10"), "osD^v<>ph*"
    groups = list(table.groupby("method", sort=False))
    for i, (method, part) in enumerate(groups):          # earlier lines wider, so identical curves stay visible
        width = 1.2 + 2.4 * (len(groups) - 1 - i) / max(1, len(groups) - 1)
        for ax, metric in zip(axes, ("spearman", "ssim", "collapsed")):
            ax.plot(part["step"], part[metric], "-", marker=markers[i % len(markers)], color=colours(i % 10),
                    ms=3 + width, lw=width, alpha=0.9, label=method)
    labels = ["trained\n(reference)"] + [f"{s}" for s in steps[1:]]
    for ax, name in zip(axes, ("Spearman rank correlation of |map|", "SSIM of |map|",
                               "share of maps collapsed to a constant")):
        ax.set_xticks(range(len(steps)), labels, rotation=65, ha="right", fontsize=7)
        ax.set_title(name, fontsize=10)
        ax.axhline(0, color="grey", lw=0.8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("similarity to the trained model's map\n(collapsed maps left out)")
    axes[2].set_ylim(-0.05, 1.05)
    axes[0].set_xlabel(xlabel, fontsize=8)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
