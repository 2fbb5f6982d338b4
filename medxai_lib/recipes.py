"""Recipes shared by notebooks: the same configuration gives the same cached model everywhere."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from medxai_lib.data import radiograph_splits, resolve_data_root
from medxai_lib.models import build_model
from medxai_lib.runtime import resolve_device, seed_everything
from medxai_lib.train import FitResult, TrainConfig, fit


@dataclass
class TrainedRadiographModel:
    model: nn.Module
    train: Dataset
    val: Dataset
    fit: FitResult
    root: Path | None
    data_key: dict[str, Any]


def radiograph_classifier(seed: int = 0, image_size: int = 96, n_train_studies: int = 300, n_val_studies: int = 120,
                          arch: str = "densenet_small", pretrained: bool = False, epochs: int = 12,
                          batch_size: int = 32, lr: float = 1e-3, data_root: str | Path | None = None,
                          max_images: int | None = None, device: str = "auto") -> TrainedRadiographModel:
    """An abnormality classifier (one logit) on the radiograph phantom, or on MURA when a data root is
    given, trained once and cached (notebooks 03 and 04 share it)."""
    root = resolve_data_root(data_root)
    channels = 3 if arch == "densenet169" else 1
    train, val = radiograph_splits(root, size=image_size, channels=channels, seed=seed, n_train_studies=n_train_studies,
                                   n_val_studies=n_val_studies, max_images=max_images)
    seed_everything(seed)
    net = build_model(arch, num_classes=1, in_channels=channels, pretrained=pretrained)
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    data_key = {"data": str(root or "phantom"), "size": image_size, "train": n_train_studies, "seed": seed,
                "max": max_images}
    result = fit(net, train, val, config, device=resolve_device(device), cache_key=data_key)
    return TrainedRadiographModel(result.model, train, val, result, root, data_key)
