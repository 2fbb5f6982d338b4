"""Inference helpers every layer may use: logits of a model over a dataset, probabilities from logits."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medxai_lib.runtime import resolve_device


def images_and_labels(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Collate only what training reads (per-item metadata such as lesion box lists vary in length)."""
    batch = {"image": torch.stack([item["image"] for item in items])}
    if "label" in items[0]:
        batch["label"] = torch.stack([torch.as_tensor(item["label"]) for item in items])
    return batch


@torch.no_grad()
def predict_logits(model: nn.Module, data: Dataset, batch_size: int = 64, device: str | torch.device = "auto"
                   ) -> torch.Tensor:
    """Logits ``(N, K)`` of ``model`` on every item of ``data`` (dicts with ``image``), in order."""
    device = resolve_device(device)
    was_training = model.training
    model.eval().to(device)
    out = [model(batch["image"].to(device)).cpu() for batch in DataLoader(data, batch_size=batch_size, collate_fn=images_and_labels)]
    model.train(was_training)
    return torch.cat(out)


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """Sigmoid of a one-output model ``(N, 1)`` -> ``(N,)``; softmax otherwise -> ``(N, K)``."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0]).numpy()
    return torch.softmax(logits, 1).numpy()
