"""Dermoscopy-like skin-lesion phantom whose malignancy follows the dermatologist's cues.

Malignant lesions (melanoma-like) have irregular, asymmetric outlines, several colours (dark and light
browns, black, a blue-grey veil, whitish regression areas) and peripheral dots/globules; benign ones
(naevus-like) are round, symmetric and evenly coloured. Hairs are drawn on both classes at the same
rate: a confounder that carries no signal. Every image comes with ground-truth concept masks
(:data:`CONCEPTS`) and the scalar cue values it was drawn from.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medxai_lib.data.phantoms.common import (PhantomDataset, bezier, check_count, check_seed, check_size, polyline_distance_near,
                                             smooth_noise, soft, unit_grid)
from medxai_lib.data.transforms import normalize_image

CONCEPTS = ("lesion", "border", "colour_irregular", "dots", "hair", "skin")
HAM_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")   # HAM10000 / DermaMNIST order
BINARY_CLASSES = ("benign", "malignant")

_PALETTE = {  # RGB in [0, 1]
    "brown": (0.47, 0.29, 0.19), "dark_brown": (0.27, 0.16, 0.11), "light_brown": (0.63, 0.45, 0.33),
    "black": (0.13, 0.10, 0.10), "veil": (0.46, 0.52, 0.62), "regression": (0.86, 0.80, 0.79),
    "pink": (0.80, 0.50, 0.50), "red": (0.62, 0.15, 0.20), "purple": (0.45, 0.20, 0.40),
}
# 7-class mode: base colour and cue profile per HAM10000 diagnosis (a teaching caricature)
_HAM_PROFILE = {
    "mel": ("brown", True), "nv": ("brown", False), "bkl": ("light_brown", False), "bcc": ("pink", True),
    "akiec": ("pink", False), "vasc": ("red", False), "df": ("light_brown", False),
}


@dataclass(frozen=True)
class LesionSpec:
    """Everything that defines one image (a deterministic function of the dataset seed)."""

    index: int
    lesion_id: str
    label: int
    diagnosis: str
    malignant: bool
    render_seed: int
    centre: tuple[float, float]
    radius: float
    asymmetry: float          # amplitude of low-frequency outline terms
    irregularity: float       # amplitude of high-frequency outline terms
    colours: tuple[str, ...]  # extra colours inside the lesion (variegation)
    base_colour: str
    n_dots: int
    n_hairs: int
    ruler: bool
    vignette: float
    rotation: float

    @property
    def cues(self) -> dict[str, float]:
        return {"irregularity": self.irregularity, "asymmetry": self.asymmetry,
                "n_colours": float(len(self.colours) + 1), "n_dots": float(self.n_dots),
                "n_hairs": float(self.n_hairs)}


def _outline(spec: LesionSpec, rng: np.random.Generator):  # noqa: ANN202
    """The lesion's outline r(theta): asymmetry (1st/2nd harmonics) + irregularity (5th-12th)."""
    phases = rng.uniform(0, 2 * np.pi, 12)
    weights = rng.standard_normal(8)

    def radius(theta: np.ndarray) -> np.ndarray:
        r = 1 + spec.asymmetry * np.cos(theta - phases[0]) + 0.5 * spec.asymmetry * np.cos(2 * theta - phases[1])
        for k, w, ph in zip(range(5, 13), weights, phases[2:10]):
            r = r + spec.irregularity * w / np.sqrt(2) * np.cos(k * theta + ph)
        return spec.radius * r
    # an upper bound of r(theta) over all angles (|cos| <= 1 in every term), for rendering only near the outline
    radius.reach = float(spec.radius * (1 + 1.5 * abs(spec.asymmetry) + abs(spec.irregularity) * float(np.abs(weights).sum())
                                        / np.sqrt(2))) * (1 + 1e-6) + 1e-6
    return radius


def render_lesion(spec: LesionSpec, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Render one image. Returns ``(image (3, S, S) float32 in [0, 1], concepts (6, S, S) bool)``.

    Each component draws from its own random stream, so a counterfactual spec (no hair, no extra colours,
    no dots, ...) changes that component only."""
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
    # lesion outline in polar coordinates around the centre, evaluated only where the outline can reach
    dx, dy = x - spec.centre[0], y - spec.centre[1]
    rho = np.hypot(dx, dy)
    reach = outline.reach
    near = rho < reach + max(2.5 * px, 0.02) + 2 * px
    on_disc = outline(np.arctan2(dy[near], dx[near]) - spec.rotation)
    boundary = np.full(rho.shape, reach, dtype=on_disc.dtype)       # beyond the reach: outside, off the border,
    boundary[near] = on_disc                                        # zero alpha (so depth there never shows)
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
        points = bezier(p0.astype(np.float32), p1.astype(np.float32), p2.astype(np.float32), 8)
        width = rng_hair.uniform(0.5, 0.9) * px
        dist = polyline_distance_near(x, y, points, 2 * px)           # exact below 2 px: both thresholds are below
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


def make_lesion_specs(n_lesions: int, seed: int, mode: str, hair_density: float, label_noise: float,
                      images_per_lesion: int, ruler_prob: float, vignette_prob: float) -> list[LesionSpec]:
    """Sample lesions (1..images_per_lesion images each, like HAM10000's repeated lesion_ids)."""
    rng = np.random.default_rng([seed, 11])
    classes = BINARY_CLASSES if mode == "binary" else HAM_CLASSES
    specs: list[LesionSpec] = []
    for lesion_no in range(n_lesions):
        if mode == "binary":
            malignant = bool(rng.random() < 0.5)
            diagnosis, base = ("malignant", "brown") if malignant else ("benign", rng.choice(["brown", "light_brown"]))
        else:
            diagnosis = HAM_CLASSES[rng.integers(len(HAM_CLASSES))]
            base, malignant = _HAM_PROFILE[diagnosis]
        if malignant:
            irregularity, asymmetry = rng.uniform(0.03, 0.12), rng.uniform(0.06, 0.22)
            extra = tuple(rng.choice(["dark_brown", "black", "veil", "regression", "light_brown"],
                                     size=int(rng.integers(1, 4)), replace=False))
            n_dots = int(rng.poisson(5))
        else:
            irregularity, asymmetry = rng.uniform(0.0, 0.045), rng.uniform(0.0, 0.09)
            extra = ("dark_brown",) if rng.random() < 0.2 else ()
            n_dots = int(rng.poisson(0.6))
        label = classes.index(diagnosis)
        if label_noise > 0 and rng.random() < label_noise:
            label = int(rng.integers(len(classes)))
        radius = rng.uniform(0.17, 0.27)
        for _ in range(int(rng.integers(1, images_per_lesion + 1))):
            specs.append(LesionSpec(
                index=len(specs), lesion_id=f"LESION_{lesion_no:05d}", label=int(label), diagnosis=diagnosis,
                malignant=bool(malignant), render_seed=int(rng.integers(2**31)),
                centre=(float(0.5 + rng.normal(0, 0.04)), float(0.5 + rng.normal(0, 0.04))), radius=float(radius),
                asymmetry=float(asymmetry), irregularity=float(irregularity), colours=tuple(str(c) for c in extra),
                base_colour=str(base), n_dots=n_dots, n_hairs=int(rng.poisson(hair_density)),
                ruler=bool(rng.random() < ruler_prob), vignette=float(rng.uniform(0.2, 0.5) if rng.random() < vignette_prob else 0.0),
                rotation=float(rng.uniform(0, 2 * np.pi))))
    return specs


class SkinLesionPhantom(PhantomDataset, Dataset):
    """Skin-lesion phantom as a torch Dataset.

    Args:
        n_lesions: number of lesions; each gives 1..``images_per_lesion`` images (split by ``lesion_ids``).
        size: image side; seed: everything is a deterministic function of it.
        mode: ``"binary"`` (benign / malignant) or ``"ham7"`` (HAM10000's seven diagnoses).
        hair_density: mean number of hairs per image, independent of the label.
        label_noise: probability that a lesion's label is redrawn uniformly.
        normalize: ImageNet normalisation of the RGB image.

    Items: ``image`` (3, S, S), ``label`` () long, ``mask`` (1, S, S) the lesion, ``concepts`` (6, S, S)
    float in the order of :data:`CONCEPTS`, ``meta`` (lesion_id, diagnosis, and the cue values).
    """

    def __init__(self, n_lesions: int = 200, size: int = 128, seed: int = 0, mode: str = "binary",
                 hair_density: float = 2.0, label_noise: float = 0.0, images_per_lesion: int = 1,
                 ruler_prob: float = 0.15, vignette_prob: float = 0.3, normalize: bool = True, cache: bool = True) -> None:
        check_count("n_lesions", n_lesions)
        check_size(size)
        check_seed(seed)
        if mode not in ("binary", "ham7"):
            raise ValueError(f"mode: expected 'binary' or 'ham7', got {mode!r}")
        if hair_density < 0:
            raise ValueError(f"hair_density: expected >= 0, got {hair_density!r}")
        if not 0 <= label_noise <= 1:
            raise ValueError(f"label_noise: expected a probability in [0, 1], got {label_noise!r}")
        if not isinstance(images_per_lesion, int) or images_per_lesion < 1:
            raise ValueError(f"images_per_lesion: expected a positive int, got {images_per_lesion!r}")
        self.size, self.mode, self.normalize, self.cache = size, mode, normalize, cache
        self.classes = BINARY_CLASSES if mode == "binary" else HAM_CLASSES
        self.specs = make_lesion_specs(n_lesions, seed, mode, hair_density, label_noise, images_per_lesion,
                                       ruler_prob, vignette_prob)
        self._cache: dict[int, dict[str, Any]] = {}

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.specs], dtype=np.int64)

    @property
    def lesion_ids(self) -> list[str]:
        return [s.lesion_id for s in self.specs]

    def cue_table(self) -> "pandas.DataFrame":
        """One row per image: the generator's cue values (malignancy cues and the label-free confounders
        ``n_hairs``, ``ruler``, ``vignette``), the label and the lesion id."""
        import pandas as pd
        return pd.DataFrame([{**s.cues, "ruler": float(s.ruler), "vignette": s.vignette, "label": s.label,
                              "lesion_id": s.lesion_id} for s in self.specs])

    def permuted(self, field: str, seed: int = 0) -> "SkinLesionPhantom":
        """The same lesions with one spec field shuffled across images (``"n_colours"`` shuffles the
        extra colours); everything else is re-rendered unchanged. For permutation importance."""
        name = "colours" if field == "n_colours" else field
        if name not in LesionSpec.__dataclass_fields__ or name in ("index", "lesion_id", "label", "render_seed"):
            raise ValueError(f"field: {field!r} is not a cue of LesionSpec")
        values = [getattr(s, name) for s in self.specs]
        order = np.random.default_rng(seed).permutation(len(values))
        twin = self.counterfactual()
        twin.specs = [replace(s, **{name: values[j]}) for s, j in zip(self.specs, order)]
        return twin

    def _render_item(self, spec: LesionSpec) -> dict[str, Any]:
        image, concepts = render_lesion(spec, self.size)
        tensor = torch.from_numpy(image)
        item = {"image": normalize_image(tensor) if self.normalize else tensor,
                "label": torch.tensor(spec.label, dtype=torch.long),
                "mask": torch.from_numpy(concepts[0].astype(np.float32))[None],
                "concepts": torch.from_numpy(concepts.astype(np.float32)),
                "meta": {"lesion_id": spec.lesion_id, "diagnosis": spec.diagnosis, **spec.cues}}
        return item
