"""Evaluating generated reports: attribute accuracy, retrieval, and where each attribute word looks."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medxai_lib.data.phantoms.histology import ATTRIBUTE_WORDS, ATTRIBUTES, parse_report


def attribute_accuracy(reports: Sequence[str], grades: np.ndarray) -> "pandas.Series":
    """Per attribute, the share of reports whose sentence states the true grade (a missing sentence is wrong).
    ``grades (N, 5)`` in the order of :data:`ATTRIBUTES`."""
    import pandas as pd
    parsed = [parse_report(r)[0] for r in reports]
    return pd.Series({a: float(np.mean([p.get(a, -1) == g for p, g in zip(parsed, grades[:, k])]))
                      for k, a in enumerate(ATTRIBUTES)}, name="attribute accuracy")


def retrieval_scores(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> dict[str, float]:
    """Precision@k and average precision of a ranking by ``scores`` (higher first) against ``relevant``."""
    from sklearn.metrics import average_precision_score
    relevant = np.asarray(relevant).astype(bool)
    if not relevant.any():
        raise ValueError("relevant: no relevant item; precision and AP are undefined")
    order = np.argsort(-np.asarray(scores), kind="stable")
    return {f"P@{k}": float(relevant[order[:k]].mean()), "AP": float(average_precision_score(relevant, scores))}


def attention_on_attributes(reports: Sequence[Sequence[str]], attentions: Sequence[torch.Tensor],
                            attribute_masks: torch.Tensor) -> "pandas.DataFrame":
    """For every generated attribute word (see ``ATTRIBUTE_WORDS``) whose attribute is present in the
    image: the attention mass inside that attribute's region, beside the region's area share.
    ``reports``: generated words per image; ``attentions``: per image ``(len, h, w)``;
    ``attribute_masks (N, 5, H, W)``. Returns one row per attribute (means over words)."""
    import pandas as pd
    word_to_attr = {w: a for a, words in ATTRIBUTE_WORDS.items() for w in words}
    rows: dict[str, list[tuple[float, float]]] = {a: [] for a in ATTRIBUTES}
    size = attribute_masks.shape[-2:]
    for words, att, masks in zip(reports, attentions, attribute_masks):
        for t, word in enumerate(words):
            attribute = word_to_attr.get(word)
            if attribute is None or t >= len(att):
                continue
            region = masks[ATTRIBUTES.index(attribute)] > 0.5
            if not region.any():
                continue
            up = F.interpolate(att[t][None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]
            up = up.clamp_min(0) / up.clamp_min(0).sum().clamp_min(1e-12)
            rows[attribute].append((float(up[region].sum()), float(region.float().mean())))
    return pd.DataFrame({a: {"words": len(v), "attention in region": np.mean([m for m, _ in v]) if v else np.nan,
                             "region area share": np.mean([s for _, s in v]) if v else np.nan}
                         for a, v in rows.items()}).T


_SEVERE = {"severe", "severely", "frequent", "very", "completely", "complete", "densely", "markedly", "most"}
_MILD = {"mild", "mildly", "rare", "occasional", "some", "partially"}
_NONE = {"no", "not", "uniform", "absent", "preserved", "inconspicuous", "normal", "regular"}


def symptom_query(text: str) -> dict[str, set[int]]:
    """Free-text symptom description -> the attribute grades it asks for, e.g. ``"severe nuclear
    pleomorphism"`` -> ``{"pleomorphism": {2}}``; ``"crowded cells with prominent nucleoli"`` ->
    ``{"crowding": {1, 2}, "nucleoli": {1, 2}}`` (an unqualified abnormal finding means mild or severe)."""
    from medxai_lib.data.phantoms.histology import tokenize
    words = tokenize(text)
    word_to_attr = {w: a for a, ws in ATTRIBUTE_WORDS.items() for w in ws} | {"nuclear": None, "prominent": None}
    wanted: dict[str, set[int]] = {}
    for i, word in enumerate(words):
        attribute = word_to_attr.get(word)
        if attribute is None:
            continue
        window = set(words[max(0, i - 2):i + 3])
        grades = {2} if window & _SEVERE else {1} if window & _MILD else {0} if window & _NONE else {1, 2}
        wanted[attribute] = wanted.get(attribute, set()) | grades
    if not wanted:
        raise ValueError(f"text: no attribute named in {text!r}; use words such as "
                         f"{sorted(w for ws in ATTRIBUTE_WORDS.values() for w in ws)}")
    return wanted


def retrieve_by_symptoms(text: str, reports: Sequence[str], abnormal_probability: np.ndarray | None = None
                         ) -> np.ndarray:
    """Score each image for a symptom query by how many asked-for attribute grades its generated report
    states (ties broken by the model's abnormal probability). Higher = more relevant. ``(N,)``."""
    wanted = symptom_query(text)
    parsed = [parse_report(r)[0] for r in reports]
    score = np.array([sum(p.get(a, -1) in grades for a, grades in wanted.items()) for p in parsed], dtype=float)
    if abnormal_probability is not None:
        score = score + 0.1 * np.asarray(abnormal_probability, dtype=float)
    return score


def relevant_images(text: str, grades: np.ndarray) -> np.ndarray:
    """Ground truth for a query: images whose true grades satisfy every asked-for attribute, ``(N,)`` bool."""
    wanted = symptom_query(text)
    return np.all([np.isin(grades[:, ATTRIBUTES.index(a)], list(g)) for a, g in wanted.items()], axis=0)
