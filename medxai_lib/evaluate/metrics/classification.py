"""Classification metrics at image and study level (MURA evaluates studies)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from medxai_lib.models.metrics import grade_kappa

__all__ = ["binary_metrics", "grade_kappa", "mura_report", "study_level"]


def _binary_labels(labels: np.ndarray) -> np.ndarray:
    """0/1 labels (ints, bools or floats equal to 0 or 1) as ints; anything else (0.7, 2, NaN) is refused,
    never truncated."""
    raw = np.asarray(labels)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"labels: expected numeric 0/1 labels, got dtype {raw.dtype}")
    bad = ~np.isin(raw, (0, 1))
    if bad.any():
        raise ValueError(f"labels: expected 0/1, got values {np.unique(raw[bad])[:10]}")
    return raw.astype(int)


def _probabilities(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=float)
    if not np.isfinite(probs).all():
        raise ValueError(f"probs: contains NaN or infinite values ({int((~np.isfinite(probs)).sum())} of {probs.size})")
    return probs


def binary_metrics(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUROC, Cohen's kappa and accuracy of ``(N,)`` probabilities against ``(N,)`` 0/1 labels.

    AUROC is NaN when only one class is present. Labels other than 0/1 (e.g. 0.7) and non-finite
    probabilities are refused.
    """
    probs, labels = _probabilities(probs), np.asarray(labels)
    if probs.shape != labels.shape or probs.ndim != 1:
        raise ValueError(f"probs, labels: expected two (N,) arrays, got {probs.shape} and {labels.shape}")
    if len(probs) == 0:
        raise ValueError("probs: empty")
    labels = _binary_labels(labels)
    predicted = (probs > threshold).astype(int)
    both = len(np.unique(labels)) == 2
    return {"auroc": float(roc_auc_score(labels, probs)) if both else float("nan"),
            "kappa": float(cohen_kappa_score(labels, predicted)) if len(np.unique(np.r_[labels, predicted])) > 1 else 0.0,
            "accuracy": float((predicted == labels).mean())}


def study_level(probs: np.ndarray, labels: np.ndarray, study_ids: Sequence[str]
                ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Average image probabilities per study (MURA's rule). Returns ``(study_probs, study_labels, ids)``.

    Raises if the images of one study disagree on the label.
    """
    probs, labels = _probabilities(probs), _binary_labels(labels)
    if not len(probs) == len(labels) == len(study_ids):
        raise ValueError(f"probs, labels, study_ids: lengths differ ({len(probs)}, {len(labels)}, {len(study_ids)})")
    groups: OrderedDict[str, list[int]] = OrderedDict()
    for i, sid in enumerate(study_ids):
        groups.setdefault(sid, []).append(i)
    study_probs, study_labels = [], []
    for sid, members in groups.items():
        member_labels = set(labels[members].tolist())
        if len(member_labels) != 1:
            raise ValueError(f"study_ids: images of study {sid!r} have different labels {sorted(member_labels)}")
        study_probs.append(probs[members].mean())
        study_labels.append(labels[members[0]])
    return np.array(study_probs), np.array(study_labels), list(groups)


def mura_report(probs: np.ndarray, labels: np.ndarray, study_ids: Sequence[str],
                body_parts: Sequence[str] | None = None) -> tuple[dict[str, float], "pandas.DataFrame | None"]:
    """MURA's evaluation: image-level and study-level (mean of the views) AUROC, kappa, accuracy;
    and, given each image's body part, study-level kappa per body part (a DataFrame)."""
    import pandas as pd

    image = binary_metrics(probs, labels)
    study_probs, study_labels, ids = study_level(probs, labels, study_ids)
    study = binary_metrics(study_probs, study_labels)
    overall = {f"image_{k}": v for k, v in image.items()} | {f"study_{k}": v for k, v in study.items()}
    overall["n_images"], overall["n_studies"] = len(labels), len(ids)
    if body_parts is None:
        return overall, None
    part_of = dict(zip(study_ids, body_parts))
    rows = []
    for part in sorted(set(body_parts)):
        keep = np.array([part_of[s] == part for s in ids])
        metrics = binary_metrics(study_probs[keep], study_labels[keep])
        rows.append({"body part": part, "studies": int(keep.sum()), "study kappa": metrics["kappa"],
                     "study accuracy": metrics["accuracy"]})
    return overall, pd.DataFrame(rows).set_index("body part")


