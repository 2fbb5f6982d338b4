"""Inference helpers every layer may use: logits of a model over a dataset, probabilities from logits."""
from __future__ import annotations

from typing import Any, Callable

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


INFERENCE_BATCH = 32   # on a 2-core CPU a conv net's forward costs 1.2-2x more per image at 64-200 images than at 32


@torch.no_grad()
def in_chunks(fn: Callable[..., Any], images: torch.Tensor, *args: Any, size: int = INFERENCE_BATCH, **kwargs: Any) -> Any:
    """``fn(images, *args, **kwargs)`` computed ``size`` images at a time and concatenated along the first
    axis (a tensor, or a tuple/list of tensors), without gradients. For per-image computations in eval mode
    (``model.diagnose``, ``block_contributions``, ...): the same values as one call, faster on a CPU for large
    batches. ``args`` tensors with ``len(images)`` rows are split with the images; other arguments are passed whole."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected a positive int, got {size!r}")
    if not isinstance(images, torch.Tensor) or images.ndim < 1 or len(images) == 0:
        raise ValueError(f"images: expected a non-empty tensor (N, ...), got {type(images).__name__}")
    n = len(images)
    split = lambda a, i: a[i:i + size] if isinstance(a, torch.Tensor) and a.ndim and len(a) == n else a  # noqa: E731
    parts = [fn(images[i:i + size], *(split(a, i) for a in args), **kwargs) for i in range(0, n, size)]
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return type(parts[0])(torch.cat(group) for group in zip(*parts))


@torch.no_grad()
def predict_logits(model: nn.Module, data: Dataset, batch_size: int = INFERENCE_BATCH, device: str | torch.device = "auto"
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
