"""Baseline maps every explanation must beat: a random map, a centre prior, an edge detector and the image itself.

They know nothing about the model. A method that localises no better than the centre of the image, the
image's own edges (Adebayo et al. 2018: guided backprop "resembles an edge detector") or its brightness
(metal in a radiograph, pigment in a skin lesion) has not shown that it explains the model. All return
``(B, H, W)`` float maps, higher = more important.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

BASELINES = ("random", "centre prior", "Sobel edges", "the image")
DARK_IMAGE = "the image (dark = high)"


def _check_shape(batch: int, size: tuple[int, int]) -> None:
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected a positive int, got {batch!r}")
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size: expected (H, W) with H, W >= 1, got {size!r}")


def random_maps(batch: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Uniform random maps, ``(B, H, W)``: the chance level of every metric."""
    _check_shape(batch, size)
    return torch.rand((batch, *size), generator=torch.Generator().manual_seed(seed))


def centre_prior(batch: int, size: tuple[int, int], sigma: float = 0.25) -> torch.Tensor:
    """An isotropic Gaussian at the image centre, std ``sigma`` x side, ``(B, H, W)`` (the same map for
    every image): wins wherever evidence sits near the middle of the field of view."""
    _check_shape(batch, size)
    if not 0 < sigma:
        raise ValueError(f"sigma: expected a positive fraction of the image side, got {sigma!r}")
    ys = (torch.arange(size[0], dtype=torch.float32) + 0.5) / size[0] - 0.5
    xs = (torch.arange(size[1], dtype=torch.float32) + 0.5) / size[1] - 0.5
    prior = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma ** 2))
    return prior.expand(batch, *size).clone()


def sobel_maps(images: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Gradient magnitude of the image (Sobel filters, summed over channels), optionally smoothed by a
    Gaussian of std ``smooth`` pixels (0 = none). ``images (B, C, H, W)`` -> ``(B, H, W)`` >= 0."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images: expected a non-empty (B, C, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if smooth < 0:
        raise ValueError(f"smooth: expected a std in pixels >= 0, got {smooth!r}")
    x = images.detach().float()
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
    kernels = torch.stack([kx, kx.T])[:, None].repeat(x.shape[1], 1, 1, 1)          # (2C, 1, 3, 3)
    grads = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels, groups=x.shape[1])
    magnitude = grads.view(x.shape[0], x.shape[1], 2, *x.shape[-2:]).pow(2).sum(2).sqrt().sum(1)
    if smooth > 0:
        radius = max(1, int(round(3 * smooth)))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
        g = torch.exp(-offsets ** 2 / (2 * smooth ** 2))
        g = g / g.sum()
        m = magnitude[:, None]
        m = F.conv2d(F.pad(m, (radius, radius, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
        m = F.conv2d(F.pad(m, (0, 0, radius, radius), mode="replicate"), g.view(1, 1, -1, 1))
        magnitude = m[:, 0]
    return magnitude


def intensity_maps(images: torch.Tensor, dark: bool = False) -> torch.Tensor:
    """The image itself as a map: its channel mean, ``(B, C, H, W)`` -> ``(B, H, W)``; negated with ``dark``
    (pigmented lesions are darker than skin; metal and bone are brighter than soft tissue). Metrics that
    count positive mass (energy in mask) see the pixels brighter (darker) than the normalisation mean."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images: expected a non-empty (B, C, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if not isinstance(dark, bool):
        raise TypeError(f"dark: expected a bool, got {dark!r}")
    mean = images.detach().float().cpu().mean(1)
    return -mean if dark else mean


def baseline_maps(images: torch.Tensor, seed: int = 0, dark: bool = False) -> dict[str, torch.Tensor]:
    """The four baselines for ``images (B, C, H, W)``: name -> ``(B, H, W)`` (keys: :data:`BASELINES`; with
    ``dark`` the image map is read dark = high and named :data:`DARK_IMAGE`)."""
    batch, size = images.shape[0], tuple(images.shape[-2:])
    return {"random": random_maps(batch, size, seed), "centre prior": centre_prior(batch, size),
            "Sobel edges": sobel_maps(images.cpu()),
            (DARK_IMAGE if dark else "the image"): intensity_maps(images, dark=dark)}
