"""Localisation layer by layer, per unit (one image per study), with bootstrap CIs and controls that could win.

The pointing game and the energy share (:mod:`.localisation`) are computed per image for every map set,
beside controls that use no model: a uniformly random map (its exact expectation: the hit rate is the
dilated mask's area share, the energy share the mask's), a centre prior (a Gaussian at the image centre);
notebook 03 adds the image itself and its Sobel edges (:func:`~medxai_lib.evaluate.metrics.baselines.sobel_maps`).
:func:`grid_oracle` gives the ceiling a coarse grid can reach (the mask average-pooled to the grid): a 6x6 map cannot put its energy on a one-pixel
fracture line. :func:`frame_share` measures how much of a map sits on the outermost ring of cells (zero
padding makes early layers respond to the image border).

Shortcut learning, measured per image: does a confounder drive the prediction, and does CAM show it?

The test set has the confounder (a laterality marker) *uncorrelated* with the label; its counterfactual
twin is the same images with the confounder erased. Two readings of the marker's role per image:

* CAM's **contribution**: since ``logit - b = mean_ij CAM[i, j]``, the region's cells contribute
  ``mean_ij CAM[i, j] r_ij`` (``r`` = the region's cover of each cell); a linear read-out at the last layer.
* the **causal drop**: logit(with marker) - logit(marker erased), the total effect of the marker's pixels
  through the whole network.

They differ because a CAM cell mixes everything in its receptive field (the marker's cells also hold bone
and background evidence, and the marker changes activations in cells beyond its own), while the drop counts
every path. The control region is the marker's box mirrored left-right (an empty corner of equal size).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from medxai_lib.evaluate.metrics.classification import binary_metrics
from medxai_lib.evaluate.metrics.localisation import empty_masks, energy_in_mask, mask_fraction, pointing_game
from medxai_lib.evaluate.stats import LEVEL, Draws, bootstrap, difference, fmt, format_ci, wilson_ci
from medxai_lib.explain.cam import cam, cam_contribution
from medxai_lib.models.inference import predict_logits, probabilities

METRICS = ("pointing", "energy")


def first_view_per_study(study_ids: Sequence[str]) -> list[int]:
    """Index of the first image of every study, in order: one unit per study."""
    seen: dict[str, int] = {}
    for i, sid in enumerate(study_ids):
        seen.setdefault(sid, i)
    return list(seen.values())


def abnormal_views(dataset: "torch.utils.data.Dataset") -> list[int]:
    """The localisation units of a phantom: the first view of every abnormal study whose evidence mask is
    not empty (an empty mask has nothing to point at)."""
    labels = np.asarray(dataset.labels)
    return [i for i in first_view_per_study(dataset.study_ids)
            if labels[i] == 1 and bool(dataset[i]["mask"].amax() > 0.5)]


def centre_prior(n: int, size: int | tuple[int, int], sigma: float = 0.25) -> torch.Tensor:
    """A Gaussian at the image centre, ``sigma`` in units of the side: ``(n, 1, H, W)``."""
    if not sigma > 0:
        raise ValueError(f"sigma: expected a positive fraction of the side, got {sigma!r}")
    h, w = (size, size) if isinstance(size, int) else size
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h - 0.5
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w - 0.5
    prior = torch.exp(-(ys[:, None] ** 2 + xs[None] ** 2) / (2 * sigma ** 2))
    return prior.expand(n, 1, h, w).clone()


def grid_oracle(masks: torch.Tensor, grid: int | tuple[int, int]) -> torch.Tensor:
    """The best map a ``grid`` x ``grid`` layer can draw for each mask: the mask's cover of each cell,
    ``masks (B, 1, H, W)`` -> ``(B, 1, g, g)``. Its energy share is the ceiling at that resolution."""
    if masks.ndim != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks: expected (B, 1, H, W), got shape {tuple(masks.shape)}")
    return F.adaptive_avg_pool2d(masks.float(), grid)


def localisation_units(maps_by_name: Mapping[str, torch.Tensor], masks: torch.Tensor, tolerance: int = 0
                       ) -> dict[str, dict[str, np.ndarray]]:
    """Per-image pointing-game hit (0/1) and energy share for every map set ``(B, 1, h, w)``, plus the
    random-map expectation under the name ``"random map"``. Returns ``{name: {"pointing": (B,), "energy": (B,)}}``."""
    if not maps_by_name:
        raise ValueError("maps_by_name: give at least one map set")
    units = {}
    for name, maps in maps_by_name.items():
        if maps.ndim != 4 or maps.shape[0] != masks.shape[0]:
            raise ValueError(f"maps_by_name[{name!r}]: expected (B, 1, h, w) with B = {masks.shape[0]}, "
                             f"got {tuple(maps.shape)}")
        maps = maps[:, :1].detach().float().cpu()
        if bool(empty_masks(masks).any()):
            raise ValueError(f"masks: {int(empty_masks(masks).sum())} empty mask(s); keep units with evidence "
                             "(see abnormal_views)")
        units[name] = {"pointing": pointing_game(maps, masks.cpu(), tolerance)[:, 0].float().numpy(),
                       "energy": energy_in_mask(maps, masks.cpu())[:, 0].numpy()}
    units["random map"] = {"pointing": mask_fraction(masks.cpu(), tolerance).numpy(),
                           "energy": mask_fraction(masks.cpu()).numpy()}
    return units


def bootstrap_mean_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = LEVEL
                      ) -> tuple[float, float, float]:
    """Mean of ``(N,)`` values and its percentile bootstrap CI, ``(mean, lo, hi)``: a thin wrapper of
    :func:`medxai_lib.evaluate.stats.bootstrap` (``n_boot >= 100``)."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"values: expected a non-empty finite (N,) array, got shape {values.shape}")
    estimate = bootstrap(values, n_boot=n_boot, seed=seed, level=level)
    return estimate.value, estimate.lo, estimate.hi


def unit_ci(values: np.ndarray, seed: int = 0) -> str:
    """``"mean [lo, hi]"`` over units: the percentile bootstrap, or Wilson's score interval
    (:func:`~medxai_lib.evaluate.stats.wilson_ci`, marked ``(Wilson)``) for 0/1 values that are all equal,
    where every bootstrap resample repeats the same mean and the percentile interval would have width 0."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1 and len(values) and np.isin(values, (0.0, 1.0)).all() and np.ptp(values) == 0:
        return f"{format_ci(values.mean(), *wilson_ci(int(values.sum()), len(values)))} (Wilson)"
    return str(bootstrap(values, seed=seed))


def ci_table(units: Mapping[str, Mapping[str, np.ndarray]], metrics: Sequence[str] = METRICS, seed: int = 0,
             ) -> "pandas.DataFrame":
    """One row per map set, one ``"mean [lo, hi]"`` column per metric (95% CI over units, :func:`unit_ci`),
    written by :func:`~medxai_lib.evaluate.stats.format_ci`."""
    import pandas as pd
    rows = {name: {metric: unit_ci(values[metric], seed) for metric in metrics} for name, values in units.items()}
    return pd.DataFrame(rows).T.rename_axis("maps")


def chosen_on_half(units: Mapping[str, Mapping[str, np.ndarray]], candidates: Sequence[str], metric: str,
                   select: np.ndarray) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
    """Choose the candidate map set with the highest mean ``metric`` on the ``select`` units (bool ``(N,)``) and
    return ``(its name, every map set's values on the other units)``: a layer chosen on one half of the studies
    and tested on the other, so its lead is not the winner's curse of choosing and testing on the same units."""
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    if not candidates or any(c not in units for c in candidates):
        raise ValueError(f"candidates: expected names among {list(units)}, got {list(candidates)}")
    select = np.asarray(select)
    n = len(next(iter(units.values()))[metric])
    if select.dtype != bool or select.shape != (n,) or select.all() or not select.any():
        raise ValueError(f"select: expected a bool ({n},) array with both selection and held-out units")
    best = max(candidates, key=lambda c: float(np.mean(np.asarray(units[c][metric])[select])))
    held = {name: {m: np.asarray(v)[~select] for m, v in values.items()} for name, values in units.items()}
    return best, held


def cross_fitted_choice(units: Mapping[str, Mapping[str, np.ndarray]], candidates: Sequence[str], metric: str,
                        select: np.ndarray) -> tuple[tuple[str, str], dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """Two folds of :func:`chosen_on_half`: choose on ``select`` and test on the rest, then choose on the rest and
    test on ``select``, so every unit is scored by a candidate chosen without it. Returns ``((chosen on select,
    chosen on the rest), chosen, values)``: every unit once, the rest's units first, ``chosen[m]`` the chosen
    candidate's value on each unit and ``values[name][m]`` each map set's own values in the same order."""
    first, held_rest = chosen_on_half(units, candidates, metric, select)
    second, held_select = chosen_on_half(units, candidates, metric, ~np.asarray(select))
    values = {name: {m: np.concatenate([held_rest[name][m], held_select[name][m]]) for m in v} for name, v in units.items()}
    chosen = {m: np.concatenate([held_rest[first][m], held_select[second][m]]) for m in units[first]}
    return (first, second), chosen, values


def frame_share(maps: torch.Tensor, width: int = 1) -> torch.Tensor:
    """Share of each map's positive mass on its outermost ``width`` rings of cells, ``(B, T, h, w)`` -> ``(B, T)``
    (a map with no positive mass scores 0). Compare with the ring's area share, :func:`frame_area`."""
    if maps.ndim != 4:
        raise ValueError(f"maps: expected (B, T, h, w), got shape {tuple(maps.shape)}")
    h, w = maps.shape[-2:]
    if not isinstance(width, int) or width < 1 or 2 * width >= min(h, w):
        raise ValueError(f"width: expected an int in [1, {(min(h, w) - 1) // 2}], got {width!r}")
    positive = maps.clamp_min(0).float()
    total = positive.sum((2, 3))
    inner = positive[..., width:h - width, width:w - width].sum((2, 3))
    return torch.where(total > 0, (total - inner) / total.clamp_min(1e-12), torch.zeros_like(total))


def replicate_padding(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose padded convolutions repeat the border pixel instead of padding with zeros
    (same weights): the test of whether a bright frame in early maps comes from zero padding."""
    import copy
    twin = copy.deepcopy(model).eval()
    changed = 0
    for module in twin.modules():
        if isinstance(module, torch.nn.Conv2d) and any(p > 0 for p in module.padding):
            module.padding_mode = "replicate"
            changed += 1
    if not changed:
        raise ValueError("model: has no padded Conv2d to change")
    return twin


def frame_area(grid: int | tuple[int, int], width: int = 1) -> float:
    """Area share of the outermost ``width`` rings of a ``grid`` (the frame share of a uniform map)."""
    h, w = (grid, grid) if isinstance(grid, int) else grid
    return 1.0 - (h - 2 * width) * (w - 2 * width) / (h * w)


UNIT_KEYS = ("label", "prob", "prob_clean", "has_marker", "logit_drop", "marker_contribution",
             "mirror_contribution", "lesion_pointing")


def _region(confounders: torch.Tensor, image_side: int, grid_side: int) -> torch.Tensor:
    cell = max(1, image_side // grid_side)
    return nn.functional.max_pool2d(confounders, 2 * cell + 1, stride=1, padding=cell)


def shortcut_units(model: nn.Module, test: Dataset, test_without_confounder: Dataset, tolerance: int = 0,
                   device: str | torch.device = "auto", maps: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Per-image readings of a one-output model on a confounder-uncorrelated test set.

    Items need ``image``, ``label``, ``mask`` and ``confounder_mask``. Returns ``{key: (N,) array}`` for
    :data:`UNIT_KEYS`: ``prob`` / ``prob_clean`` (with / without the confounder); ``has_marker`` (bool);
    ``logit_drop`` = logit - logit without the confounder (0 where there is none); ``marker_contribution``
    = CAM contribution (logit units) of the confounder's box dilated by one CAM cell; ``mirror_contribution``
    = the same for that region mirrored left-right (a control region of equal size); ``lesion_pointing`` =
    CAM pointing-game hit on the evidence mask (NaN on normal images). ``maps`` = precomputed raw CAM.
    """
    if len(test) != len(test_without_confounder):
        raise ValueError(f"test_without_confounder: expected the same {len(test)} images, got {len(test_without_confounder)}")
    images, masks, confounders = test.tensors("image", "mask", "confounder_mask")
    labels = np.asarray(test.labels)
    logits = predict_logits(model, test, device=device)[:, 0]
    logits_clean = predict_logits(model, test_without_confounder, device=device)[:, 0]
    if maps is None:
        dev = next(model.parameters()).device
        maps = torch.cat([cam(model, chunk.to(dev)).cpu() for chunk in images.split(64)])
    elif maps.shape[0] != len(test) or maps.ndim != 4:
        raise ValueError(f"maps: expected raw CAMs (N, 1, h, w) with N = {len(test)}, got {tuple(maps.shape)}")
    region = _region(confounders, images.shape[-1], maps.shape[-1])
    hits = pointing_game(maps[:, :1], masks, tolerance)[:, 0].float().numpy()
    return {"label": labels.astype(int),
            "prob": probabilities(logits[:, None]),
            "prob_clean": probabilities(logits_clean[:, None]),
            "has_marker": (confounders.flatten(1).amax(1) > 0).numpy(),
            "logit_drop": (logits - logits_clean).numpy(),
            "marker_contribution": cam_contribution(maps, region)[:, 0].numpy(),
            "mirror_contribution": cam_contribution(maps, region.flip(-1))[:, 0].numpy(),
            "lesion_pointing": np.where(labels == 1, hits, np.nan)}


def shortcut_report(units: dict[str, np.ndarray]) -> dict[str, float]:
    """Summary of :func:`shortcut_units`: AUROC with / without the confounder, mean marker and mirror CAM
    contributions and mean logit drop on marked images, CAM pointing game on abnormal images."""
    has = units["has_marker"]
    return {"auroc": binary_metrics(units["prob"], units["label"])["auroc"],
            "auroc_without_confounder": binary_metrics(units["prob_clean"], units["label"])["auroc"],
            "marker_cam_logit": float(units["marker_contribution"][has].mean()),
            "mirror_cam_logit": float(units["mirror_contribution"][has].mean()),
            "logit_drop_when_removed": float(units["logit_drop"][has].mean()),
            "lesion_pointing": float(np.nanmean(units["lesion_pointing"]))}


def seed_columns(units: Sequence[dict[str, np.ndarray]], key: str) -> np.ndarray:
    """One column per model (training seed) of :func:`shortcut_units` readings on the same test set,
    ``(N, S)``: claim units whose mean is the seed-averaged reading."""
    if not units or key not in units[0]:
        raise ValueError(f"units, key: expected a non-empty list of shortcut_units dicts holding {key!r}")
    return np.stack([np.asarray(u[key], dtype=float) for u in units], 1)


def seed_draws(units: Sequence[dict[str, np.ndarray]], key: str, over: str, keep: np.ndarray | None = None) -> Draws:
    """The same readings as :func:`seed_columns` as model-seed draws ``(S, N)`` (``keep``: a boolean mask of
    the units to use), so that a claim's CI resamples the trained models as well as the test images."""
    columns = seed_columns(units, key)
    return Draws((columns if keep is None else columns[np.asarray(keep, bool)]).T, over=over)


def auroc_draws(units: Sequence[dict[str, np.ndarray]], over: str) -> Draws:
    """Each model's ``[probability, label]`` per test image as draws ``(S, N, 2)`` for
    :func:`~medxai_lib.evaluate.metrics.study_metrics.auroc_statistic`: the mean AUROC over models, with
    models and images both resampled."""
    probs = seed_columns(units, "prob").T                                   # (S, N)
    labels = np.broadcast_to(np.asarray(units[0]["label"], dtype=float), probs.shape)
    return Draws(np.stack([probs, labels], -1), over=over)
