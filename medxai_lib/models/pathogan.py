"""Patho-GAN networks (after Niu et al. 2019), small enough for a CPU.

* :class:`UNetGenerator`: anatomy map (the vessel map, and the optic-disc mask as a second channel when the
  generator is built with ``anatomy_channels=2``) + field of view + noise ``z`` (+ descriptor maps at the 1/2
  and 1/4 encoder scales) -> RGB fundus in [0, 1], black outside the field of view.
* :class:`VesselDiscriminator`: a patch discriminator that sees the image together with its anatomy map.
* :func:`descriptor_maps` / :func:`synthesize`: place a descriptor bank on the generator's inputs and draw.
* :class:`RandomFeatureNet`: a fixed random-weight conv net for the retinal-detail loss when no pretrained
  VGG is available (random features carry texture and colour statistics well enough for that).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medxai_lib.data.lesions import STYLE_LAYERS, Descriptor, DescriptorBank, layer_box, resize_patch
from medxai_lib.models.inference import fast_forward, in_chunks


def _down(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class UNetGenerator(nn.Module):
    """``(vessels (B, A, S, S), fov (B, 1, S, S), z (B, z_dim), maps [(B, C1, S/2, S/2), (B, C2, S/4, S/4)])
    -> (B, 3, S, S)``. ``S`` must be a multiple of 16. ``vessels`` is the anatomy map: the vessel map
    (``anatomy_channels=1``), or the vessel map and the optic-disc mask stacked (``anatomy_channels=2``,
    :func:`anatomy_map`); without the disc channel the generator has to guess the disc from the vessels."""

    def __init__(self, descriptor_channels: tuple[int, int] = (16, 32), width: int = 32, z_dim: int = 32,
                 anatomy_channels: int = 1) -> None:
        super().__init__()
        if anatomy_channels not in (1, 2):
            raise ValueError(f"anatomy_channels: expected 1 (vessels) or 2 (vessels and optic disc), got {anatomy_channels!r}")
        self.descriptor_channels, self.z_dim, self.anatomy_channels = tuple(descriptor_channels), z_dim, anatomy_channels
        c1, c2 = self.descriptor_channels
        w = width
        self.enc1 = _down(anatomy_channels + 1, w, norm=False)   # S/2
        self.enc2 = _down(w + c1, 2 * w)                     # S/4
        self.enc3 = _down(2 * w + c2, 4 * w)                 # S/8
        self.enc4 = _down(4 * w, 4 * w)                      # S/16
        self.z_channels = 8
        self.from_z = nn.Linear(z_dim, self.z_channels * 16)  # a 4x4 seed, resized to the bottleneck
        self.dec4 = _up(4 * w + self.z_channels, 4 * w)      # S/8
        self.dec3 = _up(8 * w, 2 * w)                        # S/4
        self.dec2 = _up(4 * w + c2, w)                       # S/2
        self.dec1 = _up(2 * w + c1, w)                       # S
        self.out = nn.Conv2d(w + anatomy_channels + 1, 3, 3, 1, 1)
        # descriptor features are tiny next to the other inputs; :func:`fit_pathogan` sets these scales
        # (1 / typical magnitude per channel) from the bank; they are saved with the weights
        self.register_buffer("map_scale1", torch.ones(c1))
        self.register_buffer("map_scale2", torch.ones(c2))

    def check_inputs(self, vessels: torch.Tensor, fov: torch.Tensor, z: torch.Tensor,
                     maps: list[torch.Tensor] | None) -> None:
        if vessels.ndim != 4 or vessels.shape[1] != self.anatomy_channels:
            what = "the vessel map" if self.anatomy_channels == 1 else "the vessel map and the optic-disc mask (anatomy_map)"
            raise ValueError(f"vessels: expected (B, {self.anatomy_channels}, S, S), {what}, got {tuple(vessels.shape)}")
        size = vessels.shape[-1]
        if vessels.shape[-2] != size or size % 16 or size < 32:
            raise ValueError(f"vessels: expected square maps with S a multiple of 16 (>= 32), got {tuple(vessels.shape)}")
        if fov.shape != (len(vessels), 1, *vessels.shape[-2:]):
            raise ValueError(f"fov: expected {(len(vessels), 1, *vessels.shape[-2:])}, got {tuple(fov.shape)}")
        if z.shape != (len(vessels), self.z_dim):
            raise ValueError(f"z: expected ({len(vessels)}, {self.z_dim}), got {tuple(z.shape)}")
        if maps is not None:
            expected = [(len(vessels), c, size // s, size // s) for c, s in zip(self.descriptor_channels, (2, 4))]
            got = [tuple(m.shape) for m in maps]
            if got != expected:
                raise ValueError(f"maps: expected shapes {expected}, got {got}")

    def forward(self, vessels: torch.Tensor, fov: torch.Tensor, z: torch.Tensor,
                maps: list[torch.Tensor] | None = None) -> torch.Tensor:
        self.check_inputs(vessels, fov, z, maps)
        size, batch = vessels.shape[-1], len(vessels)
        if maps is None:
            maps = [vessels.new_zeros(batch, c, size // s, size // s) for c, s in zip(self.descriptor_channels, (2, 4))]
        x0 = torch.cat([vessels, fov], 1)
        e1 = torch.cat([self.enc1(x0), maps[0] * self.map_scale1.view(1, -1, 1, 1)], 1)
        e2 = torch.cat([self.enc2(e1), maps[1] * self.map_scale2.view(1, -1, 1, 1)], 1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        seed = self.from_z(z).view(batch, self.z_channels, 4, 4)
        d4 = self.dec4(torch.cat([e4, F.interpolate(seed, size=e4.shape[-2:], mode="bilinear", align_corners=False)], 1))
        d3 = self.dec3(torch.cat([d4, e3], 1))
        d2 = self.dec2(torch.cat([d3, e2], 1))
        d1 = self.dec1(torch.cat([d2, e1], 1))
        return torch.sigmoid(self.out(torch.cat([d1, x0], 1))) * fov


class VesselDiscriminator(nn.Module):
    """Patch discriminator on ``cat(image (B, 3, S, S), anatomy (B, A, S, S))`` -> logits ``(B, 1, S/8, S/8)``."""

    def __init__(self, width: int = 32, anatomy_channels: int = 1) -> None:
        super().__init__()
        self.anatomy_channels = anatomy_channels
        self.net = nn.Sequential(_down(3 + anatomy_channels, width, norm=False), _down(width, 2 * width),
                                 _down(2 * width, 4 * width), nn.Conv2d(4 * width, 1, 3, 1, 1))

    def forward(self, images: torch.Tensor, vessels: torch.Tensor) -> torch.Tensor:
        expected = (len(images), self.anatomy_channels, *images.shape[-2:])
        if images.ndim != 4 or images.shape[1] != 3 or vessels.shape != expected:
            raise ValueError(f"images, vessels: expected (B, 3, S, S) and {expected}, got {tuple(images.shape)} "
                             f"and {tuple(vessels.shape)}")
        return self.net(torch.cat([images, vessels], 1))


class RandomFeatureNet(nn.Module):
    """Fixed random conv features (seeded, never trained): ``(B, 3, S, S) -> [(B, w, S, S), (B, 2w, S/2, S/2)]``.
    ``width`` 16 by default: random projections keep colour and texture statistics at any width, and the
    detail loss runs these features forward and backward at every generator step (at 32 they cost as much
    as the generator itself)."""

    def __init__(self, seed: int = 0, width: int = 16) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width: expected a positive int, got {width!r}")
        generator = torch.Generator().manual_seed(seed)
        self.conv1, self.conv2 = nn.Conv2d(3, width, 3, 1, 1), nn.Conv2d(width, 2 * width, 3, 2, 1)
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, 1, 1)
        for conv in (self.conv1, self.conv2, self.conv3):
            fan_in = conv.weight[0].numel()
            conv.weight.data = torch.randn(conv.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5
            conv.bias.data.zero_()
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        f1 = F.relu(self.conv1(images))
        return [f1, F.relu(self.conv3(F.relu(self.conv2(f1))))]


def anatomy_map(vessels: torch.Tensor, disc: torch.Tensor | None = None) -> torch.Tensor:
    """The generator's anatomy input: vessel maps ``(B, 1, S, S)`` alone, or stacked with optic-disc masks
    ``(B, 1, S, S)`` into ``(B, 2, S, S)`` (a single ``(1, S, S)`` map gives a batch of one)."""
    if vessels.ndim == 3:
        vessels = vessels[None]
    if disc is None:
        return vessels
    if disc.ndim == 3:
        disc = disc[None]
    if disc.shape != vessels.shape or vessels.shape[1] != 1:
        raise ValueError(f"vessels, disc: expected two (B, 1, S, S) maps of one shape, got {tuple(vessels.shape)} "
                         f"and {tuple(disc.shape)}")
    return torch.cat([vessels, disc.to(vessels)], 1)


def descriptor_maps(banks: Sequence[DescriptorBank], size: int, channels: Sequence[int],
                    layers: Sequence[str] = STYLE_LAYERS, scales: Sequence[int] = (2, 4),
                    device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """The generator's lesion inputs: per layer a ``(B, C_l, S/scale, S/scale)`` canvas with each placed
    descriptor's weighted feature patch pasted (resized) onto its box. One bank per image."""
    canvases: list[torch.Tensor] = []
    for name, scale, depth in zip(layers, scales, channels):
        cells = size // scale
        canvas = torch.zeros(len(banks), depth, cells, cells)
        for b, bank in enumerate(banks):
            for d in bank:
                check_placed(d, size)
                x0, y0, x1, y1 = layer_box(d.box, size, (cells, cells))
                patch = resize_patch(torch.from_numpy(d.features[name]), y1 - y0, x1 - x0)
                if len(patch) != depth:
                    raise ValueError(f"bank: {name} features have {len(patch)} channels, the generator expects {depth}")
                canvas[b, :, y0:y1, x0:x1] += patch
        canvases.append(canvas.to(device))
    return canvases


def check_placed(d: Descriptor, size: int) -> None:
    if d.image_size != size:
        raise ValueError(f"bank: descriptors come from {d.image_size}-px images, the vessel maps are {size} px")
    x0, y0, x1, y1 = d.box
    if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
        raise ValueError(f"bank: box {d.box} lies outside the {size}x{size} image")


@torch.no_grad()
def synthesize(generator: UNetGenerator, vessels: torch.Tensor, fov: torch.Tensor,
               banks: Sequence[DescriptorBank] | DescriptorBank, seed: int = 0, chunk: int = 12) -> torch.Tensor:
    """Fundi ``(B, 3, S, S)`` in [0, 1] from anatomy maps ``(B, A, S, S)`` (:func:`anatomy_map`; the
    generator's ``anatomy_channels``) and FOVs ``(B, 1, S, S)`` with the lesions of one
    bank per image (a single bank is used for all). ``z`` is drawn from ``seed`` (same z for each image
    index, so syntheses with different banks differ only by their lesions). The generator runs in eval mode
    on ``chunk`` images at a time (each image is drawn independently; on a CPU a 36-image batch is about 2x
    slower than three of 12; :func:`~medxai_lib.models.inference.in_chunks`)."""
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: expected a positive int, got {chunk!r}")
    if vessels.ndim == 3:                    # one eye: (A, S, S) and (1, S, S)
        vessels = vessels[None]
    if fov.ndim == 3:
        fov = fov[None]
    if isinstance(banks, DescriptorBank):
        banks = [banks] * len(vessels)
    if len(banks) != len(vessels):
        raise ValueError(f"banks: expected one bank per vessel map ({len(vessels)}), got {len(banks)}")
    device = next(generator.parameters()).device
    generator.check_inputs(vessels, fov, torch.zeros(len(vessels), generator.z_dim), None)
    z = torch.from_numpy(np.random.default_rng(seed).standard_normal((len(vessels), generator.z_dim)).astype(np.float32))
    maps = descriptor_maps(banks, vessels.shape[-1], generator.descriptor_channels, device=device)
    was_training = generator.training
    generator.eval()
    try:       # on a CPU in channels-last order (2.4x faster here, same values up to ~2e-7), layout restored after
        with fast_forward(generator) as run:
            out = in_chunks(lambda v, f, code, *m: run(v, f, code, list(m)), vessels.to(device), fov.to(device),
                            z.to(device), *maps, size=chunk)
    finally:
        generator.train(was_training)
    return out
