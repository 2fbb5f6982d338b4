"""MURA-like radiograph phantom: procedural upper-extremity radiographs with evidence masks.

Seven body parts (MURA's), bones drawn as capsules with a bright cortex and textured marrow inside
a soft-tissue envelope. Patients have studies of 1-4 views; labels live at study level as in MURA.
Abnormal studies show one abnormality kind in every view, with a pixel-exact evidence mask:

* ``fracture``: a thin radiolucent line across a long bone;
* ``hardware``: a metal plate along a bone with screws across it (saturates the detector);
* ``lytic``: a radiolucent oval in the marrow with a sclerotic rim.

An optional confounder, a laterality marker in a corner, correlates with the label by a chosen
amount (``marker_correlation``), to teach shortcut learning. Everything is a deterministic function
of ``seed`` and the image index.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from medxai_lib.data.phantoms.common import (PhantomDataset, check_count, check_seed, check_size, segment_distance, smooth_noise,
                                             unit_grid)
from medxai_lib.data.transforms import grey_to_tensor, normalize_image

BODY_PARTS = ("ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST")
ABNORMALITIES = ("fracture", "hardware", "lytic")

# Bone layouts in a unit frame (x right, y down): (x0, y0, x1, y1, radius); x0==x1 and y0==y1 is a disc.
_LAYOUTS: dict[str, list[tuple[float, float, float, float, float]]] = {
    "HUMERUS": [(0.5, 0.12, 0.5, 0.95, 0.085), (0.5, 0.12, 0.5, 0.12, 0.13)],
    "FOREARM": [(0.41, 0.04, 0.39, 0.96, 0.055), (0.59, 0.04, 0.61, 0.96, 0.05)],
    "ELBOW": [(0.5, 0.0, 0.5, 0.42, 0.08), (0.5, 0.46, 0.5, 0.46, 0.11),
              (0.44, 0.58, 0.34, 1.0, 0.05), (0.57, 0.57, 0.63, 1.0, 0.05)],
    "WRIST": [(0.41, 1.0, 0.42, 0.62, 0.07), (0.61, 1.0, 0.6, 0.66, 0.05),
              (0.40, 0.52, 0.40, 0.52, 0.045), (0.50, 0.51, 0.50, 0.51, 0.045),
              (0.60, 0.53, 0.60, 0.53, 0.04), (0.45, 0.43, 0.45, 0.43, 0.04),
              (0.56, 0.43, 0.56, 0.43, 0.04), (0.36, 0.36, 0.30, 0.0, 0.035),
              (0.47, 0.35, 0.46, 0.0, 0.035), (0.58, 0.35, 0.60, 0.0, 0.035)],
    "HAND": [(0.32, 0.78, 0.26, 0.46, 0.032), (0.42, 0.80, 0.40, 0.42, 0.033),
             (0.52, 0.80, 0.54, 0.42, 0.033), (0.62, 0.78, 0.67, 0.46, 0.03),
             (0.26, 0.42, 0.22, 0.08, 0.026), (0.40, 0.38, 0.39, 0.02, 0.027),
             (0.54, 0.38, 0.56, 0.03, 0.027), (0.67, 0.42, 0.72, 0.12, 0.024),
             (0.25, 0.85, 0.12, 0.62, 0.035)],
    "FINGER": [(0.5, 0.04, 0.5, 0.30, 0.06), (0.5, 0.35, 0.5, 0.62, 0.068),
               (0.5, 0.67, 0.5, 0.98, 0.075)],
    "SHOULDER": [(0.45, 0.45, 0.45, 0.45, 0.16), (0.46, 0.52, 0.52, 1.0, 0.085),
                 (0.72, 0.22, 0.66, 0.85, 0.05), (0.05, 0.16, 0.95, 0.10, 0.033)],
}


@dataclass(frozen=True)
class ViewSpec:
    """Everything needed to render one view (a deterministic function of the dataset seed)."""

    index: int
    body_part: str
    patient: str
    study: str
    view: int
    label: int
    kind: str | None            # abnormality kind, None when normal
    marker: bool
    render_seed: int
    lesion_bone: int            # index of the long bone that carries the abnormality
    lesion_t: float             # position along that bone, 0..1
    angle: float                # rotation of the layout, radians
    scale: float
    shift: tuple[float, float]
    squeeze: float              # lateral views squeeze the layout across (bones overlap more)
    exposure: tuple[float, float, float] = field(default=(1.0, 1.0, 0.0))  # gamma, contrast, offset
    marker_corner: int = 0


def _transform(spec: ViewSpec) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Bones of the spec's layout after squeeze, rotation, scale and shift."""
    cos, sin = np.cos(spec.angle), np.sin(spec.angle)
    rot = np.array([[cos, -sin], [sin, cos]], dtype=np.float32)
    centre = np.array([0.5, 0.5], dtype=np.float32)
    shift = np.asarray(spec.shift, dtype=np.float32)

    def move(px: float, py: float) -> np.ndarray:
        p = np.array([(px - 0.5) * spec.squeeze, py - 0.5], dtype=np.float32)
        return centre + spec.scale * (rot @ p) + shift

    return [(move(x0, y0), move(x1, y1), r * spec.scale) for x0, y0, x1, y1, r in _LAYOUTS[spec.body_part]]


def long_bones(body_part: str) -> list[int]:
    """Indices of the body part's bones that are segments (not discs), longest first."""
    bones = _LAYOUTS[body_part]
    segs = [(np.hypot(b[2] - b[0], b[3] - b[1]), i) for i, b in enumerate(bones) if (b[0], b[1]) != (b[2], b[3])]
    return [i for _, i in sorted(segs, reverse=True)]


def _draw_abnormality(spec: ViewSpec, bones: list, x: np.ndarray, y: np.ndarray,
                      size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (intensity change, override mask, override value) fields and the evidence mask."""
    p0, p1, radius = bones[spec.lesion_bone]
    axis = p1 - p0
    axis_unit = axis / (np.linalg.norm(axis) + 1e-9)
    normal = np.array([-axis_unit[1], axis_unit[0]], dtype=np.float32)
    centre = p0 + spec.lesion_t * axis
    px = 1.0 / size
    inside_bone = segment_distance(x, y, p0, p1) < radius
    delta = np.zeros_like(x)
    overwrite = np.zeros_like(x, dtype=bool)
    if spec.kind == "fracture":
        tilt = rng.uniform(-0.5, 0.5)
        direction = np.cos(tilt) * normal + np.sin(tilt) * axis_unit
        half = radius * 1.6
        dist = segment_distance(x, y, centre - half * direction, centre + half * direction)
        line = (dist < max(0.9 * px, 0.006)) & inside_bone
        delta -= 0.5 * line
        evidence = line
    elif spec.kind == "hardware":
        side = normal * radius * 0.95
        half = min(0.2, 0.45 * float(np.linalg.norm(axis)))
        plate = segment_distance(x, y, centre + side - half * axis_unit, centre + side + half * axis_unit)
        plate = plate < max(1.3 * px, 0.012)
        screws = np.zeros_like(plate)
        for s in np.linspace(-0.8, 0.8, 4):
            base = centre + side + s * half * axis_unit
            screws |= segment_distance(x, y, base, base - normal * radius * 2.0) < max(0.8 * px, 0.0065)
        overwrite = plate | screws
        evidence = overwrite
    elif spec.kind == "lytic":
        a, b = radius * rng.uniform(0.45, 0.65), radius * rng.uniform(0.8, 1.6)
        rel = np.stack([x - centre[0], y - centre[1]])
        u = rel[0] * normal[0] + rel[1] * normal[1]
        v = rel[0] * axis_unit[0] + rel[1] * axis_unit[1]
        r_ell = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        hole = r_ell < 1.0
        rim = (r_ell >= 1.0) & (r_ell < 1.0 + 2.0 * px / a)
        delta -= 0.35 * hole
        delta += 0.2 * (rim & inside_bone)
        evidence = (hole | rim) & inside_bone
    else:
        raise ValueError(f"kind: expected one of {ABNORMALITIES}, got {spec.kind!r}")
    return delta, overwrite, evidence


def _draw_marker(spec: ViewSpec, size: int) -> np.ndarray:
    """A blocky 'R' or 'L' laterality marker in one corner; returns its box mask."""
    glyph_l = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], bool)
    glyph_r = np.array([[1, 1, 1, 0], [1, 0, 0, 1], [1, 1, 1, 0], [1, 0, 1, 0], [1, 0, 0, 1]], bool)
    glyph = glyph_r if spec.render_seed % 2 else glyph_l
    cell = max(1, round(size / 64))
    glyph = np.kron(glyph, np.ones((cell, cell), bool))
    gh, gw = glyph.shape
    margin = max(2, size // 24)
    top = margin if spec.marker_corner in (0, 1) else size - margin - gh
    left = margin if spec.marker_corner in (0, 2) else size - margin - gw
    canvas = np.zeros((size, size), bool)
    canvas[top:top + gh, left:left + gw] = glyph
    return canvas


def render_view(spec: ViewSpec, size: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one view. Returns ``(image, evidence, marker)``: ``(S, S)`` float32 in [0, 1] and two
    ``(S, S)`` bool masks (the abnormality's evidence; the marker's box)."""
    rng = np.random.default_rng(spec.render_seed)
    x, y = unit_grid(size)
    bones = _transform(spec)
    bone_field = np.zeros_like(x)
    cortex = np.zeros_like(x)
    tissue = np.zeros_like(x)
    edge = 1.5 / size
    for p0, p1, radius in bones:
        dist = segment_distance(x, y, p0, p1)
        bone_field = np.maximum(bone_field, np.clip((radius - dist) / edge, 0, 1))
        cortex_width = max(0.22 * radius, 1.2 / size)
        cortex = np.maximum(cortex, np.clip((radius - dist) / edge, 0, 1) * (dist > radius - cortex_width))
        tissue = np.maximum(tissue, np.clip((radius + 0.09 * spec.scale - dist) / 0.04, 0, 1))
    marrow_texture = smooth_noise(rng, size, max(4, size // 6))
    image = 0.06 + 0.22 * tissue * (1 + 0.15 * smooth_noise(rng, size, 4))
    image = image + bone_field * (0.36 + 0.07 * marrow_texture) + 0.28 * cortex
    evidence = np.zeros((size, size), bool)
    if spec.kind is not None:
        # its own random stream, so a view rendered with and without the abnormality differs only there
        lesion_rng = np.random.default_rng([spec.render_seed, 1])
        delta, overwrite, evidence = _draw_abnormality(spec, bones, x, y, size, lesion_rng)
        image = image + delta * bone_field
        image = np.where(overwrite, 0.97, image)
    gamma, contrast, offset = spec.exposure
    image = np.clip(image * contrast + offset, 0, 1) ** gamma
    image = image + rng.normal(0, 0.025, image.shape).astype(np.float32)
    marker = np.zeros((size, size), bool)
    if spec.marker:
        glyph = _draw_marker(spec, size)
        image = np.where(glyph, 0.95, image)
        marker = ndimage.binary_dilation(glyph, iterations=1)
    return np.clip(image, 0, 1).astype(np.float32), evidence, marker


def make_specs(n_studies: int, seed: int, prevalence: float, abnormalities: Sequence[str],
               body_parts: Sequence[str], marker_correlation: float | None) -> list[ViewSpec]:
    """Sample the patient / study / view table. Each patient has 1-2 studies of one body part."""
    rng = np.random.default_rng([seed, 7])
    specs: list[ViewSpec] = []
    study_count, patient_no = 0, 0
    while study_count < n_studies:
        patient_no += 1
        part = body_parts[rng.integers(len(body_parts))]
        for study_no in range(1, min(int(rng.integers(1, 3)), n_studies - study_count) + 1):
            study_count += 1
            label = int(rng.random() < prevalence)
            kind = abnormalities[rng.integers(len(abnormalities))] if label else None
            if marker_correlation is None:
                marker = False
            else:
                p_marker = (1 + marker_correlation) / 2 if label else (1 - marker_correlation) / 2
                marker = bool(rng.random() < p_marker)
            candidates = long_bones(part)
            lesion_bone = int(candidates[rng.integers(min(2, len(candidates)))])
            lesion_t = float(rng.uniform(0.3, 0.7))
            base_angle = rng.uniform(-0.35, 0.35)
            corner = int(rng.integers(4))
            study = f"study{study_no}_{'positive' if label else 'negative'}"
            for view in range(1, int(rng.integers(1, 5)) + 1):
                specs.append(ViewSpec(
                    index=len(specs), body_part=part, patient=f"patient{patient_no:05d}", study=study,
                    view=view, label=label, kind=kind, marker=marker,
                    render_seed=int(rng.integers(2**31)), lesion_bone=lesion_bone, lesion_t=lesion_t,
                    angle=float(base_angle + rng.normal(0, 0.12)), scale=float(rng.uniform(0.8, 1.0)),
                    shift=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.05, 0.05))),
                    squeeze=float(1.0 if view % 2 else rng.uniform(0.6, 0.85)),
                    exposure=(float(rng.uniform(0.8, 1.25)), float(rng.uniform(0.85, 1.15)),
                              float(rng.uniform(-0.04, 0.04))),
                    marker_corner=corner))
    return specs


class RadiographPhantom(PhantomDataset, Dataset):
    """MURA-like phantom radiographs as a torch Dataset.

    Args:
        n_studies: number of studies (each has 1-4 views, so ``len(ds)`` is about 2.5x this).
        size: image side in pixels (square).
        seed: everything is a deterministic function of it.
        prevalence: probability that a study is abnormal.
        abnormalities: kinds to draw from (subset of :data:`ABNORMALITIES`).
        body_parts: subset of :data:`BODY_PARTS`.
        marker_correlation: ``None`` = no laterality marker; a value rho in [-1, 1] draws the marker
            with probability (1+rho)/2 in abnormal and (1-rho)/2 in normal studies (phi ~ rho when
            prevalence is 0.5).
        channels: 1 (grey) or 3 (grey repeated, as for ImageNet models).
        normalize: apply the MURA-baseline normalisation (see :mod:`medxai_lib.data.transforms`).
        cache: keep rendered images in memory.

    Items are dicts: ``image`` (C, S, S) float, ``label`` () long, ``mask`` (1, S, S) float evidence,
    ``confounder_mask`` (1, S, S) float marker box, ``meta`` dict (body_part, patient, study, view, kind).
    """

    def __init__(self, n_studies: int = 200, size: int = 128, seed: int = 0, prevalence: float = 0.5,
                 abnormalities: Sequence[str] = ABNORMALITIES, body_parts: Sequence[str] = BODY_PARTS,
                 marker_correlation: float | None = None, channels: int = 1, normalize: bool = True,
                 cache: bool = True) -> None:
        check_count("n_studies", n_studies)
        check_size(size)
        check_seed(seed)
        if not 0.0 <= prevalence <= 1.0:
            raise ValueError(f"prevalence: expected a probability in [0, 1], got {prevalence!r}")
        unknown = [a for a in abnormalities if a not in ABNORMALITIES]
        if unknown or not abnormalities:
            raise ValueError(f"abnormalities: expected a non-empty subset of {ABNORMALITIES}, got {tuple(abnormalities)}")
        unknown = [b for b in body_parts if b not in BODY_PARTS]
        if unknown or not body_parts:
            raise ValueError(f"body_parts: expected a non-empty subset of {BODY_PARTS}, got {tuple(body_parts)}")
        if marker_correlation is not None and not -1.0 <= marker_correlation <= 1.0:
            raise ValueError(f"marker_correlation: expected None or a value in [-1, 1], got {marker_correlation!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels: expected 1 or 3, got {channels!r}")
        self.size, self.channels, self.normalize, self.cache = size, channels, normalize, cache
        self.specs = make_specs(n_studies, seed, prevalence, tuple(abnormalities), tuple(body_parts),
                                marker_correlation)
        self._cache: dict[int, dict[str, Any]] = {}

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` int labels (the study's label for each view)."""
        return np.array([s.label for s in self.specs], dtype=np.int64)

    @property
    def study_ids(self) -> list[str]:
        """One id per image, unique per study: ``"<patient>/<study>"``."""
        return [f"{s.patient}/{s.study}" for s in self.specs]

    @property
    def body_parts(self) -> list[str]:
        return [s.body_part for s in self.specs]

    @property
    def kinds(self) -> list[str]:
        """Abnormality kind of each image (``"normal"`` for normal studies)."""
        return [s.kind or "normal" for s in self.specs]

    def _render_item(self, spec: ViewSpec) -> dict[str, Any]:
        image, evidence, marker = render_view(spec, self.size)
        tensor = grey_to_tensor(image, self.channels)
        item = {
            "image": normalize_image(tensor) if self.normalize else tensor,
            "label": torch.tensor(spec.label, dtype=torch.long),
            "mask": torch.from_numpy(evidence.astype(np.float32))[None],
            "confounder_mask": torch.from_numpy(marker.astype(np.float32))[None],
            "meta": {"body_part": spec.body_part, "patient": spec.patient, "study": spec.study,
                     "view": spec.view, "kind": spec.kind or "normal"},
        }
        return item
