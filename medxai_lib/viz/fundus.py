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
                        ("magenta", "red", "darkorange", "white", "lime", "royalblue", "grey")))


def draw_boxes(ax: plt.Axes, bank: DescriptorBank, colour: str | None = None, margin: float = 1.0) -> None:
    """Outline each descriptor's box on ``ax`` (colour by kind unless ``colour`` is given)."""
    for d in bank:
        x0, y0, x1, y1 = d.box
        ax.add_patch(Rectangle((x0 - 0.5 - margin, y0 - 0.5 - margin), x1 - x0 + 2 * margin, y1 - y0 + 2 * margin,
                               fill=False, lw=0.8, ec=colour or KIND_COLOURS.get(d.kind, "cyan")))


def plot_fundus_rows(rows: dict[str, torch.Tensor], banks: dict[str, Sequence[DescriptorBank]] | None = None,
                     normalized: bool = False, cell_inches: float = 1.9, cmap: str = "magma",
                     map_label: str = "map / its maximum", titles: Sequence[str] | None = None) -> plt.Figure:
    """One row per entry: ``(B, 3, S, S)`` images (or ``(B, S, S)`` maps in [0, 1], drawn with ``cmap`` on a
    shared 0-1 scale with a colour bar; a row whose maps are all binary, values only 0 and 1, gets none), with
    the boxes of ``banks[row][i]`` outlined in their kind's colour (a legend names the colours). ``titles``: one
    title per column, over the first row."""
    names = list(rows)
    ncols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(names), ncols, figsize=(cell_inches * ncols + 0.8, cell_inches * len(names) + 0.5),
                             squeeze=False, layout="constrained")
    kinds_drawn: set[str] = set()
    for r, name in enumerate(names):
        image = None
        for i, ax in enumerate(axes[r]):
            ax.set_xticks([]), ax.set_yticks([])
            if i >= len(rows[name]):
                ax.axis("off")
                continue
            item = rows[name][i]
            if item.ndim == 2:
                image = ax.imshow(item.detach().cpu().numpy(), cmap=cmap, vmin=0, vmax=1)
            else:
                ax.imshow(to_display(item, normalized))
            if banks and name in banks:
                draw_boxes(ax, banks[name][i])
                kinds_drawn |= {d.kind for d in banks[name][i]}
        axes[r, 0].set_ylabel(name, fontsize=8)
        if r == 0 and titles is not None:
            if len(titles) != ncols:
                raise ValueError(f"titles: expected {ncols} column titles, got {len(titles)}")
            for ax, title in zip(axes[0], titles):
                ax.set_title(title, fontsize=8)
        binary = all(bool(((item == 0) | (item == 1)).all()) for item in rows[name] if item.ndim == 2)   # images aside
        if image is not None and not binary:
            fig.colorbar(image, ax=list(axes[r]), fraction=0.02, pad=0.01).set_label(map_label, fontsize=7)
    if kinds_drawn:
        handles = [Rectangle((0, 0), 1, 1, fill=False, ec=KIND_COLOURS.get(k, "cyan"), lw=2, label=f"box: {k}")
                   for k in sorted(kinds_drawn)]
        legend = fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=True)
        legend.get_frame().set_facecolor("0.35")         # a grey ground, so that white and orange boxes show
        for text in legend.get_texts():
            text.set_color("white")
    return fig


def plot_descriptor_gallery(bank: DescriptorBank, images: Sequence[torch.Tensor], source_index: Sequence[int],
                            layer: str = "conv1b", n: int = 8, pad: int = 4) -> plt.Figure:
    """For ``n`` descriptors: the lesion crop (``images[source_index[k]]``, ``(3, S, S)`` in [0, 1]) with the
    descriptor's box outlined in its kind's colour, its activation patch and its Gram matrix at ``layer``;
    activations and Gram matrices each on one shared scale per row, with a colour bar."""
    n = min(n, len(bank))
    if n == 0:
        raise ValueError("bank: empty; nothing to show")
    if len(source_index) < n:
        raise ValueError(f"source_index: expected one image index per descriptor ({n}), got {len(source_index)}")
    fig, axes = plt.subplots(3, n, figsize=(2.3 * n + 1.2, 7.6), squeeze=False, layout="constrained")
    shown = [bank[k] for k in range(n)]
    act_max = max(float((d.activation * d.mask).max()) for d in shown) or 1.0
    grams = [d.grams[layer] for d in shown]
    g_lo, g_hi = min(float(g.min()) for g in grams), max(float(g.max()) for g in grams)
    for k, d in enumerate(shown):
        x0, y0, x1, y1 = d.box
        image = to_display(images[source_index[k]], normalized=False)
        size = image.shape[0]
        left, top = max(0, x0 - pad), max(0, y0 - pad)
        axes[0, k].imshow(image[top:min(size, y1 + pad), left:min(size, x1 + pad)])
        axes[0, k].add_patch(Rectangle((x0 - left - 0.5, y0 - top - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.5,
                                       ec=KIND_COLOURS.get(d.kind, "cyan")))
        axes[0, k].set_title(f"{d.kind.replace('_', ' ')}\n{d.area} px", fontsize=8)
        activation = axes[1, k].imshow(d.activation * d.mask, cmap="magma", vmin=0, vmax=act_max)
        gram_image = axes[2, k].imshow(d.grams[layer], cmap="viridis", vmin=g_lo, vmax=g_hi)
        for ax in axes[:2, k]:
            ax.set_xticks([]), ax.set_yticks([])
        channels = d.grams[layer].shape[0]                      # the Gram matrix is channels x channels
        ticks = [0, channels - 1]
        axes[2, k].set_xticks(ticks, [str(t) for t in ticks], fontsize=6)
        axes[2, k].set_yticks(ticks, [str(t) for t in ticks], fontsize=6)
        axes[2, k].set_xlabel(f"{layer} channel", fontsize=7)
    fig.colorbar(activation, ax=list(axes[1]), fraction=0.03, pad=0.01).set_label("activation x mask\n(shared scale)", fontsize=7)
    fig.colorbar(gram_image, ax=list(axes[2]), fraction=0.03, pad=0.01).set_label(f"Gram entry, {layer}\n(shared scale)", fontsize=7)
    for r, label in enumerate(("source crop, box", "activation patch\n(deconvnet map x region)", f"Gram matrix {layer}\n(channel x channel)")):
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("descriptors: the kind is the lesion type visible on most of the region (box outlined)", fontsize=9)
    return fig


GRADE_NAMES = ("0 no DR", "1 mild", "2 moderate", "3 severe", "4 proliferative")


def plot_severity_by_kind(counts: Sequence[int], detector: dict[str, np.ndarray], rule: dict[str, np.ndarray],
                          reader: dict[str, np.ndarray] | None = None,
                          second: dict[str, np.ndarray] | None = None,
                          second_label: str = "independent grade regressor (mean)") -> plt.Figure:
    """One panel per lesion kind: the detector's grade (mean and 95% band over images of ``(K, N)`` scores),
    the grading rule's grade for the inoculated eye ``(K,)``, optionally the rule applied to what the
    independent classifier reads at the boxes ``(K, N)`` and a second detector's mean grade ``(K, N)``.
    Y-axis in grade units 0-4 (extended below 0 when a regressor scores there)."""
    kinds = list(detector)
    lowest = min([-0.3] + [float(np.asarray(v).mean(1).min()) - 0.2 for v in (second or {}).values()])
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.1 * len(kinds) + 0.6, 3.9), sharey=True, squeeze=False)
    x = np.asarray(counts)
    for ax, kind in zip(axes[0], kinds):
        scores = np.asarray(detector[kind])
        lo, hi = np.quantile(scores, [0.025, 0.975], axis=1)
        ax.fill_between(x, lo, hi, color="C3", alpha=0.2, lw=0)
        ax.plot(x, scores.mean(1), "o-", color="C3", lw=2, ms=3, label="detector (mean; band: central 95% of images)")
        ax.step(x, rule[kind], where="post", color="k", ls="--", lw=1.5, label="grading rule")
        if reader is not None and kind in reader:
            ax.plot(x, np.asarray(reader[kind]).mean(1), "s-", color="C0", lw=1, ms=3,
                    label="rule on the independent reader's kinds")
        if second is not None and kind in second:
            ax.plot(x, np.asarray(second[kind]).mean(1), "^-", color="C2", lw=1.5, ms=3, label=second_label)
        for t, threshold in enumerate((0.5, 1.5, 2.5, 3.5)):
            ax.axhline(threshold, color="0.7", ls=":", lw=0.8)
        ax.set_title(kind.replace("_", " "), fontsize=9)
        ax.set_xlabel("inoculated copies")
    axes[0, 0].set_yticks(range(5), GRADE_NAMES, fontsize=8)
    axes[0, 0].set_ylim(lowest, 4.8)
    axes[0, 0].set_ylabel("DR grade (dotted: o_O thresholds)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2 if second is not None else 3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.14 if second is not None else 0.08, 1, 1))
    return fig


def plot_crop_pairs(real: dict[str, torch.Tensor], synthetic: dict[str, torch.Tensor], per_side: int = 4,
                    cell_inches: float = 1.0, title: str = "") -> plt.Figure:
    """Lesions side by side, one row per kind: ``per_side`` crops of real phantom lesions ``(N, 3, c, c)``
    in [0, 1] on the left and as many crops of synthesised ones at their target boxes on the right (a
    dashed line between). Kinds missing from either dict are skipped."""
    kinds = [k for k in real if k in synthetic and len(real[k]) and len(synthetic[k])]
    if not kinds:
        raise ValueError("real, synthetic: no lesion kind has crops in both")
    fig, axes = plt.subplots(len(kinds), 2 * per_side, figsize=(2 * per_side * cell_inches, len(kinds) * cell_inches + 0.6),
                             squeeze=False)
    for row, kind in zip(axes, kinds):
        for j, ax in enumerate(row):
            crops = real[kind] if j < per_side else synthetic[kind]
            k = j % per_side
            if k < len(crops):
                ax.imshow(crops[k].permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if j == per_side:                     # a dashed line between the real and the synthesised crops
                ax.spines["left"].set_linestyle("--"), ax.spines["left"].set_linewidth(2)
        row[0].set_ylabel(kind.replace("_", " "), fontsize=8)
    axes[0, 0].set_title("real phantom lesions", loc="left", fontsize=9)
    axes[0, per_side].set_title("synthesised at the target box", loc="left", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight() if title else 1))
    return fig


def plot_inoculation_step(detector: torch.nn.Module, item: dict, generator: torch.nn.Module, vessels: torch.Tensor,
                          fov: torch.Tensor, threshold: float | str, source: str = "") -> plt.Figure:
    """One frame of notebook 06's explorer, everything from the same eye and the same ``threshold``: the
    source fundus (``item``, a :class:`~medxai_lib.data.FundusPhantom` item), its grade-weighted deconvnet
    map inside the field of view, the thresholded mask, and the healthy eye's anatomy map ``vessels``
    ``(1, A, S, S)`` (the generator's input) and ``fov`` ``(1, 1, S, S)`` inoculated by ``generator`` with the descriptors found there; the title gives their number and the
    detector's grade of the inoculated eye."""
    from medxai_lib.evaluate.studies.inoculation import predicted_scores
    from medxai_lib.explain.activation_network import ActivationNetwork
    from medxai_lib.explain.descriptors import extract_descriptors, threshold_map
    from medxai_lib.models.detector import detector_input
    from medxai_lib.models.pathogan import synthesize
    image = detector_input(item["image"][None])
    found = DescriptorBank(extract_descriptors(detector, image[0], threshold, fov=item["fov"][0],
                                               lesion_masks=item.get("lesions"), source=source))
    activation = ActivationNetwork(detector).lesion_map(image).cpu() * item["fov"]
    binary = torch.from_numpy(threshold_map(activation[0].numpy(), threshold, dilate=1))[None].float()
    inoculated = synthesize(generator, vessels, fov, found).cpu()
    row = source or "source eye"
    titles = ["source eye, descriptor boxes", "grade-weighted deconvnet (conv4b)", f"mask at threshold {threshold}",
              "healthy vessel map, inoculated"]
    fig = plot_fundus_rows({row: [item["image"], activation[0], binary[0], inoculated[0]]},
                           banks={row: [found, DescriptorBank(), DescriptorBank(), found]}, cell_inches=2.2,
                           map_label="deconvnet / max (mask 0/1)", titles=titles)
    grade = predicted_scores(detector, inoculated.to(next(detector.parameters()).device))[0]
    fig.suptitle(f"threshold {threshold}: {len(found)} descriptors | the o_O detector's grade of the inoculated eye {grade:.2f} "
                 "(circular: it drove the generator)", fontsize=9)
    return fig
