"""Study-level AUROC and Cohen's kappa with bootstrap CIs over studies, overall and per body part, and a
trivial baseline to compare them with (a logistic regression on each image's intensity histogram).

The statistics are vectorised over bootstrap draws so that :func:`medxai_lib.evaluate.claims.claim` can use
them: ``samples (B, N, 2)`` with columns ``(probability, label)`` -> ``(B,)``, or ``(B, N, k + 1)`` with the
probabilities of k models (seeds) before the label -> their mean AUROC / kappa.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from scipy.stats import rankdata

from medxai_lib.evaluate.metrics.classification import study_level
from medxai_lib.evaluate.stats import bootstrap, fmt, format_ci, wilson_ci

INTENSITY_QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99, 1.0)


def _columns(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 3 or samples.shape[-1] < 2:
        raise ValueError(f"samples: expected (B, N, k + 1) columns (k probabilities, label), got shape {samples.shape}")
    return samples[..., :-1], samples[..., -1:] > 0.5


def auroc_statistic(samples: np.ndarray) -> np.ndarray:
    """AUROC of every bootstrap draw (Mann-Whitney with tied ranks averaged), ``(B, N, 2)`` -> ``(B,)``;
    with ``k`` probability columns before the label, ``(B, N, k + 1)``, the mean AUROC of the k models
    (e.g. k training seeds scored on the same units). 0.5 for a draw that holds one class only."""
    scores, positive = _columns(samples)
    ranks = rankdata(scores, axis=1)
    n_pos = positive.sum(1)
    n_neg = positive.shape[1] - n_pos
    u = (ranks * positive).sum(1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, 0.5).mean(-1)


def kappa_statistic(samples: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Cohen's kappa of ``probability > threshold`` against the label for every draw, ``(B, N, k + 1)`` ->
    ``(B,)`` (mean over the k probability columns); 0 when the chance agreement is 1, and exactly 0 when the
    predictions are constant (observed = expected agreement; float round-off would print e.g. -3.3e-16)."""
    scores, positive = _columns(samples)
    predicted = scores > threshold
    observed = (predicted == positive).mean(1)
    p_pred, p_true = predicted.mean(1), positive.mean(1)
    expected = p_pred * p_true + (1 - p_pred) * (1 - p_true)
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = (observed - expected) / (1 - expected)
    constant = (p_pred == 0) | (p_pred == 1)
    return np.where((expected < 1) & ~constant, kappa, 0.0).mean(-1)


def study_units(probs: np.ndarray, labels: np.ndarray, study_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """MURA's study rule (mean of the views) as claim units: ``(S, 2)`` columns (probability, label) and ids."""
    study_probs, study_labels, ids = study_level(probs, labels, study_ids)
    return np.stack([study_probs, study_labels.astype(float)], 1), ids


def too_few_studies(units: np.ndarray, minimum: int = 10) -> str:
    """Why a study-level claim cannot be checked on ``units (S, 2)``: fewer than ``minimum`` studies of a
    class (a bootstrap CI would be meaningless); ``""`` when there are enough."""
    abnormal = int((np.asarray(units)[:, -1] > 0.5).sum())
    counts = {"abnormal": abnormal, "normal": len(units) - abnormal}
    short = [f"{n} {name}" for name, n in counts.items() if n < minimum]
    return f"only {' and '.join(short)} validation studies (< {minimum} per class)" if short else ""


def image_sample(dataset: "torch.utils.data.Dataset", limit: int | None = None, seed: int = 0
                 ) -> tuple[torch.Tensor, np.ndarray]:
    """Images ``(n, C, H, W)`` and labels ``(n,)`` of the dataset, or of ``limit`` random items of it."""
    n = len(dataset)
    index = np.arange(n) if limit is None or limit >= n else np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    images = torch.stack([dataset[int(i)]["image"] for i in index])
    return images, np.asarray(dataset.labels)[index]


def study_table(probs: np.ndarray, labels: np.ndarray, study_ids: Sequence[str], body_parts: Sequence[str],
                n_boot: int = 2000, seed: int = 0) -> "pandas.DataFrame":
    """Study-level AUROC and kappa with 95% bootstrap CIs over studies (:func:`~medxai_lib.evaluate.stats.bootstrap`
    of :func:`auroc_statistic` / :func:`kappa_statistic`, written ``"value [lo, hi]"``): one row ``"all"`` then
    one per body part (``n/a`` where a body part has studies of one class only).

    Where every bootstrap resample gives the same value (perfect separation, every study right), a percentile
    interval has width 0 and says nothing about how few studies there were. Then AUROC gets Wilson's interval
    for the share of correctly ordered pairs over ``min(abnormal, normal)`` disjoint abnormal-normal pairs
    (independent pairs: a conservative count), marked ``(Wilson, m pairs)``, and kappa is printed without an
    interval, marked ``(all n studies right; no bootstrap interval)``."""
    import pandas as pd
    units, ids = study_units(probs, labels, study_ids)
    part_of = dict(zip(study_ids, body_parts))
    parts = np.array([part_of[s] for s in ids])
    rows = {}
    for name in ["all", *sorted(set(parts))]:
        sel = units if name == "all" else units[parts == name]
        row = {"studies": len(sel), "abnormal": int(sel[:, 1].sum())}
        both = 0 < row["abnormal"] < len(sel)
        for label, statistic in (("AUROC", auroc_statistic), ("kappa", kappa_statistic)):
            row[label] = _study_ci(sel, statistic, label, n_boot, seed) if both else "n/a (one class)"
        rows[name] = row
    return pd.DataFrame(rows).T.rename_axis("body part")


def _study_ci(units: np.ndarray, statistic: Callable, label: str, n_boot: int, seed: int) -> str:
    estimate = bootstrap(units, statistic, n_boot, seed)
    if estimate.hi > estimate.lo or estimate.value not in (0.0, 1.0):
        return str(estimate)
    if label == "AUROC":
        pairs = int(min(units[:, 1].sum(), len(units) - units[:, 1].sum()))
        right = pairs if estimate.value == 1.0 else 0
        return f"{format_ci(estimate.value, *wilson_ci(right, pairs))} (Wilson, {pairs} pairs)"
    if estimate.value == 1.0:
        return f"{fmt(estimate.value)} (all {len(units)} studies right; no bootstrap interval)"
    return str(estimate)


def intensity_features(images: torch.Tensor) -> np.ndarray:
    """Quantiles :data:`INTENSITY_QUANTILES` of each image's pixels plus mean and std, ``(N, C, H, W)`` -> ``(N, 8)``."""
    if images.ndim != 4:
        raise ValueError(f"images: expected (N, C, H, W), got shape {tuple(images.shape)}")
    flat = images.float().flatten(1)
    q = torch.quantile(flat, torch.tensor(INTENSITY_QUANTILES), dim=1).T
    return torch.cat([q, flat.mean(1, keepdim=True), flat.std(1, keepdim=True)], 1).numpy()


def intensity_baseline(train_images: torch.Tensor, train_labels: np.ndarray, test_images: torch.Tensor
                       ) -> np.ndarray:
    """A label-trained trivial baseline: logistic regression on :func:`intensity_features` (bright metal,
    dark lucencies and exposure move the histogram). Returns ``(N_test,)`` probabilities."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    labels = np.asarray(train_labels).astype(int)
    if len(labels) != len(train_images) or len(np.unique(labels)) != 2:
        raise ValueError(f"train_labels: expected one 0/1 label per training image with both classes, "
                         f"got {len(labels)} labels, classes {np.unique(labels).tolist()}")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(intensity_features(train_images), labels)
    return model.predict_proba(intensity_features(test_images))[:, 1]
