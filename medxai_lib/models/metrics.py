"""Metrics that training itself needs (validation during :func:`medxai_lib.train.fit.fit`), kept below the
training package so that both training and :mod:`medxai_lib.evaluate.metrics.classification` can use them."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import cohen_kappa_score

from medxai_lib.models.detector import grades_from_scores

__all__ = ["grade_kappa"]


def grade_kappa(scores: np.ndarray, grades: np.ndarray) -> float:
    """Quadratic weighted kappa of regression ``scores`` ``(N,)`` (cut at 0.5/1.5/2.5/3.5, as in the
    Kaggle DR challenge) against integer ``grades`` ``(N,)`` in 0..4."""
    scores, grades = np.asarray(scores, dtype=float).reshape(-1), np.asarray(grades).reshape(-1)
    if scores.shape != grades.shape or len(scores) == 0:
        raise ValueError(f"scores, grades: expected two non-empty (N,) arrays, got {scores.shape} and {grades.shape}")
    if not np.isin(grades, np.arange(5)).all():
        raise ValueError(f"grades: expected integers 0..4, got values {np.unique(grades)[:10]}")
    predicted = grades_from_scores(scores)
    return float(cohen_kappa_score(grades.astype(int), predicted, weights="quadratic", labels=np.arange(5)))
