"""An independent lesion-type classifier for notebook 06: a small 3x3-conv / batch-norm / global-average-pool
network (a different design from the o_O detector) that reads a crop of a fundus and says which lesion
kind sits at its centre, or ``"none"`` (:data:`medxai_lib.data.lesion_crops.CROP_KINDS`). It never enters
the generator's losses, so re-detection with it is not circular."""
from __future__ import annotations

import torch
from torch import nn

from medxai_lib.data.lesion_crops import CROP_KINDS


class LesionTypeNet(nn.Module):
    """``(B, 3, crop, crop)`` images in [0, 1] -> ``(B, len(CROP_KINDS))`` logits."""

    def __init__(self, crop: int = 16, width: int = 24) -> None:
        super().__init__()
        if not isinstance(crop, int) or crop < 8 or crop % 2:
            raise ValueError(f"crop: expected an even int >= 8, got {crop!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width: expected a positive int, got {width!r}")
        self.crop = crop
        block = lambda cin, cout: [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]  # noqa: E731
        self.features = nn.Sequential(*block(3, width), *block(width, width), nn.MaxPool2d(2),
                                      *block(width, 2 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.classifier = nn.Linear(2 * width, len(CROP_KINDS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (self.crop, self.crop):
            raise ValueError(f"x: expected (B, 3, {self.crop}, {self.crop}) crops, got {tuple(x.shape)}")
        return self.classifier(self.features(x))


@torch.no_grad()
def classify_crops(model: LesionTypeNet, crops: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Class probabilities ``(N, len(CROP_KINDS))`` for crops ``(N, 3, crop, crop)`` in [0, 1]."""
    if crops.ndim == 4 and len(crops) and (crops.min() < -1e-6 or crops.max() > 1 + 1e-6):
        raise ValueError("crops: expected values in [0, 1] (raw images, not detector-normalised)")
    model.eval()
    device = next(model.parameters()).device
    parts = [torch.softmax(model(crops[i:i + batch_size].to(device)), 1).cpu() for i in range(0, len(crops), batch_size)]
    return torch.cat(parts) if parts else crops.new_zeros(0, len(CROP_KINDS))
