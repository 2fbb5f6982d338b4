"""Small CNNs for the skin-lesion notebooks.

``SkinCNN``: four conv stages (conv-BN-ReLU, max-pool between stages) + GAP + linear: the shape of the
networks whose feature maps Van Molle et al. looked at, small enough to train on a CPU in seconds.
``AttentionGatedCNN``: the same trunk, but the pooling is a learned spatial attention (softmax over
positions) that is part of the forward pass -- an *in-model* explanation (notebook 01).
"""
from __future__ import annotations

import torch
from torch import nn


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=False))


class SkinCNN(nn.Module):
    """``features`` = conv1 .. conv4 (pool after 1-3), ``avgpool``, ``flatten``, ``classifier``.
    ``(B, 3, S, S)`` -> ``(B, num_classes)``; conv4's grid is S/8."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        if num_classes < 1 or width < 1:
            raise ValueError(f"num_classes, width: expected positive ints, got {num_classes!r}, {width!r}")
        widths = (width, 2 * width, 4 * width, 4 * width)
        self.features = nn.Sequential()
        cin = in_channels
        for i, cout in enumerate(widths, start=1):
            self.features.add_module(f"conv{i}", _stage(cin, cout))
            if i < len(widths):
                self.features.add_module(f"pool{i}", nn.MaxPool2d(2))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


class AttentionGatedCNN(nn.Module):
    """SkinCNN's trunk with attention pooling: ``a = softmax_ij(w . F_ij)``, pooled = ``sum_ij a_ij F_ij``.
    The attention of the last forward is kept in ``last_attention`` ``(B, 1, h, w)`` (sums to 1)."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        trunk = SkinCNN(num_classes, in_channels, width)
        self.features, self.classifier = trunk.features, trunk.classifier
        self.attention = nn.Conv2d(trunk.classifier.in_features, 1, 1)
        self.last_attention: torch.Tensor | None = None

    def attend(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(logits (B, K), attention (B, 1, h, w))``."""
        feats = self.features(x)
        scores = self.attention(feats)
        attention = torch.softmax(scores.flatten(2), -1).view_as(scores)
        pooled = (feats * attention).sum((2, 3))
        return self.classifier(pooled), attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, attention = self.attend(x)
        self.last_attention = attention.detach()
        return logits
