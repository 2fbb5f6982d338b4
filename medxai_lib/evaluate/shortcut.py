"""Shortcut learning, measured per image: does a confounder drive the prediction, and does CAM show it?

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

from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from medxai_lib.evaluate.classification import binary_metrics
from medxai_lib.evaluate.localisation import pointing_game
from medxai_lib.explain.cam import cam, cam_contribution
from medxai_lib.models.inference import predict_logits, probabilities

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


def auroc_columns(units: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
    """``(N, S + 1)``: each model's probability then the label, for
    :func:`medxai_lib.evaluate.study_metrics.auroc_statistic` (mean AUROC over the S models)."""
    return np.column_stack([seed_columns(units, "prob"), np.asarray(units[0]["label"], dtype=float)])
