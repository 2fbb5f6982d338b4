"""Shortcut learning, measured: does a confounder drive the prediction, and does CAM show it?"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from medxai_lib.evaluate.classification import binary_metrics
from medxai_lib.evaluate.localisation import pointing_game
from medxai_lib.explain.cam import cam, cam_contribution
from medxai_lib.models.inference import predict_logits, probabilities


def shortcut_report(model: nn.Module, test: Dataset, test_without_confounder: Dataset, tolerance: int = 0,
                    device: str | torch.device = "auto") -> dict[str, float]:
    """Compare a one-output model on a test set whose confounder is *uncorrelated* with the label,
    and on the same images with the confounder removed (a counterfactual twin).

    Items need ``image``, ``label``, ``mask`` and ``confounder_mask``. Returns:
    ``auroc`` / ``auroc_without_confounder``; ``confounder_logit`` = mean CAM contribution (logit
    units) of the confounder region, dilated by one CAM cell, on images that carry it;
    ``logit_drop_when_removed`` = mean logit change when the confounder is erased (the causal test);
    ``lesion_pointing`` = pointing game of the CAM on abnormal images.
    """
    images, masks, confounders = test.tensors("image", "mask", "confounder_mask")
    labels = test.labels
    logits = predict_logits(model, test, device=device)
    logits_clean = predict_logits(model, test_without_confounder, device=device)
    device = next(model.parameters()).device
    maps = torch.cat([cam(model, chunk.to(device)).cpu() for chunk in images.split(64)])
    has = confounders.flatten(1).amax(1) > 0
    cell = max(1, images.shape[-1] // maps.shape[-1])
    region = nn.functional.max_pool2d(confounders, 2 * cell + 1, stride=1, padding=cell)
    abnormal = torch.as_tensor(labels == 1)
    return {
        "auroc": binary_metrics(probabilities(logits), labels)["auroc"],
        "auroc_without_confounder": binary_metrics(probabilities(logits_clean), labels)["auroc"],
        "confounder_logit": cam_contribution(maps[has], region[has])[:, 0].mean().item(),
        "logit_drop_when_removed": (logits - logits_clean)[has, 0].mean().item(),
        "lesion_pointing": pointing_game(maps[abnormal], masks[abnormal], tolerance).float().mean().item(),
    }
