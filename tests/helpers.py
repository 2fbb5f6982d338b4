"""Shared fixtures' builders: a small DenseNet with non-trivial statistics and phantom images."""
import torch
from torch import nn

from medxai_lib.data import RadiographPhantom
from medxai_lib.models import densenet_small


def textured_densenet(num_classes: int = 3, seed: int = 0) -> nn.Module:
    """Random-init densenet_small whose BatchNorms and classifier give maps of both signs."""
    torch.manual_seed(seed)
    model = densenet_small(num_classes=num_classes, in_channels=1).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.3, 0.3)
        model.features.norm5.bias.uniform_(-1.0, 0.5)
        model.classifier.weight.normal_()
    return model


def phantom_images(n: int = 4, size: int = 96, seed: int = 0) -> torch.Tensor:
    (x,) = RadiographPhantom(max(2, n), size=size, seed=seed).tensors("image")
    return x[:n]


def record_process(path: str) -> None:
    """Write this process's pid and torch thread count to ``path`` (a job for train.workers tests)."""
    import os
    with open(path, "w") as handle:
        handle.write(f"{os.getpid()} {torch.get_num_threads()}")
