"""The skin phantom renders the outline and the hairs only near them: the same images and concept masks, bit for
bit, as the renderer that evaluated both on every pixel (kept here as the reference)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from medxai_lib.data import SkinLesionPhantom
from medxai_lib.data.phantoms.common import bezier, polyline_distance_near, segment_distance, smooth_noise, soft, unit_grid
from medxai_lib.data.phantoms.skin import _PALETTE, LesionSpec, _outline, render_lesion


def polyline_distance(x: np.ndarray, y: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The every-pixel distance to a polyline that the renderer used before (the reference)."""
    out = np.full(x.shape, np.inf, dtype=np.float32)
    for p0, p1 in zip(points[:-1], points[1:]):
        out = np.minimum(out, segment_distance(x, y, p0, p1))
    return out


def reference_render(spec: LesionSpec, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """The renderer as it was before the outline and the hairs were computed near them only (every pixel)."""
    rng = np.random.default_rng(spec.render_seed)
    rng_colour, rng_dots, rng_hair, rng_noise, rng_outline = (np.random.default_rng([spec.render_seed, k])
                                                              for k in range(1, 6))
    outline = _outline(spec, rng_outline)
    x, y = unit_grid(size)
    px = 1.0 / size
    skin = np.array([0.86, 0.66, 0.56], np.float32) * rng.uniform(0.92, 1.05, 3).astype(np.float32)
    texture = 1 + 0.04 * smooth_noise(rng, size, max(4, size // 8))
    light = 1 + 0.08 * ((x - 0.5) * np.cos(spec.rotation) + (y - 0.5) * np.sin(spec.rotation))
    image = skin[:, None, None] * (texture * light)[None]
    # lesion outline in polar coordinates around the centre
    dx, dy = x - spec.centre[0], y - spec.centre[1]
    rho, theta = np.hypot(dx, dy), np.arctan2(dy, dx) - spec.rotation
    boundary = outline(theta)
    signed = rho - boundary                                          # < 0 inside
    lesion_alpha = soft(signed, 1.5 * px)
    lesion = signed < 0
    border = np.abs(signed) < max(2.5 * px, 0.02)
    depth = np.clip(1 - rho / np.maximum(boundary, 1e-6), 0, 1)      # 0 at the edge, 1 at the centre
    base = np.array(_PALETTE[spec.base_colour], np.float32)
    lesion_rgb = base[:, None, None] * (1.05 - 0.25 * depth)[None] * (1 + 0.05 * smooth_noise(rng, size, 8))[None]
    irregular = np.zeros((size, size), bool)
    for colour in spec.colours:   # each extra colour fills a random blob inside the lesion
        field = smooth_noise(rng_colour, size, 5)
        region = lesion & (field > np.quantile(field[lesion], 0.72)) if lesion.any() else lesion
        lesion_rgb = np.where(region[None], np.array(_PALETTE[colour], np.float32)[:, None, None], lesion_rgb)
        irregular |= region
    image = image * (1 - lesion_alpha[None]) + lesion_rgb * lesion_alpha[None]
    dots = np.zeros((size, size), bool)
    for _ in range(spec.n_dots):
        angle = rng_dots.uniform(0, 2 * np.pi)
        radial = rng_dots.uniform(0.55, 0.9) * float(outline(np.array([angle]))[0])
        cx, cy = spec.centre[0] + radial * np.cos(angle + spec.rotation), spec.centre[1] + radial * np.sin(angle + spec.rotation)
        dot = np.hypot(x - cx, y - cy) < rng_dots.uniform(1.0, 2.2) * px
        dots |= dot & lesion
    image = np.where(dots[None], np.array(_PALETTE["black"], np.float32)[:, None, None] * 1.3, image)
    hair, strands = np.zeros((size, size), bool), np.zeros((size, size), bool)
    for _ in range(spec.n_hairs):
        p0, p2 = rng_hair.uniform(-0.1, 1.1, 2), rng_hair.uniform(-0.1, 1.1, 2)
        p1 = (p0 + p2) / 2 + rng_hair.normal(0, 0.15, 2)
        dist = polyline_distance(x, y, bezier(p0.astype(np.float32), p1.astype(np.float32), p2.astype(np.float32), 8))
        width = rng_hair.uniform(0.5, 0.9) * px
        strands |= dist < width
        hair |= dist < width + px   # the concept mask allows one pixel of annotation tolerance
    image = np.where(strands[None], np.array([0.18, 0.13, 0.10], np.float32)[:, None, None], image)
    if spec.ruler:
        ticks = (np.abs(y - 0.04) < 1.2 * px) | ((np.mod(x, 0.08) < 1.5 * px) & (y < 0.08))
        image = np.where(ticks[None], 0.1, image)
    if spec.vignette > 0:
        image = image * (1 - spec.vignette * np.clip(np.hypot(x - 0.5, y - 0.5) / 0.7, 0, 1) ** 2)[None]
    image = image + rng_noise.normal(0, 0.012, image.shape).astype(np.float32)
    concepts = np.stack([lesion, border, irregular, dots, hair, ~lesion])
    return np.clip(image, 0, 1).astype(np.float32), concepts



@pytest.mark.parametrize("size, seed, mode", [(64, 0, "binary"), (96, 1, "binary"), (96, 2, "ham7"), (128, 3, "binary")])
def test_renders_equal_the_every_pixel_reference(size, seed, mode):
    specs = SkinLesionPhantom(60, size=size, seed=seed, mode=mode, hair_density=4.0).specs
    # extremes: lesions touching the border, very irregular outlines, many hairs
    specs += [replace(specs[0], centre=(0.05, 0.95), radius=0.27, irregularity=0.12, asymmetry=0.22, n_hairs=9),
              replace(specs[1], irregularity=0.0, asymmetry=0.0, n_hairs=0, n_dots=12)]
    for spec in specs:
        image, concepts = render_lesion(spec, size)
        ref_image, ref_concepts = reference_render(spec, size)
        assert image.dtype == ref_image.dtype and np.array_equal(image, ref_image), spec.index
        assert np.array_equal(concepts, ref_concepts), spec.index


def test_near_distance_is_exact_below_its_reach_and_at_least_the_reach_elsewhere():
    rng = np.random.default_rng(0)
    x, y = unit_grid(80)
    for _ in range(20):
        points = bezier(*(rng.uniform(-0.1, 1.1, 2).astype(np.float32) for _ in range(3)), 8)
        full, near = polyline_distance(x, y, points), polyline_distance_near(x, y, points, 0.03)
        close = full < 0.03
        assert close.any() and np.array_equal(near[close], full[close])
        assert (near[~close] >= 0.03).all()


def test_the_outline_reach_bounds_the_outline():
    for spec in SkinLesionPhantom(40, size=64, seed=5).specs:
        outline = _outline(spec, np.random.default_rng([spec.render_seed, 5]))
        theta = np.linspace(-4 * np.pi, 4 * np.pi, 20001)
        assert outline(theta).max() <= outline.reach
