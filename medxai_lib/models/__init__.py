"""Models: CAM-ready DenseNets (notebooks 00, 03, 04), the skin CNNs with and without an attention gate (01, 02),
MDNet (05), the DR grade regressor, lesion classifier and Patho-GAN generator (06), and batched inference."""
from torch import nn

from medxai_lib.models.densenet import (CamReadyDenseNet, PretrainedWeightsUnavailable, densenet169,
                                        densenet_block_layers, densenet_small)

ARCHITECTURES = {"densenet_small": densenet_small, "densenet169": densenet169}


def build_model(arch: str, num_classes: int = 1, in_channels: int = 1, pretrained: bool = False) -> nn.Module:
    """A classifier by name (see :data:`ARCHITECTURES`); ``pretrained`` only for ImageNet models."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch: expected one of {sorted(ARCHITECTURES)}, got {arch!r}")
    if arch == "densenet169":
        return densenet169(num_classes, in_channels, pretrained=pretrained)
    if pretrained:
        raise ValueError(f"pretrained: no pretrained weights exist for {arch!r}; use pretrained=False")
    return ARCHITECTURES[arch](num_classes, in_channels)


__all__ = ["ARCHITECTURES", "CamReadyDenseNet", "PretrainedWeightsUnavailable", "build_model", "densenet169",
           "densenet_block_layers", "densenet_small"]
