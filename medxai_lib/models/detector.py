"""An o_O-style diabetic-retinopathy detector (the Kaggle DR solution used by Niu et al. 2019), scaled down.

All convolutions are 4x4 with leaky ReLU (slope 0.01); the first conv of the first stage has stride 2;
3x3/2 max-pools between stages keep their switches (``return_indices``) so that the activation
network (:mod:`medxai_lib.explain.activation_network`) can unpool exactly; an RMS pool, two dense
maxout layers and one output that regresses the DR grade (0-4, thresholds 0.5/1.5/2.5/3.5).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medxai_lib.data.transforms import IMAGENET_MEAN, IMAGENET_STD

GRADE_THRESHOLDS = (0.5, 1.5, 2.5, 3.5)


class SameConv4(nn.Conv2d):
    """4x4 convolution. Stride 1: zero padding (1, 2, 1, 2) keeps the size (an even kernel cannot pad
    symmetrically). Stride 2: padding 1 halves the size exactly."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        if stride not in (1, 2):
            raise ValueError(f"stride: expected 1 or 2, got {stride!r}")
        super().__init__(in_channels, out_channels, 4, stride=stride, padding=1 if stride == 2 else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (1, 2, 1, 2)) if self.stride == (1, 1) else x)


class Maxout(nn.Module):
    """Dense layer with ``pieces`` linear pieces per unit, keeping the maximum. ``(B, I) -> (B, O)``."""

    def __init__(self, in_features: int, out_features: int, pieces: int = 2) -> None:
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(len(x), self.out_features, self.pieces).amax(-1)


@dataclass
class DetectorTrace:
    """What one forward pass leaves for the activation network: activations by layer name, pooling
    switches and the input size of each pool."""

    activations: dict[str, torch.Tensor]
    switches: dict[str, torch.Tensor]
    pool_inputs: dict[str, torch.Size]


class DRDetector(nn.Module):
    """Grade regressor ``(B, 3, S, S) -> (B, 1)``. Stages of two convs (widths ``w, 2w, 4w, 8w``).

    Layer names for the activation network: ``conv1a conv1b pool1 conv2a conv2b pool2 conv3a conv3b
    pool3 conv4a conv4b``.

    ``init="kaiming"`` (default) draws every conv from He et al.'s normal for leaky ReLUs (fan-in, slope
    0.01) with zero biases, as the o_O solution did (it used orthogonal/He-scaled weights). PyTorch's default
    (``init="torch"``, uniform with a = sqrt(5)) shrinks the signal about threefold per conv, so after eight
    convs the head sees almost nothing and MSE training can settle on a constant grade (seen for one seed in
    six at 96 px).
    """

    def __init__(self, width: int = 16, dense: int = 128, in_channels: int = 3, dropout: float = 0.3,
                 init: str = "kaiming") -> None:
        super().__init__()
        if init not in ("kaiming", "torch"):
            raise ValueError(f"init: expected 'kaiming' or 'torch', got {init!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width: expected a positive int, got {width!r}")
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.convs = nn.ModuleDict()
        previous = in_channels
        for stage, channels in enumerate(widths, start=1):
            self.convs[f"conv{stage}a"] = SameConv4(previous, channels, stride=2 if stage == 1 else 1)
            self.convs[f"conv{stage}b"] = SameConv4(channels, channels)
            previous = channels
        self.pool = nn.MaxPool2d(3, 2, return_indices=True)
        self.head = nn.Sequential(nn.Dropout(dropout), Maxout(previous, dense), nn.Dropout(dropout),
                                  Maxout(dense, dense), nn.Linear(dense, 1))
        self.negative_slope = 0.01
        self.init = init
        self.reset_weights()

    def reset_weights(self) -> None:
        """Draw fresh weights from the global torch RNG with this detector's ``init`` rule."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        if self.init == "kaiming":
            for conv in self.convs.values():
                nn.init.kaiming_normal_(conv.weight, a=self.negative_slope, nonlinearity="leaky_relu")
                nn.init.zeros_(conv.bias)

    @property
    def layer_names(self) -> list[str]:
        names = []
        for stage in range(1, 5):
            names += [f"conv{stage}a", f"conv{stage}b"] + ([f"pool{stage}"] if stage < 4 else [])
        return names

    def trace(self, images: torch.Tensor, until: str | None = None) -> tuple[torch.Tensor | None, DetectorTrace]:
        """Forward pass keeping every activation (after the leaky ReLU) and pooling switch. With ``until``
        (a layer name) it stops there and returns ``(None, trace)``: cheaper when only early features matter."""
        if until is not None and until not in self.layer_names:
            raise ValueError(f"until: expected one of {self.layer_names}, got {until!r}")
        if images.ndim != 4 or images.shape[1] != self.convs["conv1a"].in_channels:
            raise ValueError(f"images: expected (B, {self.convs['conv1a'].in_channels}, S, S), got {tuple(images.shape)}")
        if min(images.shape[-2:]) < 32:
            raise ValueError(f"images: expected at least 32x32 pixels (three 3/2 pools), got {tuple(images.shape[-2:])}")
        trace = DetectorTrace({}, {}, {})
        x = images
        for stage in range(1, 5):
            for part in "ab":
                name = f"conv{stage}{part}"
                x = F.leaky_relu(self.convs[name](x), self.negative_slope)
                trace.activations[name] = x
                if name == until:
                    return None, trace
            if stage < 4:
                trace.pool_inputs[f"pool{stage}"] = x.shape
                x, trace.switches[f"pool{stage}"] = self.pool(x)
                trace.activations[f"pool{stage}"] = x
                if f"pool{stage}" == until:
                    return None, trace
        rms = x.pow(2).mean((2, 3)).add(1e-8).sqrt()
        return self.head(rms), trace

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trace(images)[0]


def grades_from_scores(scores: torch.Tensor | np.ndarray) -> np.ndarray:
    """Regression outputs ``(N,)`` or ``(N, 1)`` -> integer grades 0..4 by the o_O thresholds."""
    values = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=float).reshape(-1)
    return np.digitize(values, GRADE_THRESHOLDS).astype(np.int64)


def detector_input(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, S, S)`` images in [0, 1] -> the detector's (ImageNet) normalisation."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return (images - mean) / images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
