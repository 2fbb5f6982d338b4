"""The scoreboard: every method's maps scored per image, a bootstrap CI on every cell, ranks with ties.

A cell of the scoreboard is the mean of one metric over the evaluation images; its 95% CI comes from
resampling the images (one view per study, so images are independent units). All methods are
resampled with the same draws (a paired bootstrap), so two methods can be compared by the CI of their
*difference*: a method's rank is 1 + the number of methods that beat it with a difference CI that
excludes 0 (methods that no one beats share rank 1; ties are the rule when CIs are wide).

Every method on the same images, scored by every metric: the table behind notebook 04 (cached maps, scores and
the method report).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from medxai_lib.evaluate.metrics.baselines import random_maps
from medxai_lib.evaluate.metrics.faithfulness import deletion_insertion, deletion_insertion_many
from medxai_lib.evaluate.metrics.localisation import (auprc, defined_mean, empty_masks, energy_in_mask, pointing_game,
                                                      topk_iou)
from medxai_lib.evaluate.metrics.robustness import sparseness
from medxai_lib.evaluate.stats import bootstrap_many, format_ci
from medxai_lib.explain.registry import METHODS, as_heatmap, attribute

#: metric -> the good direction ("higher" or "lower"); sparseness is a property, not a score.
METRICS: dict[str, str] = {"pointing game": "higher", "energy in mask": "higher", "top-k IoU": "higher",
                           "AUPRC": "higher", "deletion AUC": "lower", "insertion AUC": "higher"}
LOCALISATION = ("pointing game", "energy in mask", "top-k IoU", "AUPRC")


def one_view_per_study(study_ids: Sequence[str], labels: Sequence[int], kinds: Sequence[str],
                       per_kind: int) -> list[int]:
    """Indices of the first view of the first ``per_kind`` abnormal studies of each kind (in dataset
    order, kinds in sorted order), so every image is an independent unit. Raises if a kind has fewer."""
    if not (len(study_ids) == len(labels) == len(kinds)):
        raise ValueError(f"study_ids, labels, kinds: expected equal lengths, got {len(study_ids)}, "
                         f"{len(labels)}, {len(kinds)}")
    if not isinstance(per_kind, int) or per_kind < 1:
        raise ValueError(f"per_kind: expected a positive int, got {per_kind!r}")
    chosen: dict[str, list[int]] = {}
    seen: set[str] = set()
    for i, (study, label, kind) in enumerate(zip(study_ids, labels, kinds)):
        if int(label) != 1 or study in seen:
            continue
        seen.add(study)
        chosen.setdefault(kind, []).append(i)
    short = {k: len(v) for k, v in chosen.items() if len(v) < per_kind}
    if short or not chosen:
        raise ValueError(f"per_kind: {per_kind} studies of each kind wanted, but the data have only {short or chosen}; "
                         "use more studies or a smaller per_kind")
    return [i for kind in sorted(chosen) for i in chosen[kind][:per_kind]]


@dataclass
class MapScores:
    """Per-image scores of several maps of the same images.

    ``values[metric]`` is ``(N, M)`` (images x methods, in the order of ``methods``); ``curves[method]``
    is ``(deletion (N, S+1), insertion (N, S+1))`` probability curves.
    """
    methods: list[str]
    values: dict[str, np.ndarray]
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def column(self, metric: str, method: str) -> np.ndarray:
        """``(N,)`` per-image values of one method for one metric."""
        if metric not in self.values:
            raise ValueError(f"metric: expected one of {list(self.values)}, got {metric!r}")
        if method not in self.methods:
            raise ValueError(f"method: expected one of {self.methods}, got {method!r}")
        return self.values[metric][:, self.methods.index(method)]

    def subset(self, rows: np.ndarray) -> "MapScores":
        """The same scores for a subset of images (a boolean or integer index)."""
        return MapScores(list(self.methods), {k: v[rows] for k, v in self.values.items()},
                         {k: (d[rows], i[rows]) for k, (d, i) in self.curves.items()})


def score_maps(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor,
               maps: Mapping[str, torch.Tensor], tolerance: int = 0, top_k: float = 0.05, n_steps: int = 10,
               deletion_baseline: str | float = 0.0, insertion_baseline: str | float = "blur",
               faithfulness: bool = True) -> MapScores:
    """Score every ``(N, H, W)`` map against ``masks (N, 1, H, W)``: pointing game (mask dilated by
    ``tolerance`` px), energy in mask, top-k IoU, AUPRC, deletion / insertion AUC (Petsiuk et al.;
    ``n_steps`` steps, batched over maps; skipped when ``faithfulness`` is False) and sparseness.
    Every image must have a non-empty mask."""
    if not maps:
        raise ValueError("maps: expected a non-empty mapping name -> (N, H, W) maps")
    if masks.ndim != 4 or masks.shape[0] != images.shape[0]:
        raise ValueError(f"masks: expected (N, 1, H, W) with N = {images.shape[0]}, got {tuple(masks.shape)}")
    if not (masks.flatten(1) > 0.5).any(1).all():
        raise ValueError("masks: every image needs a non-empty evidence mask (localisation is undefined otherwise)")
    names = list(maps)
    stacked = torch.stack([maps[n].detach().float().cpu() for n in names], 1)        # (N, M, H, W)
    masks = masks.cpu()
    values = {"pointing game": pointing_game(stacked, masks, tolerance).float(),
              "energy in mask": energy_in_mask(stacked, masks),
              "top-k IoU": topk_iou(stacked, masks, top_k),
              "AUPRC": auprc(stacked, masks)}
    curves = {}
    if faithfulness:
        curves = deletion_insertion_many(model, images, {n: maps[n].detach().float().to(images.device) for n in names},
                                         targets, n_steps, deletion_baseline, insertion_baseline)
        values.update({mode: torch.stack([torch.as_tensor(np.trapezoid(curves[n][k].numpy(), dx=1.0 / n_steps, axis=1))
                                          for n in names], 1) for k, mode in enumerate(("deletion AUC", "insertion AUC"))})
    values["sparseness"] = torch.stack([sparseness(maps[n]) for n in names], 1)
    return MapScores(names, {k: v.double().numpy() for k, v in values.items()},
                     {n: (c[0].numpy(), c[1].numpy()) for n, c in curves.items()})


def scoreboard(scores: MapScores, metrics: Sequence[str] = tuple(METRICS), n_boot: int = 2000, seed: int = 0
               ) -> "pandas.DataFrame":
    """Mean and 95% bootstrap CI of every (method, metric) cell (:func:`~medxai_lib.evaluate.stats.bootstrap_many`,
    methods resampled on the same images): a frame indexed by method with columns ``(metric, "mean" | "lo" | "hi")``."""
    import pandas as pd
    columns = {}
    for metric in metrics:
        mean, lo, hi = bootstrap_many(scores.values[metric], n_boot, seed)
        columns[(metric, "mean")], columns[(metric, "lo")], columns[(metric, "hi")] = mean, lo, hi
    frame = pd.DataFrame(columns, index=pd.Index(scores.methods, name="method"))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def formatted(board: "pandas.DataFrame") -> "pandas.DataFrame":
    """A :func:`scoreboard` frame as ``"mean [lo, hi]"`` strings (:func:`~medxai_lib.evaluate.stats.format_ci`),
    one column per metric."""
    import pandas as pd
    metrics = list(dict.fromkeys(board.columns.get_level_values(0)))
    return pd.DataFrame({m: [format_ci(*board.loc[i, m][["mean", "lo", "hi"]]) for i in board.index]
                         for m in metrics}, index=board.index)


def better_matrix(scores: MapScores, metric: str, n_boot: int = 2000, seed: int = 0) -> "pandas.DataFrame":
    """``[i, j]`` True where method i beats method j on ``metric``: the paired-bootstrap 95% CI of their
    difference lies entirely on the good side of 0 (:data:`METRICS` gives the direction). Methods x methods."""
    import pandas as pd
    if metric not in METRICS:
        raise ValueError(f"metric: {metric!r} has no good direction; rankable: {list(METRICS)}")
    values = np.asarray(scores.values[metric], dtype=float)                               # (N, M)
    sign = 1.0 if METRICS[metric] == "higher" else -1.0
    i, j = np.triu_indices(values.shape[1], k=1)
    beats = np.zeros((values.shape[1],) * 2, dtype=bool)
    if len(i):
        _, lo, hi = bootstrap_many(sign * (values[:, i] - values[:, j]), n_boot, seed)     # pairs resampled jointly
        beats[i, j], beats[j, i] = lo > 0, hi < 0
    return pd.DataFrame(beats, index=scores.methods, columns=scores.methods)


def ranks(scores: MapScores, metrics: Sequence[str] = tuple(METRICS), n_boot: int = 2000, seed: int = 0
          ) -> "pandas.DataFrame":
    """Rank of every method per metric: 1 + the number of methods that beat it (:func:`better_matrix`).
    Methods that nobody beats share rank 1; equal ranks are ties. Integer frame (methods x metrics)."""
    import pandas as pd
    out = {metric: 1 + better_matrix(scores, metric, n_boot, seed).to_numpy().sum(0) for metric in metrics}
    return pd.DataFrame(out, index=pd.Index(scores.methods, name="method")).astype(int)


def by_group(scores: MapScores, groups: Sequence[str], metric: str, methods: Sequence[str] | None = None,
             n_boot: int = 2000, seed: int = 0) -> "pandas.DataFrame":
    """``"mean [lo, hi]"`` of one metric per group (e.g. abnormality kind) and overall: methods x
    (groups..., "all"), with the group sizes in the column names."""
    import pandas as pd
    groups = np.asarray(groups)
    if len(groups) != len(next(iter(scores.values.values()))):
        raise ValueError(f"groups: expected one label per image ({len(next(iter(scores.values.values())))}), got {len(groups)}")
    methods = list(methods or scores.methods)
    columns = {}
    for group in [*sorted(set(groups.tolist())), None]:
        part = scores if group is None else scores.subset(groups == group)
        board = scoreboard(MapScores(part.methods, {metric: part.values[metric]}), [metric], n_boot, seed)
        n = len(part.values[metric])
        columns[f"{'all' if group is None else group} (n={n})"] = [
            format_ci(*board.loc[m, metric][["mean", "lo", "hi"]]) for m in methods]
    return pd.DataFrame(columns, index=pd.Index(methods, name="method"))


def against_baselines(scores: MapScores, baselines: Sequence[str], metrics: Sequence[str] = tuple(METRICS),
                      n_boot: int = 2000, seed: int = 0) -> "pandas.DataFrame":
    """Per metric, in words: the strongest baseline (best mean), the methods that beat *every* baseline
    (:func:`better_matrix`), and the methods that share rank 1 (nobody beats them). Metrics x 3 text columns."""
    import pandas as pd
    missing = [b for b in baselines if b not in scores.methods]
    if missing or not baselines:
        raise ValueError(f"baselines: expected names among the scored maps, missing {missing or 'all'}")
    rows = {}
    for metric in metrics:
        better = better_matrix(scores, metric, n_boot, seed)
        sign = 1.0 if METRICS[metric] == "higher" else -1.0
        means = dict(zip(scores.methods, scores.values[metric].mean(0)))
        strongest = max(baselines, key=lambda b: sign * means[b])
        others = [m for m in scores.methods if m not in baselines]
        winners = [m for m in others if better.loc[m, list(baselines)].all()]
        top = [m for m in scores.methods if not better[m].any()]
        rows[metric] = {"strongest baseline": f"{strongest} ({means[strongest]:.2f})",
                        "methods that beat every baseline": ", ".join(winners) or "none",
                        "rank 1 (tied)": ", ".join(top)}
    return pd.DataFrame(rows).T


def method_report(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor,
                  methods: dict[str, dict[str, Any]], tolerance: int = 0, n_steps: int = 20, top_k: float = 0.05,
                  seed: int = 0) -> tuple["pandas.DataFrame", dict[str, torch.Tensor]]:
    """Run each method (name -> keyword arguments, e.g. ``{"grad_cam": {"layer": "features"}}``) on
    ``images (B, C, H, W)`` for ``targets (B,)`` and score its ``(B, H, W)`` heatmap against ``masks
    (B, 1, H, W)``: pointing game, energy in mask, top-k IoU, AUPRC, deletion and insertion AUC,
    sparseness and wall time. A ``"random"`` row gives the chance level. Returns (table, heatmaps).

    Localisation metrics are undefined for an image with an empty mask: such images are left out of
    those four columns (all methods alike, one denominator), and a column ``images left out (empty
    mask)`` says how many when there are any. Faithfulness and sparseness use every image."""
    import pandas as pd
    if not isinstance(methods, dict):
        raise TypeError(f"methods: expected a dict of method name -> keyword arguments (e.g. "
                        f"{{'grad_cam': {{'layer': 'features'}}}}), got {type(methods).__name__} {methods!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; valid methods: {', '.join(sorted(METHODS))}")
    size = images.shape[-2:]
    heatmaps: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    for name, kwargs in methods.items():
        start = time.perf_counter()
        output = attribute(model, images, name, classes=targets, **kwargs)
        seconds[name] = time.perf_counter() - start
        heatmaps[name] = as_heatmap(output.detach(), tuple(size))[:, 0].cpu()
    heatmaps["random"] = random_maps(images.shape[0], tuple(size), seed)
    seconds["random"] = 0.0
    n_empty = int(empty_masks(masks).sum())
    rows = []
    for name, heat in heatmaps.items():
        maps = heat[:, None]
        _, deletion = deletion_insertion(model, images, heat.to(images.device), targets, "deletion", n_steps)
        _, insertion = deletion_insertion(model, images, heat.to(images.device), targets, "insertion", n_steps)
        row = {"method": name, "family": METHODS[name].family if name in METHODS else "baseline",
               "pointing game": defined_mean(pointing_game(maps, masks, tolerance)),
               "energy in mask": defined_mean(energy_in_mask(maps, masks)),
               "top-k IoU": defined_mean(topk_iou(maps, masks, top_k)),
               "AUPRC": auprc(maps, masks).nanmean().item(),
               "deletion AUC": deletion.mean().item(), "insertion AUC": insertion.mean().item(),
               "sparseness": sparseness(heat).mean().item(), "seconds": seconds[name]}
        if n_empty:
            row["images left out (empty mask)"] = n_empty
        rows.append(row)
    return pd.DataFrame(rows).set_index("method"), heatmaps


def compute_maps(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, methods: dict[str, dict[str, Any]],
                 batch_size: int = 12) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Run every method once on ``images (B, C, H, W)`` for ``targets (B,)``, ``batch_size`` images at a time
    (methods that batch noisy copies or integration steps otherwise hold all of them in memory at once):
    name -> ``(B, H, W)`` maps at image resolution on the CPU (layer maps upsampled bilinearly, signed input
    maps summed over channels), and name -> wall seconds."""
    if not isinstance(methods, dict) or not methods:
        raise ValueError(f"methods: expected a non-empty dict name -> keyword arguments, got {methods!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; valid methods: {', '.join(sorted(METHODS))}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    targets = torch.as_tensor(targets)
    size = tuple(images.shape[-2:])
    maps, seconds = {}, {}
    for name, kwargs in methods.items():
        start = time.perf_counter()
        parts = [as_heatmap(attribute(model, images[i:i + batch_size], name, classes=targets[i:i + batch_size],
                                      **kwargs).detach(), size)[:, 0].cpu() for i in range(0, len(images), batch_size)]
        seconds[name] = time.perf_counter() - start
        maps[name] = torch.cat(parts)
    return maps, seconds


def heatmap_fn(method: str, size: tuple[int, int], classes: Any = 0, **kwargs: Any
               ) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """``explain(model, images) -> (B, H, W)``: one method's heatmap for ``classes`` at image size, for
    tests that call a method on many models (e.g. :func:`medxai_lib.evaluate.metrics.sanity.randomisation_test`)."""
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; valid methods: {', '.join(sorted(METHODS))}")

    def explain(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return as_heatmap(attribute(model, images, method, classes=classes, **kwargs).detach(), tuple(size))[:, 0]
    return explain
