"""Colour-fundus phantom: field of view, optic disc and cup, macula, a branching vessel tree with its
binary vessel map, and diabetic-retinopathy lesions by type, each with a mask and bounding boxes.

DR grade from lesions, after the International Clinical DR scale (:func:`dr_grade`):
0 no lesions; 1 microaneurysms only; 2 haemorrhages or hard exudates (but not 3 or 4);
3 >= 8 haemorrhages, or >= 2 cotton-wool spots; 4 neovascularisation (fine tortuous new vessels).
``healthy=True`` draws grade-0 fundi only (the GAN notebook's generator trains on their vessel maps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medxai_lib.data.phantoms.common import PhantomDataset, check_count, check_seed, check_size, smooth_noise, unit_grid
from medxai_lib.data.transforms import normalize_image

LESION_TYPES = ("microaneurysm", "haemorrhage", "hard_exudate", "cotton_wool", "neovascularisation")
# the order in which the renderer paints the lesion types (indices into LESION_TYPES), bottom to top: new vessels
# are part of the vessel tree, then microaneurysms, haemorrhages, exudates and cotton-wool spots over them
DRAW_ORDER = (4, 0, 1, 2, 3)
DR_GRADES = ("no DR", "mild NPDR", "moderate NPDR", "severe NPDR", "proliferative DR")


def dr_grade(counts: dict[str, int]) -> int:
    """The phantom's documented grading rule from lesion counts (keys of :data:`LESION_TYPES`)."""
    unknown = set(counts) - set(LESION_TYPES)
    if unknown:
        raise ValueError(f"counts: unknown lesion types {sorted(unknown)}; expected {LESION_TYPES}")
    c = {k: int(counts.get(k, 0)) for k in LESION_TYPES}
    if c["neovascularisation"] > 0:
        return 4
    if c["haemorrhage"] >= 8 or c["cotton_wool"] >= 2:
        return 3
    if c["haemorrhage"] > 0 or c["hard_exudate"] > 0 or c["cotton_wool"] > 0:
        return 2
    return 1 if c["microaneurysm"] > 0 else 0


def _counts_for_grade(grade: int, rng: np.random.Generator) -> dict[str, int]:
    counts = dict.fromkeys(LESION_TYPES, 0)
    if grade >= 1:
        counts["microaneurysm"] = int(rng.integers(2, 9))
    if grade == 2:
        counts["haemorrhage"] = int(rng.integers(0, 6))
        counts["hard_exudate"] = int(rng.integers(0 if counts["haemorrhage"] else 1, 4))
        counts["cotton_wool"] = int(rng.integers(0, 2))
    if grade >= 3:
        counts["haemorrhage"] = int(rng.integers(8, 14))
        counts["hard_exudate"] = int(rng.integers(1, 5))
        counts["cotton_wool"] = int(rng.integers(0, 4))
    if grade == 4:
        counts["neovascularisation"] = int(rng.integers(1, 3))
    assert dr_grade(counts) == grade
    return counts


@dataclass(frozen=True)
class FundusSpec:
    index: int
    patient: str
    eye: str            # "left" / "right" (mirrors the disc position)
    grade: int
    counts: tuple[tuple[str, int], ...]
    render_seed: int


class _Canvas:
    """Collects the vessel tree's segments and rasterises them all at once (numpy, vectorised over segments):
    ``vessel`` (S, S) coverage 0..1 is the maximum over segments of each segment's anti-aliased coverage;
    ``kind`` (S, S) is 1 (artery) or 0 (vein) by the first segment, in drawing order, that reaches that
    maximum (0 where nothing covers the pixel). Each segment is evaluated in a window around it only. The
    result equals drawing the segments one by one (tests/test_fundus_canvas.py keeps that loop as reference)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._segments: list[tuple[np.ndarray, np.ndarray, float, bool]] = []
        self._raster: tuple[np.ndarray, np.ndarray] | None = None

    def segment(self, p0: np.ndarray, p1: np.ndarray, width: float, artery: bool) -> None:
        """Add the segment ``p0``-``p1`` (unit coordinates, float32 ``(2,)``) of half-width ``width``."""
        self._segments.append((np.asarray(p0, np.float32), np.asarray(p1, np.float32), float(width), bool(artery)))
        self._raster = None

    @property
    def vessel(self) -> np.ndarray:
        return self._rasterise()[0]

    @property
    def kind(self) -> np.ndarray:
        return self._rasterise()[1]

    def _rasterise(self) -> tuple[np.ndarray, np.ndarray]:
        if self._raster is not None:
            return self._raster
        size = self.size
        vessel, first = np.zeros(size * size, np.float32), np.full(size * size, len(self._segments), np.int64)
        artery = np.array([s[3] for s in self._segments], np.float32)         # 1 artery, 0 vein, per segment
        if self._segments:
            p0 = np.stack([s[0] for s in self._segments])                    # (N, 2) float32
            p1 = np.stack([s[1] for s in self._segments])
            width = np.array([s[2] for s in self._segments])                  # float64, as drawn
            pad = (width + 2.0 / size).astype(np.float32)[:, None]
            lo = np.floor((np.minimum(p0, p1) - pad) * np.float32(size)).astype(int).clip(0, size)   # (N, 2) x, y
            hi = np.ceil((np.maximum(p0, p1) + pad) * np.float32(size)).astype(int).clip(0, size)
            d = p1 - p0
            length2 = np.array([np.float32(max(float(v @ v), 1e-12)) for v in d], np.float32)  # the scalar dot, as drawn
            keep = (lo < hi).all(1)
            span = np.where(keep[:, None], hi - lo, 0).max(0) if keep.any() else np.zeros(2, int)
            ix, iy = np.arange(span[0]), np.arange(span[1])
            px = lo[:, 0, None, None] + ix[None, None, :]                     # (N, 1, w) pixel columns
            py = lo[:, 1, None, None] + iy[None, :, None]                     # (N, h, 1) pixel rows
            inside = keep[:, None, None] & (px < hi[:, 0, None, None]) & (py < hi[:, 1, None, None])
            xs = ((px.astype(np.float32) + np.float32(0.5)) / np.float32(size))
            ys = ((py.astype(np.float32) + np.float32(0.5)) / np.float32(size))
            col = lambda a: a[:, None, None]  # noqa: E731
            t = np.clip(((xs - col(p0[:, 0])) * col(d[:, 0]) + (ys - col(p0[:, 1])) * col(d[:, 1])) / col(length2), 0, 1)
            dist = np.hypot(xs - col(p0[:, 0]) - t * col(d[:, 0]), ys - col(p0[:, 1]) - t * col(d[:, 1]))
            cover = np.clip((col(width.astype(np.float32)) - dist) * np.float32(size) + np.float32(0.5), 0, 1)
            index = np.broadcast_to(py * size + px, cover.shape)[inside]
            cover, order = cover[inside], np.broadcast_to(np.arange(len(p0))[:, None, None], inside.shape)[inside]
            np.maximum.at(vessel, index, cover)
            top = (cover > 0) & (cover == vessel[index])
            np.minimum.at(first, index[top], order[top])
        kind = np.zeros(size * size, np.float32)
        drawn = first < len(self._segments)
        kind[drawn] = artery[first[drawn]]
        self._raster = vessel.reshape(size, size), kind.reshape(size, size)
        return self._raster


def _grow(canvas: _Canvas, rng: np.random.Generator, start: np.ndarray, angle: float, width: float, length: float,
          artery: bool, depth: int, bend: float, fov: tuple[np.ndarray, float]) -> None:
    """A vessel as a chain of short segments, tapering, curving by ``bend``, branching ``depth`` times."""
    steps = max(4, int(length / 0.025))
    point = start.copy()
    for step in range(steps):
        angle += bend + rng.normal(0, 0.08)
        nxt = point + 0.025 * np.array([np.cos(angle), np.sin(angle)], np.float32)
        if np.hypot(*(nxt - fov[0])) > fov[1]:
            return
        canvas.segment(point, nxt, width, artery)
        width = max(width * 0.985, 0.6 / canvas.size)
        if depth > 0 and step > 2 and rng.random() < 0.12:
            side = rng.choice([-1, 1])
            _grow(canvas, rng, nxt, angle + side * rng.uniform(0.4, 0.8), width * 0.7, length * rng.uniform(0.3, 0.55),
                  artery, depth - 1, bend * 0.5, fov)
        point = nxt


def _blob(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    return (u / rx) ** 2 + (v / ry) ** 2


def render_fundus(spec: FundusSpec, size: int = 128) -> dict[str, Any]:
    """Render one fundus. Returns ``image`` (3, S, S) float32, ``vessels`` / ``fov`` (S, S) bool,
    ``lesions`` (len(LESION_TYPES), S, S) bool, ``disc`` (S, S) bool (the optic disc) and ``boxes`` [(type, x0, y0, x1, y1) in pixels]."""
    rng = np.random.default_rng(spec.render_seed)
    x, y = unit_grid(size)
    px = 1.0 / size
    centre, fov_r = np.array([0.5, 0.5], np.float32), 0.47
    r = np.hypot(x - 0.5, y - 0.5)
    fov = r < fov_r
    sign = -1.0 if spec.eye == "left" else 1.0
    disc = np.array([0.5 + sign * 0.2, 0.5 + rng.normal(0, 0.02)], np.float32)
    macula = np.array([0.5 - sign * 0.06, 0.5 + rng.normal(0, 0.02)], np.float32)
    disc_r = 0.065
    base = np.array([0.78, 0.34, 0.14], np.float32) * rng.uniform(0.9, 1.08, 3).astype(np.float32)
    shade = (1 - 0.45 * (r / fov_r) ** 2) * (1 + 0.05 * smooth_noise(rng, size, max(4, size // 10)))
    image = base[:, None, None] * shade[None]
    mac = np.exp(-((x - macula[0]) ** 2 + (y - macula[1]) ** 2) / (2 * 0.05 ** 2))
    image = image * (1 - 0.35 * mac)[None]
    canvas = _Canvas(size)
    for artery, offset, width in ((True, 0.0, 1.3 * px + 0.004), (False, 0.12, 1.6 * px + 0.006)):
        for vertical in (-1, 1):   # superior / inferior arcades (temporal, curving round the macula) and nasal
            temporal = np.pi if sign > 0 else 0.0
            _grow(canvas, rng, disc.copy(), temporal + vertical * (0.9 + offset), width, 0.55, artery, 2,
                  -vertical * 0.045 * (1 if sign > 0 else -1), (centre, fov_r))
            nasal = 0.0 if sign > 0 else np.pi
            _grow(canvas, rng, disc.copy(), nasal + vertical * (0.6 + offset), width * 0.8, 0.3, artery, 1,
                  vertical * 0.02 * (1 if sign > 0 else -1), (centre, fov_r))
    counts = dict(spec.counts)
    neo = np.zeros((size, size), bool)
    for _ in range(counts.get("neovascularisation", 0)):
        tuft = disc + rng.normal(0, 0.06, 2).astype(np.float32)
        for _ in range(6):
            _grow(canvas, rng, tuft.copy(), rng.uniform(0, 2 * np.pi), 0.6 * px, 0.08, True, 0, rng.normal(0, 0.4),
                  (centre, fov_r))
        neo |= np.hypot(x - tuft[0], y - tuft[1]) < 0.07
    vessel_cover = canvas.vessel * fov
    artery_rgb = np.array([0.72, 0.16, 0.08], np.float32)[:, None, None]
    vein_rgb = np.array([0.50, 0.07, 0.05], np.float32)[:, None, None]
    vessel_rgb = np.where(canvas.kind[None] > 0.5, artery_rgb, vein_rgb) * shade[None]
    image = image * (1 - vessel_cover[None]) + vessel_rgb * vessel_cover[None]
    d_disc = np.hypot(x - disc[0], y - disc[1])
    disc_alpha = np.clip((disc_r - d_disc) / (2 * px), 0, 1)
    cup = np.clip((0.45 * disc_r - d_disc) / (2 * px), 0, 1)
    disc_rgb = np.array([0.97, 0.78, 0.52], np.float32)[:, None, None]
    image = image * (1 - 0.85 * disc_alpha[None]) + disc_rgb * 0.85 * disc_alpha[None]
    image = image + 0.12 * cup[None]
    lesions = np.zeros((len(LESION_TYPES), size, size), bool)
    lesions[4] = neo & (canvas.vessel > 0.3) & (d_disc > disc_r)
    boxes: list[tuple[str, int, int, int, int]] = []
    style = {"microaneurysm": ((0.45, 0.05, 0.05), 1.3, 1.3, 1.0), "haemorrhage": ((0.42, 0.04, 0.04), 3.5, 2.5, 1.0),
             "hard_exudate": ((0.98, 0.88, 0.45), 1.6, 1.6, 0.9), "cotton_wool": ((0.95, 0.9, 0.82), 4.5, 3.5, 0.6)}
    for t, name in enumerate(LESION_TYPES[:4]):
        colour, rx_px, ry_px, opacity = style[name]
        for _ in range(counts.get(name, 0)):
            for _attempt in range(20):
                cx, cy = rng.uniform(0.12, 0.88, 2)
                if np.hypot(cx - 0.5, cy - 0.5) < fov_r - 0.06 and np.hypot(cx - disc[0], cy - disc[1]) > disc_r + 0.04:
                    break
            scale = rng.uniform(0.8, 1.3) * max(1.0, size / 128)
            rx, ry = rx_px * px * scale, ry_px * px * scale
            shape = _blob(x, y, cx, cy, rx, ry, rng.uniform(0, np.pi))
            alpha = np.clip((1 - shape) * (2 if name != "cotton_wool" else 1), 0, 1) * opacity
            image = image * (1 - alpha[None]) + np.array(colour, np.float32)[:, None, None] * alpha[None]
            region = shape < 1.0
            lesions[t] |= region
            ys, xs = np.nonzero(region)
            if len(xs):
                boxes.append((name, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    if lesions[4].any():
        ys, xs = np.nonzero(lesions[4])
        boxes.append(("neovascularisation", int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    image = image + rng.normal(0, 0.01, image.shape).astype(np.float32)
    image = np.where(fov[None], np.clip(image, 0, 1), 0.0).astype(np.float32)
    return {"image": image, "vessels": (canvas.vessel > 0.5) & fov, "fov": fov, "lesions": lesions & fov[None],
            "disc": (d_disc < disc_r) & fov, "boxes": boxes}


class FundusPhantom(PhantomDataset, Dataset):
    """Fundus phantom as a torch Dataset.

    Args:
        n_images: number of images (two eyes per patient); size; seed.
        healthy: only grade 0; grade_probs: probabilities of grades 0..4 otherwise.
    Items: ``image`` (3, S, S), ``label`` () DR grade, ``mask`` (1, S, S) union of lesions,
    ``lesions`` (5, S, S), ``vessels`` (1, S, S), ``fov`` (1, S, S), ``disc`` (1, S, S), ``meta`` (patient, eye, grade, counts, boxes).
    """

    def __init__(self, n_images: int = 100, size: int = 128, seed: int = 0, healthy: bool = False,
                 grade_probs: tuple[float, ...] = (0.3, 0.2, 0.2, 0.15, 0.15), normalize: bool = True,
                 cache: bool = True) -> None:
        check_count("n_images", n_images)
        check_size(size)
        check_seed(seed)
        probs = np.asarray(grade_probs, dtype=float)
        if probs.shape != (5,) or (probs < 0).any() or not np.isclose(probs.sum(), 1):
            raise ValueError(f"grade_probs: expected 5 probabilities summing to 1, got {grade_probs!r}")
        rng = np.random.default_rng([seed, 13])
        self.size, self.normalize, self.cache = size, normalize, cache
        self.specs = []
        for i in range(n_images):
            grade = 0 if healthy else int(rng.choice(5, p=probs))
            counts = _counts_for_grade(grade, rng)
            self.specs.append(FundusSpec(i, f"patient{i // 2:05d}", ("left", "right")[i % 2], grade,
                                         tuple(counts.items()), int(rng.integers(2**31))))
        self._cache: dict[int, dict[str, Any]] = {}

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.grade for s in self.specs], dtype=np.int64)

    @property
    def patient_ids(self) -> list[str]:
        return [s.patient for s in self.specs]

    def _render_item(self, spec: FundusSpec) -> dict[str, Any]:
        out = render_fundus(spec, self.size)
        image = torch.from_numpy(out["image"])
        as_float = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        item = {"image": normalize_image(image) if self.normalize else image,
                "label": torch.tensor(spec.grade, dtype=torch.long),
                "mask": as_float(out["lesions"].any(0))[None], "lesions": as_float(out["lesions"]),
                "vessels": as_float(out["vessels"])[None], "fov": as_float(out["fov"])[None],
                "disc": as_float(out["disc"])[None],
                "meta": {"patient": spec.patient, "eye": spec.eye, "grade": spec.grade,
                         "counts": dict(spec.counts), "boxes": out["boxes"]}}
        return item
