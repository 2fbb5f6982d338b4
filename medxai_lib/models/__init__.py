"""Models: CAM-ready DenseNets (notebooks 00, 03, 04), the skin CNNs with and without an attention gate (01, 02),
MDNet (05), the DR grade regressor, lesion classifier and Patho-GAN generator (06), and batched inference.

The DenseNets load torchvision (about 1.2 s, most of it ``torch._dynamo`` pulled in by ``torchvision.ops``), so
they are imported on first use: notebooks that train no DenseNet (01, 02, 05, 06) never pay for it."""
from __future__ import annotations

from typing import Any

from torch import nn

ARCHITECTURES = ("densenet_small", "densenet169")
_DENSENET = ("CamReadyDenseNet", "PretrainedWeightsUnavailable", "densenet169", "densenet_block_layers", "densenet_small")


def __getattr__(name: str) -> Any:
    """The DenseNet names, imported from :mod:`medxai_lib.models.densenet` when first asked for."""
    if name in _DENSENET:
        from medxai_lib.models import densenet
        return getattr(densenet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_model(arch: str, num_classes: int = 1, in_channels: int = 1, pretrained: bool = False) -> nn.Module:
    """A classifier by name (one of :data:`ARCHITECTURES`); ``pretrained`` only for ImageNet models."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch: expected one of {sorted(ARCHITECTURES)}, got {arch!r}")
    from medxai_lib.models import densenet
    if arch == "densenet169":
        return densenet.densenet169(num_classes, in_channels, pretrained=pretrained)
    if pretrained:
        raise ValueError(f"pretrained: no pretrained weights exist for {arch!r}; use pretrained=False")
    return densenet.densenet_small(num_classes, in_channels)


__all__ = ["ARCHITECTURES", "CamReadyDenseNet", "PretrainedWeightsUnavailable", "build_model", "densenet169",
           "densenet_block_layers", "densenet_small"]
