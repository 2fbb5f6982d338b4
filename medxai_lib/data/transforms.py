"""Shared image transforms: pad to square, resize, normalise (MURA baseline preprocessing)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# grey-level equivalents (mean of the ImageNet channel statistics)
GREY_MEAN = (0.449,)
GREY_STD = (0.226,)


def pad_to_square(image: torch.Tensor, mode: str = "reflect") -> torch.Tensor:
    """Pad a ``(C, H, W)`` image symmetrically to ``(C, S, S)``, ``S = max(H, W)``."""
    if image.ndim != 3:
        raise ValueError(f"image: expected (C, H, W), got shape {tuple(image.shape)}")
    _, h, w = image.shape
    side = max(h, w)
    dh, dw = side - h, side - w
    pad = (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)
    if mode == "reflect" and (dh >= h or dw >= w):
        mode = "replicate"  # reflect padding cannot exceed the image extent
    return F.pad(image[None], pad, mode=mode)[0] if any(pad) else image


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of ``(C, H, W)`` to ``(C, size, size)``."""
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)[0]


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """Normalise a ``(C, H, W)`` image in [0, 1] with ImageNet (C=3) or grey (C=1) statistics."""
    channels = image.shape[0]
    if channels == 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif channels == 1:
        mean, std = GREY_MEAN, GREY_STD
    else:
        raise ValueError(f"image: expected 1 or 3 channels, got {channels}")
    mean_t = torch.tensor(mean, dtype=image.dtype).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=image.dtype).view(-1, 1, 1)
    return (image - mean_t) / std_t


def denormalize_image(image: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_image` for display; ``(C, H, W)`` -> values in [0, 1]."""
    channels = image.shape[0]
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else (GREY_MEAN, GREY_STD)
    mean_t = torch.tensor(mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    return (image * std_t + mean_t).clamp(0, 1)


def grey_to_tensor(array: np.ndarray, channels: int) -> torch.Tensor:
    """``(H, W)`` grey array in [0, 1] -> ``(channels, H, W)`` float tensor."""
    if channels not in (1, 3):
        raise ValueError(f"channels: expected 1 or 3, got {channels!r}")
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    return tensor.expand(channels, -1, -1).clone() if channels == 3 else tensor


def radiograph_transform(image: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """MURA baseline preprocessing of a grey ``(1, H, W)`` image in [0, 1]:
    reflect-pad to square, resize to ``size``, repeat to ``channels``, normalise."""
    image = resize(pad_to_square(image), size)
    if channels == 3:
        image = image.expand(3, -1, -1).clone()
    return normalize_image(image)
