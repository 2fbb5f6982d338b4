"""Model-agnostic explanations of tabular models (any ``predict_proba``-like callable)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def kernel_shap(predict_proba: Callable[[np.ndarray], np.ndarray], X: np.ndarray, background: np.ndarray,
                target: int = 1, n_samples: int = 200, seed: int = 0) -> np.ndarray:
    """KernelSHAP (Lundberg & Lee 2017) via captum for any callable mapping ``(N, F)`` arrays to ``(N, K)``
    probabilities, e.g. a fitted scikit-learn model's ``predict_proba``. ``background (F,)`` is the
    reference input (e.g. the training mean). Returns ``(N, F)`` attributions that sum (approximately)
    to ``f(x) - f(background)`` for the ``target`` column."""
    from captum.attr import KernelShap
    X = np.asarray(X, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64).reshape(1, -1)
    if X.ndim != 2 or background.shape[1] != X.shape[1]:
        raise ValueError(f"X, background: expected (N, F) and (F,), got {X.shape} and {background.shape}")

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(predict_proba(inputs.detach().cpu().numpy()), dtype=np.float64))

    torch.manual_seed(seed)
    explainer = KernelShap(forward)
    out = [explainer.attribute(torch.as_tensor(row[None]), baselines=torch.as_tensor(background), target=target,
                               n_samples=n_samples).numpy()[0] for row in X]
    return np.stack(out)


def linear_shap(coef: np.ndarray, X: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Closed-form Shapley values of a linear score ``f(x) = coef . x + b`` against a ``background`` point
    (e.g. the training mean): ``phi_i = coef_i (x_i - background_i)``, ``(N, F)``. This is what
    interventional SHAP (KernelSHAP with that baseline) computes for a linear model, whatever the features'
    correlation; for a logistic regression it holds for the log-odds, not the probability."""
    coef, X = np.asarray(coef, dtype=np.float64).ravel(), np.asarray(X, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64).ravel()
    if X.ndim != 2 or coef.shape != (X.shape[1],) or background.shape != (X.shape[1],):
        raise ValueError(f"coef, X, background: expected (F,), (N, F), (F,), got {coef.shape}, {X.shape}, "
                         f"{background.shape}")
    return coef * (X - background)


def conditional_linear_shap(coef: np.ndarray, X: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Exact *conditional* (observational) Shapley values of a linear score ``coef . x`` when the features are
    Gaussian ``N(mean, cov)``: the value of a coalition S is ``coef . E[X | X_S = x_S]``, enumerated over all
    ``2^F`` coalitions (F <= 14). With independent features (diagonal ``cov``) this equals
    :func:`linear_shap` against the mean; with correlated ones credit flows between correlated features.
    ``X (N, F)`` -> ``(N, F)``."""
    from itertools import combinations
    from math import factorial
    coef, X = np.asarray(coef, dtype=np.float64).ravel(), np.asarray(X, dtype=np.float64)
    mean, cov = np.asarray(mean, dtype=np.float64).ravel(), np.asarray(cov, dtype=np.float64)
    n_features = len(coef)
    if X.ndim != 2 or X.shape[1] != n_features or mean.shape != (n_features,) or cov.shape != (n_features, n_features):
        raise ValueError(f"coef, X, mean, cov: expected (F,), (N, F), (F,), (F, F), got {coef.shape}, {X.shape}, "
                         f"{mean.shape}, {cov.shape}")
    if n_features > 14:
        raise ValueError(f"coef: exact enumeration needs F <= 14 features, got {n_features}")
    if not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() <= 0:
        raise ValueError("cov: expected a symmetric positive-definite covariance matrix")
    centred = X - mean
    value = {(): np.zeros(len(X))}
    for size in range(1, n_features + 1):
        for subset in combinations(range(n_features), size):
            s, rest = list(subset), [j for j in range(n_features) if j not in subset]
            known = centred[:, s]                                            # (N, |S|)
            filled = known @ np.linalg.solve(cov[np.ix_(s, s)], cov[np.ix_(s, rest)]) if rest else None
            value[subset] = known @ coef[s] + (filled @ coef[rest] if rest else 0.0)
    phi = np.zeros_like(centred)
    for i in range(n_features):
        others = [j for j in range(n_features) if j != i]
        for size in range(n_features):
            weight = factorial(size) * factorial(n_features - size - 1) / factorial(n_features)
            for subset in combinations(others, size):
                phi[:, i] += weight * (value[tuple(sorted(subset + (i,)))] - value[subset])
    return phi
