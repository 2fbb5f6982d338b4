"""H&E-like histology phantom with diagnostic reports (in the spirit of MDNet's BCIDR data).

Five nuclear attributes are graded 0 (normal), 1 (mild) or 2 (severe), each expressed inside its own
known region (one mask per attribute):

* ``pleomorphism``: nuclear size and shape vary;        * ``crowding``: nuclei packed densely;
* ``polarity``: nuclei lose their common orientation;   * ``mitosis``: dark, ragged mitotic figures;
* ``nucleoli``: a prominent dark nucleolus per nucleus.

Grades: by default one latent severity per image drives all five grades (they correlate, so a grade mostly
restates the class); ``grade_correlation=r`` draws them from a Gaussian copula with correlation ``r``
(``0``: independent attributes) and marginals ``grade_probs``.

Class rule (:func:`histology_class`): ``insufficient information`` when too little tissue is present;
``high grade`` when any attribute is severe or the grades sum to >= 5; ``low grade`` when they sum to
>= 2; else ``normal``. Each image gets 5 reports drawn from varied templates (synonyms, word order):
one sentence per attribute, in a fixed attribute order, and a conclusion.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from medxai_lib.data.phantoms.common import PhantomDataset, check_count, check_seed, check_size, smooth_noise, unit_grid
from medxai_lib.data.transforms import normalize_image

ATTRIBUTES = ("pleomorphism", "crowding", "polarity", "mitosis", "nucleoli")
HISTOLOGY_CLASSES = ("normal", "low grade", "high grade", "insufficient information")

_SENTENCES: dict[str, dict[int, list[str]]] = {
    "pleomorphism": {0: ["nuclei are uniform in size and shape", "there is no nuclear pleomorphism",
                         "nuclear size is regular"],
                     1: ["mild nuclear pleomorphism is present", "nuclei show mild variation in size",
                         "there is mild pleomorphism of the nuclei"],
                     2: ["severe nuclear pleomorphism is present", "nuclei vary markedly in size and shape",
                         "there is severe pleomorphism of the nuclei"]},
    "crowding": {0: ["cells are not crowded", "there is no cell crowding", "cell density is normal"],
                 1: ["cells are mildly crowded", "there is mild cell crowding", "cell density is mildly increased"],
                 2: ["cells are severely crowded", "there is severe cell crowding", "cells are densely packed"]},
    "polarity": {0: ["polarity is preserved", "cells keep their polarity", "nuclear orientation is regular"],
                 1: ["polarity is partially lost", "there is mild loss of polarity", "cells are mildly disordered"],
                 2: ["polarity is completely lost", "there is complete loss of polarity", "cells are severely disordered"]},
    "mitosis": {0: ["no mitosis is seen", "mitotic figures are absent", "there is no mitosis"],
                1: ["rare mitoses are seen", "occasional mitotic figures are present", "there is rare mitosis"],
                2: ["frequent mitoses are seen", "mitotic figures are frequent", "there is frequent mitosis"]},
    "nucleoli": {0: ["nucleoli are inconspicuous", "nucleoli are not prominent", "there are no prominent nucleoli"],
                 1: ["nucleoli are mildly prominent", "some nucleoli are prominent", "there are mildly prominent nucleoli"],
                 2: ["nucleoli are very prominent", "most nucleoli are prominent", "there are very prominent nucleoli"]},
}
_CONCLUSIONS = {"normal": ["conclusion normal", "the diagnosis is normal tissue"],
                "low grade": ["conclusion low grade carcinoma", "the diagnosis is low grade"],
                "high grade": ["conclusion high grade carcinoma", "the diagnosis is high grade"],
                "insufficient information": ["conclusion insufficient information",
                                             "the diagnosis is insufficient information"]}
_INSUFFICIENT = {a: ["the tissue is insufficient to assess " + a,
                     a + " cannot be assessed"] for a in ATTRIBUTES}


def histology_class(grades: dict[str, int], sufficient: bool = True) -> str:
    """The phantom's documented class rule."""
    if not sufficient:
        return "insufficient information"
    values = [int(grades[a]) for a in ATTRIBUTES]
    if max(values) == 2 or sum(values) >= 5:
        return "high grade"
    if sum(values) >= 2:
        return "low grade"
    return "normal"


def make_reports(grades: dict[str, int], sufficient: bool, rng: np.random.Generator, n: int = 5) -> list[str]:
    """``n`` reports: one sentence per attribute in the fixed order of :data:`ATTRIBUTES` (as in a
    structured pathology report), each drawn from synonymous templates with different word order, and the
    conclusion last."""
    label = histology_class(grades, sufficient)
    reports = []
    for _ in range(n):
        parts = [rng.choice(_SENTENCES[a][grades[a]] if sufficient else _INSUFFICIENT[a]) for a in ATTRIBUTES]
        parts.append(rng.choice(_CONCLUSIONS[label]))
        reports.append(" . ".join(parts) + " .")
    return reports


def correlated_grades(rng: np.random.Generator, correlation: float, probs: np.ndarray) -> dict[str, int]:
    """Grades from a Gaussian copula: ``z_a = sqrt(r) s + sqrt(1 - r) e_a`` cut at the quantiles of ``probs``
    (P(grade 0), P(1), P(2)), so every attribute has these marginals and any two latent scores correlate by
    ``r`` (0: attributes independent of each other; the class still follows from the grades)."""
    from scipy.stats import norm
    cuts = norm.ppf(np.cumsum(probs)[:2])
    shared, own = rng.standard_normal(), rng.standard_normal(len(ATTRIBUTES))
    z = np.sqrt(correlation) * shared + np.sqrt(1 - correlation) * own
    return {a: int(np.searchsorted(cuts, v)) for a, v in zip(ATTRIBUTES, z)}


def tokenize(text: str) -> list[str]:
    """Lower-case words and full stops."""
    return re.findall(r"[a-z]+|\.", text.lower())


class Vocabulary:
    """Word <-> index with ``<pad>`` = 0, ``<bos>``, ``<eos>``, ``<unk>``."""

    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, texts: Iterable[str], min_count: int = 1) -> None:
        counts = Counter(tok for text in texts for tok in tokenize(text))
        self.itos = list(self.SPECIALS) + sorted(w for w, c in counts.items() if c >= min_count)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        ids = [self.stoi["<bos>"]] + [self.stoi.get(t, self.stoi["<unk>"]) for t in tokenize(text)] + [self.stoi["<eos>"]]
        if max_len is not None:
            ids = (ids + [0] * max_len)[:max_len]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        words = []
        for i in ids:
            word = self.itos[int(i)]
            if word == "<eos>":
                break
            if word not in ("<pad>", "<bos>"):
                words.append(word)
        return " ".join(words)


@dataclass(frozen=True)
class HistologySpec:
    index: int
    patient: str
    grades: tuple[tuple[str, int], ...]
    sufficient: bool
    render_seed: int

    @property
    def label(self) -> int:
        return HISTOLOGY_CLASSES.index(histology_class(dict(self.grades), self.sufficient))


def _region(rng: np.random.Generator, size: int, extent: float | None = None) -> np.ndarray:
    """A smooth blob-shaped region covering 20-30% of the patch (drawn), or the share ``extent``."""
    field = smooth_noise(rng, size, 3)
    share = rng.uniform(0.7, 0.8)            # drawn either way: ``extent`` leaves every later draw as it was
    return field > np.quantile(field, share if extent is None else 1 - extent)


# Renderer settings under which an image model at notebook 05's scale (64 px, 300 training images, 10 epochs) reads
# every attribute better than the majority grade (docs/histology_readability.md, scripts/histology_readability.py on
# phantom seeds 11-13): nuclei 1.5x larger and sparser, grades acting 3x (nucleoli 4x, tinted magenta) as strongly, a shared axis for
# ordered nuclei, each abnormal region half the patch. The defaults keep the subtler phantom of earlier notebooks.
READABLE = {"magnification": 1.5, "strength": {"pleomorphism": 3.0, "polarity": 3.0, "mitosis": 3.0, "nucleoli": 4.0},
            "common_axis": 0.0, "extent": 0.5, "elongation": 2.2}


def attribute_strengths(strength: float | Mapping[str, float]) -> dict[str, float]:
    """``strength`` of :func:`render_histology` as one number per attribute, checked (each in [0, 10])."""
    if isinstance(strength, Mapping):
        unknown = set(strength) - set(ATTRIBUTES)
        if unknown:
            raise ValueError(f"strength: unknown attributes {sorted(unknown)}; expected some of {ATTRIBUTES}")
        gains = {a: strength.get(a, 1.0) for a in ATTRIBUTES}
    else:
        gains = {a: strength for a in ATTRIBUTES}
    for a, g in gains.items():
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 <= g <= 10:
            raise ValueError(f"strength: expected numbers in [0, 10], got {g!r} for {a}")
    return {a: float(g) for a, g in gains.items()}


def render_histology(spec: HistologySpec, size: int = 128, magnification: float = 1.0,
                     strength: float | Mapping[str, float] = 1.0, common_axis: float | None = None,
                     extent: float | None = None, elongation: float = 1.6) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(image (3, S, S) float32, attribute masks (5, S, S) bool)``; a mask is empty when its
    attribute's grade is 0. ``magnification`` scales the nuclei and their spacing (the field of view shrinks
    by the same factor): at 64 px and magnification 1 a nucleus is about two pixels wide, too small for its
    shape, orientation or a mitotic figure to be seen. ``strength`` multiplies what a grade does to the nuclei in
    its region (pleomorphism: spread of size and shape; polarity: spread of orientation; mitosis: share of mitotic
    figures; nucleoli: size of the nucleolus, by the square root, and above 1 its tint, magenta from 4 on): one number for all, or a mapping attribute ->
    number (attributes left out: 1; crowding has none). 1 is the default. ``common_axis`` (radians): the orientation that nuclei with preserved polarity share in every image
    (``None``: a random one per image, so that disorder shows only as disagreement between nuclei). ``extent``: the
    share of the patch each abnormal attribute's region covers (``None``: 20-30%, drawn per region). ``elongation``: the
    mean ratio of a nucleus's long to short axis (1.6; longer nuclei show their orientation, and so polarity, better)."""
    rng = np.random.default_rng(spec.render_seed)
    grades = dict(spec.grades)
    x, y = unit_grid(size)
    px = 1.0 / size
    stroma = 1 + 0.06 * smooth_noise(rng, size, max(4, size // 6))
    image = np.array([0.93, 0.72, 0.84], np.float32)[:, None, None] * stroma[None]
    tissue = np.ones((size, size), bool) if spec.sufficient else (smooth_noise(rng, size, 3) > 1.0)
    image = np.where(tissue[None], image, np.array([0.97, 0.95, 0.96], np.float32)[:, None, None])
    masks = np.stack([_region(rng, size, extent) if grades[a] > 0 and spec.sufficient else np.zeros((size, size), bool)
                      for a in ATTRIBUTES])
    base_spacing = 0.075 * magnification
    nuclei_rgb = np.array([0.30, 0.22, 0.52], np.float32)
    axis_angle = rng.uniform(0, np.pi)            # drawn always, so that common_axis leaves every other draw as it was
    axis_angle = axis_angle if common_axis is None else common_axis
    # a jittered grid of candidate nuclei; crowded regions get a denser grid
    candidates = []
    for spacing, crowded in ((base_spacing, False), (base_spacing / (1 + 0.6 * grades["crowding"]), True)):
        if crowded and grades["crowding"] == 0:
            continue
        n = int(1 / spacing)
        gx, gy = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n)
        pts = np.stack([gx.ravel(), gy.ravel()], 1) + rng.normal(0, spacing * 0.2, (n * n, 2))
        ix = np.clip((pts[:, 0] * size).astype(int), 0, size - 1)
        iy = np.clip((pts[:, 1] * size).astype(int), 0, size - 1)
        keep = (masks[1, iy, ix] == crowded) & tissue[iy, ix]
        candidates += list(zip(pts[keep, 0], pts[keep, 1], ix[keep], iy[keep]))
    if candidates:
        cx_all, cy_all, ix_all, iy_all = (np.asarray(v) for v in zip(*candidates))
    else:
        cx_all = cy_all = ix_all = iy_all = np.zeros(0)
    ix_all, iy_all = ix_all.astype(int), iy_all.astype(int)
    local = masks[:, iy_all, ix_all] * np.array([grades[a] for a in ATTRIBUTES])[:, None]   # (5, N) grades here
    count = len(cx_all)
    gain = attribute_strengths(strength)
    radius = np.clip(0.018 * (1 + rng.normal(0, 1, count) * (0.12 + 0.25 * gain["pleomorphism"] * local[0])), 0.008, 0.04) * magnification
    elong = np.maximum(elongation + rng.normal(0, 1, count) * (0.1 + 0.3 * gain["pleomorphism"] * local[0]), 1.0)
    angle = axis_angle + rng.normal(0, 1, count) * (0.15 + 0.9 * gain["polarity"] * local[2])
    mitotic = rng.random(count) < 0.15 * gain["mitosis"] * local[3]
    radius = np.where(mitotic, radius * 0.9, radius)
    elong = np.where(mitotic, 1.0 + rng.uniform(0, 0.8, count), elong)
    shade = rng.uniform(0.9, 1.1, count)
    mitotic_rgb = np.array([0.12, 0.06, 0.22], np.float32)[:, None, None]
    tint = float(np.clip((gain["nucleoli"] - 1) / 3, 0, 1))
    nucleolus_rgb = ((1 - tint) * np.array([0.12, 0.05, 0.18], np.float32)      # stronger nucleoli turn the magenta of a
                     + tint * np.array([0.85, 0.20, 0.50], np.float32))[:, None].astype(np.float32)   # prominent (eosinophilic) one
    for k in range(count):
        cx, cy, ix, iy, r, e = cx_all[k], cy_all[k], ix_all[k], iy_all[k], radius[k], elong[k]
        colour = mitotic_rgb if mitotic[k] else (nuclei_rgb * shade[k])[:, None, None]
        half = int(r * e * size) + 3
        window = (slice(max(iy - half, 0), iy + half + 1), slice(max(ix - half, 0), ix + half + 1))
        xs, ys = x[window] - cx, y[window] - cy
        cos, sin = np.cos(angle[k]), np.sin(angle[k])
        shape = ((xs * cos + ys * sin) / (r * e)) ** 2 + ((ys * cos - xs * sin) / r) ** 2
        alpha = np.clip(3 - 3 * shape, 0, 1)[None]
        patch = image[(slice(None), *window)]
        patch += alpha * (colour - patch)
        if local[4, k] and not mitotic[k]:
            dot = (xs ** 2 + ys ** 2) < max(1.0 * px, r * 0.3 * (0.6 + 0.4 * gain["nucleoli"] ** 0.5 * local[4, k])) ** 2
            patch[:, dot] = nucleolus_rgb
    image = image + rng.normal(0, 0.01, image.shape).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32), masks & tissue[None]


class HistologyPhantom(PhantomDataset, Dataset):
    """Histology patches with five graded attributes, masks and five reports each.

    Items: ``image`` (3, S, S), ``label`` () class index into :data:`HISTOLOGY_CLASSES`, ``mask``
    (1, S, S) union of abnormal-attribute regions, ``attribute_masks`` (5, S, S), ``grades`` (5,) long,
    ``reports`` list of 5 strings, ``meta`` (patient, class name).
    """

    def __init__(self, n_images: int = 200, size: int = 128, seed: int = 0, insufficient_prob: float = 0.05,
                 normalize: bool = True, cache: bool = True, grade_correlation: float | None = None,
                 grade_probs: tuple[float, float, float] = (0.6, 0.3, 0.1), magnification: float = 1.0,
                 strength: float | Mapping[str, float] = 1.0, common_axis: float | None = None,
                 extent: float | None = None, elongation: float = 1.6) -> None:
        check_count("n_images", n_images)
        check_size(size)
        check_seed(seed)
        if not 0 <= insufficient_prob <= 1:
            raise ValueError(f"insufficient_prob: expected a probability, got {insufficient_prob!r}")
        if grade_correlation is not None and not 0 <= grade_correlation < 1:
            raise ValueError(f"grade_correlation: expected None or a number in [0, 1), got {grade_correlation!r}")
        probs = np.asarray(grade_probs, dtype=float)
        if probs.shape != (3,) or (probs <= 0).any() or abs(probs.sum() - 1) > 1e-6:
            raise ValueError(f"grade_probs: expected 3 positive probabilities summing to 1, got {grade_probs!r}")
        rng = np.random.default_rng([seed, 17])
        if not (isinstance(magnification, (int, float)) and 0 < magnification <= 8):
            raise ValueError(f"magnification: expected a number in (0, 8], got {magnification!r}")
        attribute_strengths(strength)           # checks it
        self.size, self.normalize, self.cache = size, normalize, cache
        if common_axis is not None and not isinstance(common_axis, (int, float)):
            raise ValueError(f"common_axis: expected None or an angle in radians, got {common_axis!r}")
        self.magnification, self.strength = float(magnification), strength
        self.common_axis = None if common_axis is None else float(common_axis)
        if extent is not None and (isinstance(extent, bool) or not isinstance(extent, (int, float)) or not 0.05 <= extent <= 0.95):
            raise ValueError(f"extent: expected None or a share of the patch in [0.05, 0.95], got {extent!r}")
        self.extent = None if extent is None else float(extent)
        if isinstance(elongation, bool) or not isinstance(elongation, (int, float)) or not 1 <= elongation <= 4:
            raise ValueError(f"elongation: expected a ratio of axes in [1, 4], got {elongation!r}")
        self.elongation = float(elongation)
        self.grade_correlation = grade_correlation
        self.specs, self.reports = [], []
        for i in range(n_images):
            if grade_correlation is None:        # one latent severity drives every grade (the default)
                severity = rng.uniform(0, 1)
                grades = {a: int(np.clip(np.round(rng.normal(1.7 * severity - 0.1, 0.5)), 0, 2)) for a in ATTRIBUTES}
            else:
                grades = correlated_grades(rng, grade_correlation, probs)
            sufficient = bool(rng.random() >= insufficient_prob)
            spec = HistologySpec(i, f"patient{i // 30:03d}", tuple(grades.items()), sufficient, int(rng.integers(2**31)))
            self.specs.append(spec)
            self.reports.append(make_reports(grades, sufficient, np.random.default_rng([seed, i, 5])))
        self._cache: dict[int, dict[str, Any]] = {}

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.specs], dtype=np.int64)

    @property
    def grades(self) -> np.ndarray:
        """``(N, 5)`` attribute grades in the order of :data:`ATTRIBUTES`."""
        return np.array([[dict(s.grades)[a] for a in ATTRIBUTES] for s in self.specs], dtype=np.int64)

    def vocabulary(self) -> Vocabulary:
        return Vocabulary(r for reports in self.reports for r in reports)

    def _render_item(self, spec: HistologySpec) -> dict[str, Any]:
        image, masks = render_histology(spec, self.size, self.magnification, self.strength, self.common_axis, self.extent,
                                        self.elongation)
        tensor = torch.from_numpy(image)
        item = {"image": normalize_image(tensor) if self.normalize else tensor,
                "label": torch.tensor(spec.label, dtype=torch.long),
                "mask": torch.from_numpy(masks.any(0).astype(np.float32))[None],
                "attribute_masks": torch.from_numpy(masks.astype(np.float32)),
                "grades": torch.tensor([dict(spec.grades)[a] for a in ATTRIBUTES], dtype=torch.long),
                "reports": list(self.reports[spec.index]),
                "meta": {"patient": spec.patient, "class": HISTOLOGY_CLASSES[spec.label]}}
        return item


_SENTENCE_LOOKUP = {sentence: (attribute, grade) for attribute, by_grade in _SENTENCES.items()
                    for grade, sentences in by_grade.items() for sentence in sentences}
_CONCLUSION_LOOKUP = {sentence: label for label, sentences in _CONCLUSIONS.items() for sentence in sentences}


def parse_report(text: str) -> tuple[dict[str, int], str | None]:
    """Read a (generated) report back into attribute grades and a conclusion, by exact template match.
    Sentences that match no template are ignored; missing attributes are absent from the dict."""
    grades: dict[str, int] = {}
    conclusion = None
    for sentence in (s.strip() for s in " ".join(tokenize(text)).split(".")):
        if sentence in _SENTENCE_LOOKUP:
            attribute, grade = _SENTENCE_LOOKUP[sentence]
            grades.setdefault(attribute, grade)
        elif sentence in _CONCLUSION_LOOKUP:
            conclusion = _CONCLUSION_LOOKUP[sentence]
    return grades, conclusion


ATTRIBUTE_WORDS = {"pleomorphism": ("pleomorphism",), "crowding": ("crowded", "crowding", "density", "packed"),
                   "polarity": ("polarity", "disordered", "orientation"), "mitosis": ("mitosis", "mitoses", "mitotic"),
                   "nucleoli": ("nucleoli",)}
