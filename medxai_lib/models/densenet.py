"""CAM-ready DenseNets.

torchvision's DenseNet applies its last ReLU functionally inside ``forward``, so no hook can see the
tensor that is average-pooled into the classifier. These builders re-arrange the same modules so
that ``model.features`` ends with an explicit ``ReLU`` (``features.relu5``) and the logits are
exactly ``classifier(flatten(avgpool(features(x))))`` -- the shape CAM needs.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models import densenet as tv_densenet

DENSENET169_WEIGHTS_FILE = "densenet169-b2777c0a.pth"


class PretrainedWeightsUnavailable(RuntimeError):
    """Raised when ``pretrained=True`` but the weight file is not on this machine."""


class CamReadyDenseNet(nn.Module):
    """DenseNet as ``features`` (ending in ReLU) -> ``avgpool`` -> ``flatten`` -> ``classifier``.

    ``forward``: ``(B, C, H, W)`` -> ``(B, num_classes)`` logits.
    """

    def __init__(self, tv_model: tv_densenet.DenseNet) -> None:
        super().__init__()
        self.features = tv_model.features
        self.features.add_module("relu5", nn.ReLU(inplace=False))
        for module in self.features.modules():  # in-place ReLUs would overwrite hooked tensors
            if isinstance(module, nn.ReLU):
                module.inplace = False
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = tv_model.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))

    @property
    def in_channels(self) -> int:
        return self.features.conv0.in_channels


def _set_in_channels(model: tv_densenet.DenseNet, in_channels: int) -> None:
    old = model.features.conv0
    if in_channels == old.in_channels:
        return
    if in_channels != 1:
        raise ValueError(f"in_channels: expected 1 or {old.in_channels}, got {in_channels!r}")
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
    with torch.no_grad():  # a grey image through summed RGB filters = the RGB model on grey repeated 3x
        new.weight.copy_(old.weight.sum(1, keepdim=True))
    model.features.conv0 = new


def _torch_hub_weights(file_name: str) -> Path:
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    path = hub / file_name
    if not path.is_file():
        raise PretrainedWeightsUnavailable(
            f"pretrained=True: ImageNet weights file {path} is missing and cannot be downloaded here "
            f"(no network). Copy {file_name} (torchvision DenseNet169_Weights.IMAGENET1K_V1) to "
            f"{hub}/ or set TORCH_HOME, or use pretrained=False.")
    return path


def _check_common(num_classes: int, in_channels: int) -> None:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels: expected 1 or 3, got {in_channels!r}")


def densenet169(num_classes: int = 1, in_channels: int = 3, pretrained: bool = False) -> CamReadyDenseNet:
    """DenseNet-169 (growth 32, blocks 6-12-32-32) as in the MURA baseline.

    ``pretrained=True`` loads torchvision's ImageNet weights from the torch hub cache and raises
    :class:`PretrainedWeightsUnavailable` when they are not there -- never silent random weights.
    """
    _check_common(num_classes, in_channels)
    model = tv_densenet.densenet169(weights=None)
    if pretrained:
        state = torch.load(_torch_hub_weights(DENSENET169_WEIGHTS_FILE), map_location="cpu", weights_only=True)
        # checkpoints from the torchvision zoo use old key names 'norm.1' for 'norm1'
        state = {k.replace("norm.", "norm").replace("conv.", "conv").replace("relu.", "relu")
                 if ".denselayer" in k else k: v for k, v in state.items()}
        model.load_state_dict(state)
    if num_classes != model.classifier.out_features:
        model.classifier = nn.Linear(model.classifier.in_features, num_classes)
    _set_in_channels(model, in_channels)
    return CamReadyDenseNet(model)


def densenet_small(num_classes: int = 1, in_channels: int = 1, growth_rate: int = 8,
                   block_config: tuple[int, int, int, int] = (2, 2, 2, 2), num_init_features: int = 16,
                   stem_pool: bool = False) -> CamReadyDenseNet:
    """A small DenseNet with DenseNet-169's 4-block GAP+FC shape that trains on a CPU in a minute.

    ``stem_pool=False`` drops the stem max-pool, so a 96-px input gives a 6x6 block-4 map and a
    128-px input 8x8 (DenseNet-169 at 320 px gives 10x10).
    """
    _check_common(num_classes, in_channels)
    if len(block_config) != 4:
        raise ValueError(f"block_config: expected 4 blocks like DenseNet-169, got {block_config!r}")
    model = tv_densenet.DenseNet(growth_rate=growth_rate, block_config=tuple(block_config),
                                 num_init_features=num_init_features, num_classes=num_classes)
    if not stem_pool:
        model.features.pool0 = nn.Identity()
    _set_in_channels(model, in_channels)
    return CamReadyDenseNet(model)


def densenet_block_layers(model: CamReadyDenseNet) -> dict[str, str]:
    """The four 'block outputs' used by the seed demo: blocks 1-3 after their transition layers,
    block 4 = ``features`` (post-ReLU, what the average pool sees)."""
    names = dict(model.named_modules())
    layers = {f"block{i}": f"features.transition{i}" for i in (1, 2, 3)}
    layers["block4"] = "features"
    missing = [n for n in layers.values() if n not in names]
    if missing:
        raise ValueError(f"model: not a DenseNet with 4 blocks (missing {missing})")
    return layers
